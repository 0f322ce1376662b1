import { GatewayError, type ErrorCode } from '../errors.js';

/**
 * The error for a listener that cannot bind, naming the config section it came from
 * (`broker`, `broker.tls`, `coap`, `metrics`) so the operator knows which key to change —
 * node's own message ("listen EADDRINUSE: address already in use 0.0.0.0:1883") names none.
 */
export function listenError(section: string, host: string, port: number, err: unknown, code: ErrorCode): GatewayError {
  const e = err as NodeJS.ErrnoException;
  const where = `${host}:${port}`;
  switch (e?.code) {
    case 'EADDRINUSE':
      return new GatewayError(
        'EGW_PORT_IN_USE',
        `${section}.port: ${where} is already in use by another process (EADDRINUSE); ` +
          `stop that process (often another edge-gateway or a system mosquitto) or change ${section}.port`,
        { cause: err },
      );
    case 'EADDRNOTAVAIL':
      return new GatewayError(code, `${section}.host: ${host} is not an address of this machine (EADDRNOTAVAIL)`, {
        cause: err,
      });
    case 'EACCES':
      return new GatewayError(
        code,
        `${section}.port: binding ${where} is not permitted (EACCES; ports below 1024 need privileges)`,
        { cause: err },
      );
    default:
      return new GatewayError(code, `${section}: cannot listen on ${where}: ${String(e?.message ?? err)}`, {
        cause: err,
      });
  }
}
