import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { PluginManager } from '../../src/plugins/manager.js';
import { freePort } from './uplink-cloud.js';

export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/plugins', import.meta.url));
export const EXAMPLES = fileURLToPath(new URL('../../../plugins', import.meta.url));
export const log = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(fn: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Harness {
  gw: Gateway;
  dir: string;
  mqttPort: number;
  coapPort: number | undefined;
  manager: PluginManager;
  state(name: string): string;
  view(name: string): Record<string, unknown>;
  stop(): Promise<void>;
}

/** The YAML of a test gateway with the given `plugins:` body (indented two spaces). */
export function yaml(dir: string, mqttPort: number, plugins: string, extra = '', coapPort?: number): string {
  return `version: 1
gateway: { id: gw-pl, data_dir: ${JSON.stringify(dir)}, shutdown_timeout_ms: 5000 }
metrics: { enabled: false }
coap: ${coapPort ? `{ host: 127.0.0.1, port: ${coapPort} }` : '{ enabled: false }'}
broker: { host: 127.0.0.1, port: ${mqttPort}, connect_rate_per_ip: 0 }
ota: { enabled: false }
${extra}
plugins:
  enabled: true
  dir: ${JSON.stringify(FIXTURES)}
${plugins}
`;
}

export async function startGateway(
  plugins: string,
  opts: { dir?: string; extra?: string; coap?: boolean; mqttPort?: number } = {},
): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'egw-plugins-'));
  const mqttPort = opts.mqttPort ?? (await freePort());
  const coapPort = opts.coap === false ? undefined : await freeUdpPort();
  const config = parseConfig(yaml(dir, mqttPort, plugins, opts.extra, coapPort), 'plugins-test.yaml', {});
  const gw = new Gateway({ config, log, env: {} });
  await gw.start();
  const manager = gw.services.find((s): s is PluginManager => s instanceof PluginManager)!;
  const view = (name: string) =>
    (manager.view()['plugins'] as Record<string, unknown>[]).find((p) => p['name'] === name) ?? {};
  return {
    gw,
    dir,
    mqttPort,
    coapPort,
    manager,
    view,
    state: (name) => String(view(name)['state']),
    stop: () => gw.stop(),
  };
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
