import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Registry } from 'prom-client';
import { BrokerService } from '../../src/broker/broker.js';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log/logger.js';

/** YAML for a gateway with only the broker (plus what `brokerExtra` adds under `broker:`). */
export function brokerConfigYaml(dataDir: string, port: number, brokerExtra = '', logLevel = 'silent'): string {
  return [
    'version: 1',
    'gateway:',
    `  data_dir: ${dataDir}`,
    `  log_level: ${logLevel}`,
    '  shutdown_timeout_ms: 5000',
    'metrics:',
    '  enabled: false',
    'coap:',
    '  enabled: false',
    'broker:',
    '  host: 127.0.0.1',
    `  port: ${port}`,
    brokerExtra,
  ].join('\n');
}

/** An in-process gateway (broker only) on an ephemeral port. */
export async function startGateway(
  dataDir: string,
  brokerExtra = '',
): Promise<{ gateway: Gateway; broker: BrokerService; url: string }> {
  const config = parseConfig(brokerConfigYaml(dataDir, 0, brokerExtra), 'test', {});
  const gateway = new Gateway({ config, log: createLogger({ level: 'silent' }), env: {} });
  await gateway.start();
  const broker = gateway.services.find((s) => s instanceof BrokerService) as BrokerService;
  return { gateway, broker, url: `mqtt://127.0.0.1:${broker.port}` };
}

/** mqtt.js client that never reconnects by itself (tests decide), bounded connect. */
export function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, keepalive: 30, ...opts });
}

/** Collects messages on a client; `next(n)` resolves with the first n (bounded wait). */
export function collect(client: MqttClient): {
  messages: { topic: string; payload: Buffer; qos: number; retain: boolean }[];
  next(n: number, timeoutMs?: number): Promise<{ topic: string; payload: Buffer; qos: number; retain: boolean }[]>;
} {
  const messages: { topic: string; payload: Buffer; qos: number; retain: boolean }[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, qos: packet.qos, retain: packet.retain });
    for (const w of [...waiters]) if (messages.length >= w.n) w.resolve();
  });
  return {
    messages,
    next(n, timeoutMs = 5000) {
      if (messages.length >= n) return Promise.resolve(messages.slice(0, n));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`got ${messages.length} of ${n} messages within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(messages.slice(0, n));
          },
        });
      });
    },
  };
}

/** Value of a counter/gauge (summed over the label values that match `labels`). */
export async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((a, v) => a + v.value, 0);
}

/** Runs a command (mosquitto_pub/sub) with a bounded time; resolves with code and output. */
export async function run(
  cmd: string,
  args: string[],
  timeoutMs = 10000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A port that was free a moment ago (for a broker that must keep its port across restarts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms up to `timeoutMs`. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}
