/**
 * The catalogue of coded errors. Every code is documented in docs/errors.md; a unit test checks
 * that the two lists match (as fastify checks its catalogue against its docs).
 */
export const ERROR_CODES = {
  EGW_CONFIG_INVALID: 'The configuration file does not match the schema.',
  EGW_CONFIG_READ: 'The configuration file cannot be read or is not valid YAML.',
  EGW_CONFIG_SECRET: 'A secret referenced from the configuration (!env / !file) is missing.',
  EGW_STORE_OPEN: 'The SQLite state database cannot be opened or migrated.',
  EGW_STORE_FULL: 'The disk holding the data directory is full.',
  EGW_STORE_NEWER: 'The state database was changed by a newer release in a way this release cannot read.',
  EGW_SERVICE_START: 'A service failed to start.',
  EGW_SHUTDOWN_TIMEOUT: 'Graceful shutdown did not finish within its bound.',
  EGW_INGEST_INVALID: 'An ingested payload is not a valid reading.',
  EGW_INGEST_DEVICE_ID: 'A device id in a topic or URI is not allowed.',
  EGW_PIPELINE_OVERLOAD: 'The pipeline queue is full; the reading was refused.',
  EGW_OUTBOX_COMMIT: 'An outbox transaction failed (not disk full); the messages were not acknowledged.',
  EGW_UPLINK_OFFLINE: 'The uplink lost (or cannot reach) the cloud broker; the outbox keeps the data.',
  EGW_UPLINK_TLS:
    'A CA, certificate or key file of the uplink cannot be read or used, or the TLS handshake with the cloud broker failed.',
  EGW_UPLINK_PROFILE:
    'uplink.profile cannot work with this config, or a message cannot be sent within the cloud profile limits.',
  EGW_UPLINK_REFUSED: 'The cloud broker answered a PUBLISH with a failure reason code.',
  EGW_MQTT_LISTEN: 'The MQTT broker cannot listen on its address/port, or is not running.',
  EGW_MQTT_TLS: 'The MQTT TLS listener is misconfigured, or a TLS handshake failed.',
  EGW_MQTT_AUTH: 'An MQTT CONNECT was refused (credentials, client id, keepalive, will topic).',
  EGW_MQTT_ACL: 'An MQTT publish or subscription was refused by the ACL.',
  EGW_MQTT_LIMIT:
    'An MQTT connection was refused by max_connections or connect_rate_per_ip, or closed for exceeding receive_maximum.',
  EGW_MQTT_PACKET_TOO_LARGE: 'An MQTT packet exceeded broker.max_packet_bytes; the connection was closed.',
  EGW_MQTT_PERSISTENCE: 'The MQTT broker persistence (SQLite) failed while routing a message.',
  EGW_CODEC_MAGIC: 'A binary payload does not start with the codec magic byte 0xC1.',
  EGW_CODEC_VERSION: 'A binary payload uses a codec format version this decoder does not read.',
  EGW_CODEC_RESERVED: 'A binary payload sets reserved flag bits (written by a newer encoder).',
  EGW_CODEC_TRUNCATED: 'A binary payload ends before a declared length or field.',
  EGW_CODEC_TRAILING: 'A binary payload has bytes after its last reading.',
  EGW_CODEC_VARINT: 'A varint in a binary payload is too long, not minimal, or above 2^53-1.',
  EGW_CODEC_RANGE: 'A value in a binary payload is outside its allowed range.',
  EGW_CODEC_SCHEMA: 'A binary payload names an unknown schema id, or a schema definition is invalid.',
  EGW_CODEC_UTF8: 'A string in a binary payload is not valid UTF-8.',
  EGW_CODEC_DUPLICATE: 'A value or unit name occurs twice in one reading of a binary payload.',
  EGW_CODEC_LIMIT: 'A binary payload exceeds a decode limit (body size, reading count).',
  EGW_CODEC_INFLATE: 'The deflate stream of a binary payload is corrupt or inflates to a size other than declared.',
  EGW_CODEC_ENCODE: 'A reading cannot be encoded in the binary format.',
  EGW_DRIVER_CONFIG:
    'A driver entry is not usable (duplicate id, bad regex, inconsistent Modbus map, bad plugin options).',
  EGW_DRIVER_TYPE: 'A driver type is unknown or registered twice.',
  EGW_SERIAL_OPEN: 'A serial port cannot be opened or vanished; the driver retries with backoff.',
  EGW_MGMT_AUTH:
    'A /mgmt request had no token or a wrong one (4.01), or its source is rate-limited after failures (4.29).',
  EGW_MGMT_CONFIG_WRITE: 'A configuration accepted over /mgmt/config could not be written to disk.',
  EGW_COAP_DTLS: 'A DTLS-PSK handshake with a downstream CoAP device failed.',
  EGW_VISION_MODEL: 'A vision model file is missing, cannot be loaded by any provider, or breaks the model contract.',
  EGW_VISION_FRAME:
    'A camera frame cannot be decoded (corrupt, truncated, too large); the part got the fail-safe action.',
  EGW_DATA_DIR_LOCKED: 'Another edge-gateway process holds the data directory; this one refused to start.',
  EGW_PORT_IN_USE: 'A listener cannot bind its port because another process holds it (EADDRINUSE).',
  EGW_PLUGIN_LOAD:
    'A plugin module cannot be found or imported, exports no plugin definition, or declares another name.',
  EGW_PLUGIN_API_VERSION: "A plugin's apiVersion range does not include the gateway's plugin API version.",
  EGW_PLUGIN_CAPABILITY: 'A plugin used something it did not declare in its capabilities.',
  EGW_PLUGIN_CONFIG: "A plugin's config does not match its configSchema, or its setup said the config is bad.",
  EGW_PLUGIN_SETUP: "A plugin's setup threw, timed out, or its worker could not start.",
  EGW_PLUGIN_HOOK: 'A plugin hook threw, returned something invalid, or did not settle within its budget.',
  EGW_PLUGIN_QUARANTINED: 'A plugin failed too often and was quarantined; it stays off across restarts until released.',
  EGW_PLUGIN_KV: "A plugin's key-value write was refused (size, key, count).",
  EGW_PLUGIN_SAFE_MODE: 'The gateway crash-looped; this start loaded no plugin (safe mode).',
  EGW_DOWNLINK_INVALID:
    'A cloud command or desired config is malformed, oversized, has a bad id or names an unknown command.',
  EGW_DOWNLINK_DENIED: 'A cloud command is not in uplink.downlink.allow.',
  EGW_DOWNLINK_EXPIRED: 'A cloud command arrived older than uplink.downlink.command_max_age_s and was not executed.',
  EGW_DOWNLINK_FAILED: 'A cloud command was executed and failed (driver error, refused config).',
  EGW_DOWNLINK_INTERRUPTED: 'The gateway stopped while executing a cloud command; its outcome is unknown.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'GatewayError';
  }
}
