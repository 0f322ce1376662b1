// A gateway for the status-page tests: the real composition root (src/gateway.ts) and module
// list on a test config, with the status module told a bind address / token when a test needs the
// LAN behaviour, and one test module whose health a test can flip.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MODULES } from '../../src/capability/modules.js';
import type { CapabilityModule } from '../../src/capability/types.js';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import type { StatusPageConfig } from '../../src/status/config.js';
import { statusModuleWith, type StatusPage } from '../../src/status/index.js';
import { freePort } from './uplink-cloud.js';

export interface StatusRig {
  url: string;
  brokerPort: number;
  page: StatusPage;
  gateway: Gateway;
  /** Every log line written so far (JSON text), to check no token leaks into the log. */
  logText(): string;
  setUnhealthy(v: boolean): void;
  close(): Promise<void>;
}

export interface RigOptions {
  cloudUrl?: string;
  /**
   * The bind address the page is told the listener has (the listener itself stays on 127.0.0.1:
   * tests use loopback only). A LAN address here makes the page ask for the token.
   */
  claimHost?: string;
  token?: string;
  page?: Partial<StatusPageConfig>;
  simIntervalMs?: number;
  /** Leave the simulated driver out. */
  noSim?: boolean;
  /** YAML for `analytics.rules` (flow style). */
  rules?: string;
  /** Turn the OTA client on (no channel set: it reports its state and never downloads). */
  ota?: boolean;
  /** Overrides where the page's assets are read from. */
  assetsDir?: string;
  /** Stand-in for the vision capability: its document and kept images. */
  inspection?: { doc: Record<string, unknown>; images: Map<string, { type: string; body: Buffer }> };
}

export async function startStatusRig(o: RigOptions = {}): Promise<StatusRig> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-status-'));
  const brokerPort = await freePort();
  const httpPort = await freePort();
  const yaml = [
    'version: 1',
    `gateway: { id: gw-status, data_dir: ${JSON.stringify(dir)}, log_level: info, shutdown_timeout_ms: 3000 }`,
    `metrics: { host: 127.0.0.1, port: ${httpPort} }`,
    'coap: { enabled: false }',
    `broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }`,
    o.cloudUrl
      ? `uplink: { url: ${JSON.stringify(o.cloudUrl)}, reconnect: { min_ms: 100, max_ms: 500, jitter: 0.2 } }`
      : 'uplink: { enabled: false }',
    'history: { min_interval_s: 0, flush_interval_ms: 200 }',
    `analytics: { enabled: ${o.rules ? 'true' : 'false'}, rules: ${o.rules ?? '[]'} }`,
    `ota: { enabled: ${o.ota ? 'true' : 'false'}, install_root: ${JSON.stringify(join(dir, 'install'))} }`,
    `status_page: ${JSON.stringify({ update_interval_ms: 500, ...o.page })}`,
    o.noSim
      ? 'drivers: []'
      : `drivers: [{ type: simulated, id: sim-1, interval_ms: ${o.simIntervalMs ?? 100}, dropout_probability: 0, seed: 7 }]`,
  ].join('\n');
  const config = parseConfig(yaml, 'status-rig.yaml', {});
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  let unhealthy = false;
  // A service whose health the test flips: /health and the page must follow it.
  const fault: CapabilityModule = {
    name: 'fault',
    enabled: () => true,
    build: () => ({
      services: [
        {
          name: 'fault',
          start: async () => undefined,
          stop: async () => undefined,
          health: () => (unhealthy ? { ok: false, state: 'failed' } : { ok: true, state: 'running' }),
        },
      ],
    }),
  };
  let page: StatusPage | undefined;
  const status = statusModuleWith({
    ...(o.claimHost ? { bindHost: o.claimHost } : {}),
    ...(o.token ? { tokens: () => [o.token!] } : {}),
    ...(o.assetsDir ? { assetsDir: o.assetsDir } : {}),
    ...(o.inspection
      ? {
          sources: {
            inspection: () => o.inspection!.doc,
            inspectionImage: (id: string) => o.inspection!.images.get(id),
          },
        }
      : {}),
    onPage: (p) => (page = p),
  });
  const modules = [fault, ...MODULES.map((m) => (m.name === 'status' ? status : m))];
  const gateway = new Gateway({ config, log, modules });
  await gateway.start();
  return {
    url: `http://127.0.0.1:${httpPort}`,
    brokerPort,
    page: page!,
    gateway,
    logText: () => lines.join(''),
    setUnhealthy: (v) => (unhealthy = v),
    close: async () => {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
