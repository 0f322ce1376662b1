/**
 * The edge-gateway binary reading format (docs/codec.md): a pure codec — bytes in, readings out.
 * Ingest (MQTT, CoAP) calls `looksLikeCodec` / `decode`; the uplink calls `encodeBatch`.
 */
export { encodeReading, encodeBatch, type EncodeOptions } from './encode.js';
export { decode, looksLikeCodec, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_READINGS, type DecodeOptions } from './decode.js';
export { CodecError, type CodecErrorCode } from './errors.js';
export { COAP_CONTENT_FORMAT, MEDIA_TYPE, MAGIC, MAX_STRING_BYTES, VERSION } from './format.js';
export {
  BUILTIN_SCHEMAS,
  DEFAULT_REGISTRY,
  createRegistry,
  type SchemaRegistry,
  type SchemaSpec,
  type FieldSpec,
} from './schema.js';
