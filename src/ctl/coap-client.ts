import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';
import type * as Ncc from 'node-coap-client';

export type { CoapResponse } from 'node-coap-client';
export type CoapClientApi = typeof Ncc.CoapClient;

const require = createRequire(import.meta.url);
let client: CoapClientApi | undefined;
let skipDtls = false;

/**
 * For the `ctl` process only: node-coap-client 2.1.0 loads node-dtls-client when it is loaded
 * (build/CoapClient.js and build/lib/SocketWrapper.js `require("node-dtls-client")`), which is
 * ~80 % of its load time, though ctl speaks plain coap:// only. This puts a stand-in in the require
 * cache under node-dtls-client's resolved path, used solely by those two files: `dtls.Socket` (for
 * SocketWrapper's `instanceof`) and a `dtls.createSocket` that refuses. Never call it in a process
 * that also runs the gateway (its coap driver needs the real DTLS); re-check on a node-coap-client
 * upgrade. Measured by scripts/bench-ctl.ts.
 */
export function withoutDtls(): void {
  skipDtls = true;
}

export function coapClient(): CoapClientApi {
  if (client) return client;
  if (skipDtls) {
    const dtlsPath = require.resolve('node-dtls-client', {
      paths: [dirname(require.resolve('node-coap-client/package.json'))],
    });
    if (require.cache[dtlsPath] === undefined) {
      const stub = new Module(dtlsPath);
      stub.filename = dtlsPath;
      stub.loaded = true;
      stub.exports = {
        dtls: {
          Socket: class DtlsUnavailable {},
          createSocket: () => {
            throw new Error('coaps:// is not supported by edge-gateway ctl');
          },
        },
      };
      require.cache[dtlsPath] = stub;
    }
  }
  client = (require('node-coap-client') as typeof Ncc).CoapClient;
  return client;
}

/** Forgets connections and pending requests, if the client was ever loaded. */
export function resetClient(): void {
  client?.reset();
}
