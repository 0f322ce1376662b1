// Helpers for the uplink, outage, crash, priority and quota tests: a real mosquitto as "the cloud"
// on an ephemeral port, and a subscriber that records every message with its msg-id.
import { startMosquitto, stopMosquitto } from '../helpers/mosquitto.js';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { decode } from '../../src/codec/index.js';
import type { Reading } from '../../src/pipeline/reading.js';

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A mosquitto broker process; `stop()` kills it (the cloud goes away), `start()` brings it back on the same port. */
export class Cloud {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'egw-cloud-'));
  constructor(readonly port: number) {}

  static async create(): Promise<Cloud> {
    const c = new Cloud(await freePort());
    await c.start();
    return c;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.child && this.child.exitCode === null) return;
    const conf = join(this.dir, 'mosquitto.conf');
    // Persistence keeps the test subscriber's session across a cloud restart; `user` = us, or mosquitto
    // started as root drops to user mosquitto and cannot write the temp dir.
    writeFileSync(
      conf,
      `listener ${this.port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 0\npersistence true\npersistence_location ${this.dir}/\nautosave_interval 0\nuser ${userInfo().username}\n`,
    );
    this.child = (await startMosquitto(conf, [this.port])).child;
  }

  async stop(): Promise<void> {
    // SIGTERM: mosquitto saves the subscriber's persistent session, so nothing is lost to the *test* while the cloud is down.
    const c = this.child;
    this.child = undefined;
    await stopMosquitto(c);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Received {
  topic: string;
  id: string;
  payload: Buffer;
  at: number;
}

/**
 * Subscribes (QoS 1, persistent session so nothing is missed while the gateway reconnects) and keeps
 * every message. `readings()` decodes codec batches; `ids` counts deliveries per msg-id.
 */
export class CloudSubscriber {
  readonly messages: Received[] = [];
  readonly ids = new Map<string, number>();
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const id = String(packet.properties?.userProperties?.['msg-id'] ?? '');
      this.ids.set(id, (this.ids.get(id) ?? 0) + 1);
      this.messages.push({ topic, id, payload, at: performance.now() });
    });
  }

  static async connect(url: string, filter = 'edge/#'): Promise<CloudSubscriber> {
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      reconnectPeriod: 100,
      clean: false,
      clientId: `sub-${Math.random().toString(16).slice(2)}`,
      properties: { sessionExpiryInterval: 3600 },
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      setTimeout(() => reject(new Error('subscriber cannot connect')), 5000).unref();
    });
    await client.subscribeAsync(filter, { qos: 1 });
    return new CloudSubscriber(client);
  }

  /** Decodes one codec message (readings keep their values; source is not on the wire). */
  decode(payload: Buffer): Reading[] {
    return decode(payload, { maxReadings: 10000 });
  }

  /**
   * Readings of one message, codec or JSON (docs/uplink.md §JSON payloads), the JSON read by a
   * plain JSON.parse as a cloud rule engine would; other messages (alerts, state) give none.
   */
  readingsOf(payload: Buffer): { deviceId: string; values: Record<string, unknown> }[] {
    if (payload[0] === 0xc1) return decode(payload, { maxReadings: 10000 });
    if (payload[0] !== 0x7b) return [];
    const doc = JSON.parse(payload.toString('utf8')) as {
      deviceId?: string;
      values?: Record<string, unknown>;
      readings?: { deviceId?: string; values: Record<string, unknown> }[];
    };
    if (doc.readings)
      return doc.readings.map((r) => ({ deviceId: r.deviceId ?? doc.deviceId ?? '', values: r.values }));
    return doc.values && doc.deviceId ? [{ deviceId: doc.deviceId, values: doc.values }] : [];
  }

  /** Readings of every codec message whose id was seen first here (duplicates by id skipped). */
  readings(): Reading[] {
    const seen = new Set<string>();
    const out: Reading[] = [];
    for (const m of this.messages) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      if (m.payload[0] === 0xc1) out.push(...decode(m.payload));
    }
    return out;
  }

  async waitFor(pred: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!pred()) {
      if (performance.now() > deadline) throw new Error('timed out waiting for cloud messages');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
