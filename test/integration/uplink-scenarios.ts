// End-to-end scenarios shared by the tests (small counts) and scripts/bench-uplink-*.ts (full counts):
// MQTT QoS 1 publishers → the gateway process (aedes, ack after outbox commit) → uplink → mosquitto.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { Cloud, CloudSubscriber, freePort } from './uplink-cloud.js';

export function gatewayYaml(
  dataDir: string,
  brokerPort: number,
  cloudUrl: string,
  extra = '',
  uplinkExtra = '',
): string {
  return [
    'version: 1',
    `gateway: { id: gw-e2e, data_dir: ${JSON.stringify(dataDir)}, log_level: info, shutdown_timeout_ms: 5000 }`,
    'metrics: { enabled: false }',
    'coap: { enabled: false }',
    `broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }`,
    `uplink: { url: ${JSON.stringify(cloudUrl)}, reconnect: { min_ms: 100, max_ms: 1000, jitter: 0.5 }${uplinkExtra ? `, ${uplinkExtra}` : ''} }`,
    extra,
  ].join('\n');
}

/** A device: publishes {"seq": n} to sensors/{dev}/data at QoS 1 with a window; remembers what was PUBACKed. */
export class Publisher {
  readonly acked = new Set<number>();
  readonly retransmitted = new Set<number>();
  private next = 0;
  private inflight = 0;
  private readonly retry: number[] = [];
  private stopped = false;
  readonly client: MqttClient;

  constructor(
    url: string,
    readonly dev: string,
    private readonly window = 64,
  ) {
    this.client = mqtt.connect(url, {
      protocolVersion: 4,
      clientId: `pub-${dev}`,
      clean: true,
      reconnectPeriod: 100,
      connectTimeout: 2000,
    });
    this.client.on('error', () => undefined);
  }

  /** Publishes until `total` seqs are acknowledged, or `until()` says stop, bounded by `timeoutMs`. */
  async run(total: number, timeoutMs: number, ratePerS = 0): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const t0 = performance.now();
    while (!this.stopped && this.acked.size < total && performance.now() < deadline) {
      const paced = ratePerS > 0 && this.next >= ((performance.now() - t0) / 1000) * ratePerS;
      if (
        !this.client.connected ||
        this.inflight >= this.window ||
        paced ||
        (this.next >= total && this.retry.length === 0)
      ) {
        await new Promise((r) => setTimeout(r, ratePerS > 0 ? 1 : 2));
        continue;
      }
      const seq = this.retry.length > 0 ? this.retry.shift()! : this.next++;
      this.inflight++;
      this.client.publishAsync(`sensors/${this.dev}/data`, JSON.stringify({ seq }), { qos: 1 }).then(
        () => {
          this.inflight--;
          this.acked.add(seq);
        },
        () => {
          this.inflight--;
          this.retransmitted.add(seq);
          this.retry.push(seq);
        },
      );
    }
  }

  stop(): void {
    this.stopped = true;
  }

  async close(): Promise<void> {
    this.stop();
    await this.client.endAsync(true);
  }
}

export interface DeliveryReport {
  acked: number;
  delivered: number;
  missing: number;
  /** Messages received more than once with the same msg-id (at-least-once re-sends; the cloud drops them). */
  sameIdDuplicates: number;
  /** Readings that arrived under two different ids (only possible when a device re-published after a lost PUBACK). */
  crossIdDuplicates: number;
  messages: number;
}

/** Compares what publishers got PUBACKs for with what the cloud received, by (device, seq) and msg-id. */
export function compare(pubs: readonly Publisher[], sub: CloudSubscriber): DeliveryReport {
  const idsOf = new Map<string, Set<string>>();
  for (const m of sub.messages) {
    for (const r of sub.readingsOf(m.payload)) {
      const key = `${r.deviceId}/${String(r.values['seq'])}`;
      let s = idsOf.get(key);
      if (!s) idsOf.set(key, (s = new Set()));
      s.add(m.id);
    }
  }
  let acked = 0;
  let missing = 0;
  for (const p of pubs) {
    for (const seq of p.acked) {
      acked++;
      if (!idsOf.has(`${p.dev}/${seq}`)) missing++;
    }
  }
  let crossId = 0;
  for (const s of idsOf.values()) if (s.size > 1) crossId++;
  let sameId = 0;
  for (const n of sub.ids.values()) if (n > 1) sameId += n - 1;
  return {
    acked,
    delivered: idsOf.size,
    missing,
    sameIdDuplicates: sameId,
    crossIdDuplicates: crossId,
    messages: sub.messages.length,
  };
}

export interface Rig {
  cloud: Cloud;
  sub: CloudSubscriber;
  brokerPort: number;
  dir: string;
  configPath: string;
  gateway: GatewayProcess;
  restartGateway(): Promise<void>;
  close(): Promise<void>;
}

/** `uplinkExtra`: more keys inside `uplink: {...}`, e.g. `payload_format: json`. */
export async function startRig(extraYaml = '', uplinkExtra = ''): Promise<Rig> {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  const brokerPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'egw-e2e-'));
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, gatewayYaml(join(dir, 'data'), brokerPort, cloud.url, extraYaml, uplinkExtra));
  const rig: Rig = {
    cloud,
    sub,
    brokerPort,
    dir,
    configPath,
    gateway: GatewayProcess.start(configPath),
    async restartGateway() {
      rig.gateway = GatewayProcess.start(configPath);
      await rig.gateway.ready(20000);
    },
    async close() {
      await rig.gateway.stop('SIGKILL');
      await sub.close();
      await cloud.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await rig.gateway.ready(20000);
  return rig;
}

async function until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** What the fault scenarios drive: publishers into a gateway process, a cloud to take away, kill -9. */
export interface FaultRig {
  brokerPort: number;
  cloud: { stop(): Promise<void>; start(): Promise<void> };
  gateway: GatewayProcess;
  restartGateway(): Promise<void>;
}

/** How many readings the publishers saw acknowledged that the cloud has not received (yet). */
export type MissingOf = (pubs: readonly Publisher[]) => number;

/** `nPub` QoS 1 publishers (`dev-0`...) into the rig's broker, closed after `body`. */
export async function withPublishers<T>(
  rig: FaultRig,
  nPub: number,
  body: (pubs: Publisher[]) => Promise<T>,
  inflight?: number,
): Promise<T> {
  const pubs = Array.from(
    { length: nPub },
    (_, k) => new Publisher(`mqtt://127.0.0.1:${rig.brokerPort}`, `dev-${k}`, inflight),
  );
  try {
    return await body(pubs);
  } finally {
    await Promise.all(pubs.map((p) => p.close()));
  }
}

/**
 * Outage: `total` readings; the cloud goes down once 30 % are acknowledged and comes back at 70 %.
 * Then waits until every acknowledged reading reached the cloud. Returns how long the cloud was down (s).
 */
export async function driveOutage(
  rig: FaultRig,
  pubs: readonly Publisher[],
  total: number,
  timeoutMs: number,
  missingOf: MissingOf,
): Promise<number> {
  const acked = () => pubs.reduce((a, p) => a + p.acked.size, 0);
  const run = Promise.all(pubs.map((p) => p.run(total / pubs.length, timeoutMs)));
  await until(() => acked() >= total * 0.3, timeoutMs);
  await rig.cloud.stop();
  const down = performance.now();
  await until(() => acked() >= total * 0.7, timeoutMs);
  await rig.cloud.start();
  const downSeconds = (performance.now() - down) / 1000;
  await run;
  await until(() => missingOf(pubs) === 0, timeoutMs);
  return downSeconds;
}

/**
 * Crash loop: publishers keep publishing while the gateway is `kill -9`ed `kills` times (each
 * followed by a restart) and the cloud is down every other round. Then waits until every PUBACKed
 * reading reached the cloud.
 */
export async function driveCrashLoop(
  rig: FaultRig,
  pubs: readonly Publisher[],
  kills: number,
  roundMs: number,
  timeoutMs: number,
  missingOf: MissingOf,
): Promise<void> {
  const run = Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, timeoutMs)));
  for (let i = 0; i < kills; i++) {
    if (i % 2 === 0) await rig.cloud.stop();
    else await rig.cloud.start();
    await new Promise((r) => setTimeout(r, roundMs * (0.5 + Math.random())));
    await rig.gateway.stop('SIGKILL');
    await rig.restartGateway();
  }
  await rig.cloud.start();
  await new Promise((r) => setTimeout(r, roundMs));
  for (const p of pubs) p.stop();
  await run;
  await until(() => missingOf(pubs) === 0, timeoutMs);
}

/** driveOutage against the plain MQTT cloud, with the delivery report. */
export async function runOutage(
  rig: Rig,
  total: number,
  nPub: number,
  timeoutMs: number,
): Promise<DeliveryReport & { seconds: number; downSeconds: number }> {
  const t0 = performance.now();
  return withPublishers(rig, nPub, async (pubs) => {
    const downSeconds = await driveOutage(rig, pubs, total, timeoutMs, (ps) => compare(ps, rig.sub).missing);
    return { ...compare(pubs, rig.sub), seconds: (performance.now() - t0) / 1000, downSeconds };
  });
}

/** driveCrashLoop against the plain MQTT cloud, with the delivery report. */
export async function runCrashLoop(
  rig: Rig,
  kills: number,
  nPub: number,
  roundMs: number,
  timeoutMs: number,
): Promise<DeliveryReport & { kills: number; seconds: number }> {
  const t0 = performance.now();
  return withPublishers(
    rig,
    nPub,
    async (pubs) => {
      await driveCrashLoop(rig, pubs, kills, roundMs, timeoutMs, (ps) => compare(ps, rig.sub).missing);
      return { ...compare(pubs, rig.sub), kills, seconds: (performance.now() - t0) / 1000 };
    },
    32,
  );
}
