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
  EGW_SERVICE_START: 'A service failed to start.',
  EGW_SHUTDOWN_TIMEOUT: 'Graceful shutdown did not finish within its bound.',
  EGW_INGEST_INVALID: 'An ingested payload is not a valid reading.',
  EGW_INGEST_DEVICE_ID: 'A device id in a topic or URI is not allowed.',
  EGW_PIPELINE_OVERLOAD: 'The pipeline queue is full; the reading was refused.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'GatewayError';
  }
}
