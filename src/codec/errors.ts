import { GatewayError } from '../errors.js';

/**
 * Codes a codec error can carry. Each is listed in src/errors.ts (ERROR_CODES) and documented in
 * docs/errors.md and docs/codec.md §Errors.
 */
export type CodecErrorCode =
  | 'EGW_CODEC_MAGIC'
  | 'EGW_CODEC_VERSION'
  | 'EGW_CODEC_RESERVED'
  | 'EGW_CODEC_TRUNCATED'
  | 'EGW_CODEC_TRAILING'
  | 'EGW_CODEC_VARINT'
  | 'EGW_CODEC_RANGE'
  | 'EGW_CODEC_SCHEMA'
  | 'EGW_CODEC_UTF8'
  | 'EGW_CODEC_DUPLICATE'
  | 'EGW_CODEC_LIMIT'
  | 'EGW_CODEC_INFLATE'
  | 'EGW_CODEC_ENCODE';

/**
 * The only exception the decoder throws. `offset` is where the field that failed a check begins:
 * in the message, or in the inflated body for the body of a compressed one; -1 for no position
 * (docs/codec.md §Errors, §Decoding order).
 */
export class CodecError extends GatewayError {
  declare readonly code: CodecErrorCode;
  readonly offset: number;
  constructor(code: CodecErrorCode, message: string, offset = -1, options?: { cause?: unknown }) {
    super(code, offset >= 0 ? `${message} (at byte ${offset})` : message, options);
    this.name = 'CodecError';
    this.offset = offset;
  }
}
