import { lazyRequire } from '../../lifecycle/lazy.js';

// Loaded when the first coaps:// driver starts (lifecycle/lazy.ts).
const dtlsClient = lazyRequire<typeof import('node-dtls-client')>('node-dtls-client');

/**
 * node-dtls-client 1.1.1 parses handshake messages inside its UDP 'message' listener and throws on
 * types it does not implement — notably ServerKeyExchange (type 12), which a DTLS-PSK server sends
 * when it has a PSK identity hint (RFC 4279 §2; libcoap's coap-server sends "CoAP" by default).
 * Thrown there, the error is an uncaught exception that would end the whole gateway. This guard
 * turns it into a failed connection (the driver then retries with backoff and reports the error).
 * Devices must be configured without an identity hint (libcoap: `-h ""`); see docs/coap.md.
 */
type SocketProto = {
  udp_onMessage(this: SocketProto, msg: Buffer, rinfo: unknown): void;
  killConnection(this: SocketProto, err?: Error): void;
  __egwGuarded?: boolean;
};

export function installDtlsGuard(): void {
  const proto = dtlsClient().dtls.Socket.prototype as unknown as SocketProto;
  if (proto.__egwGuarded) return;
  const original = proto.udp_onMessage;
  proto.udp_onMessage = function (msg, rinfo) {
    try {
      original.call(this, msg, rinfo);
    } catch (err) {
      this.killConnection(
        new Error(
          `DTLS handshake failed: ${(err as Error).message} (a PSK identity hint from the server is not supported by node-dtls-client; configure the device without one; EGW_COAP_DTLS)`,
        ),
      );
    }
  };
  proto.__egwGuarded = true;
}
