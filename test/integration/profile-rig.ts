// In-process uplink rig for the cloud-profile tests: a real outbox (SQLite in a temp dir) and the
// real Uplink against a ProfileCloud; downlinks are recorded.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { Reading } from '../../src/pipeline/reading.js';
import { binaryReadingCodec } from '../../src/queue/codec.js';
import { Outbox } from '../../src/queue/outbox.js';
import { outboxPort } from '../../src/queue/port.js';
import { openDatabase } from '../../src/store/db.js';
import { createProfile, type Downlink } from '../../src/uplink/profiles/index.js';
import { Uplink } from '../../src/uplink/uplink.js';

export interface UplinkRig {
  outbox: Outbox;
  uplink: Uplink;
  downlinks: Downlink[];
  close(): Promise<void>;
}

export async function startUplink(
  uplinkYaml: string,
  gatewayId: string,
  nowMs?: () => number,
  queueYaml = '{ outbox: { commit_wait_ms: 1 }, classes: { MEDIUM: { batch_window_ms: 20 } } }',
): Promise<UplinkRig> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-profile-rig-'));
  const config = parseConfig(`version: 1\ngateway: { id: ${gatewayId} }\nuplink: ${uplinkYaml}\nqueue: ${queueYaml}\n`);
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: process.env['EGW_TEST_LOG'] ?? 'silent' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId,
    outbox: outboxPort(outbox),
    log,
    profile: createProfile(config.uplink, gatewayId, nowMs),
  });
  const downlinks: Downlink[] = [];
  uplink.onDownlink((d) => downlinks.push(d));
  await uplink.start();
  return {
    outbox,
    uplink,
    downlinks,
    async close() {
      await uplink.stop();
      outbox.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function reading(deviceId: string, ts: number, values: Reading['values']): Reading {
  return { deviceId, ts, values, quality: 'good', source: 'mqtt' };
}

/**
 * HMAC-SHA256 written out from RFC 2104 over plain SHA-256, so the test's SAS token does not share
 * code with the gateway's (which uses crypto.createHmac).
 */
function hmacSha256(key: Buffer, data: Buffer): Buffer {
  const block = 64;
  let k = key.length > block ? createHash('sha256').update(key).digest() : key;
  k = Buffer.concat([k, Buffer.alloc(block - k.length)]);
  const ipad = Buffer.from(k.map((b) => b ^ 0x36));
  const opad = Buffer.from(k.map((b) => b ^ 0x5c));
  const inner = createHash('sha256').update(ipad).update(data).digest();
  return createHash('sha256').update(opad).update(inner).digest();
}

/**
 * An Azure IoT Hub SAS token as Azure documents it ("Control access to IoT Hub with shared access
 * signatures", security token structure): sr = URL-encoded `{hub}/devices/{deviceId}`; signature =
 * base64(HMAC-SHA256(base64-decoded key, sr + "\n" + se)), URL-encoded.
 */
export function referenceSasToken(hub: string, deviceId: string, base64Key: string, se: number): string {
  const sr = encodeURIComponent(`${hub}/devices/${deviceId}`);
  const sig = hmacSha256(Buffer.from(base64Key, 'base64'), Buffer.from(`${sr}\n${se}`, 'utf8')).toString('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
}

export async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
