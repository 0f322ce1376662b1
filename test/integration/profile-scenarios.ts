// The outage and kill -9 scenarios of uplink-scenarios.ts, run against each cloud profile: the
// gateway process with `uplink.profile`, mosquitto with that profile's auth, and a decoder per
// profile that turns what the cloud received back into (device, seq) pairs.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { decode } from '../../src/codec/index.js';
import type { ProfileName } from '../../src/uplink/profiles/index.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { CloudSide, ProfileCloud, type Got } from './profile-cloud.js';
import { referenceSasToken } from './profile-rig.js';
import { makePki, type Pki } from './tls-certs.js';
import { freePort } from './uplink-cloud.js';
import { driveCrashLoop, driveOutage, Publisher, withPublishers } from './uplink-scenarios.js';

interface TahuMetric {
  name?: string;
  alias?: { toNumber(): number } | number;
  value?: unknown;
}
const tahu = (
  createRequire(import.meta.url)('sparkplug-payload') as {
    get(ns: string): { decodePayload(b: Uint8Array): { metrics?: TahuMetric[]; seq?: unknown } };
  }
).get('spBv1.0');
const num = (v: unknown): number => (typeof v === 'number' ? v : (v as { toNumber(): number }).toNumber());

const HUB = 'egw-test.azure-devices.net';
const SAS_TTL = 31536000; // a year: the token the test writes stays the gateway's for the whole test

export interface ProfileRig {
  profile: ProfileName;
  cloud: ProfileCloud;
  side: CloudSide;
  brokerPort: number;
  gateway: GatewayProcess;
  restartGateway(): Promise<void>;
  /** `${dev}/${seq}` of every reading the cloud received (duplicates merged). */
  delivered(): Set<string>;
  /** Sparkplug: every NDEATH with its bdSeq and that of the NBIRTH before it. */
  bdSeqs(type: 'NDEATH'): { index: number; bdSeq: number; lastBirthBdSeq: number | undefined }[];
  /** Device command results the cloud received, in the profile's own shape, decoded (JSON documents). */
  commandResults(deviceId: string): Record<string, unknown>[];
  /** config/reported documents the cloud received, the profile's way, decoded. */
  configReported(): Record<string, unknown>[];
  /** Reported-state documents the cloud received, the profile's way, decoded. */
  reportedStates(): Record<string, unknown>[];
  /** Publishes a desired config in the profile's layout (Azure: a desired-properties patch). */
  sendDesired(version: number, config: object): Promise<void>;
  /** Publishes a device command in the profile's own layout. */
  sendCommand(deviceId: string, body: string): Promise<void>;
  close(): Promise<void>;
}

export async function startProfileRig(profile: ProfileName): Promise<ProfileRig> {
  let pki: Pki | undefined;
  let cloud: ProfileCloud;
  let uplinkYaml: string;
  let filters: string[];
  const key = randomBytes(32).toString('base64');
  // The downlink on: every profile's device commands go through the one command pipeline.
  const reconnect =
    "reconnect: { min_ms: 100, max_ms: 1000, jitter: 0.5 }, downlink: { enabled: true, allow: ['device:pump-*'] }";
  switch (profile) {
    case 'mqtt':
      cloud = await ProfileCloud.start({});
      uplinkYaml = `{ profile: mqtt, url: "${cloud.url}", ${reconnect} }`;
      filters = ['edge/#'];
      break;
    case 'aws-iot':
      pki = makePki();
      cloud = await ProfileCloud.start({
        pki,
        certificateAuth: true,
        acl: ['user device-42', 'topic readwrite edge/device-42/#'],
      });
      uplinkYaml = `{ profile: aws-iot, url: "${cloud.url}", ca_file: "${pki.ca}", cert_file: "${pki.clientCert}", key_file: "${pki.clientKey}", aws: { thing_name: device-42 }, ${reconnect} }`;
      filters = ['edge/#'];
      break;
    case 'azure-iot-hub': {
      pki = makePki();
      const username = `${HUB}/gw-e2e/?api-version=2021-04-12`;
      const se = (Math.floor(Date.now() / 1000 / SAS_TTL) + 2) * SAS_TTL;
      cloud = await ProfileCloud.start({
        pki,
        password: { username, password: referenceSasToken(HUB, 'gw-e2e', key, se) },
      });
      uplinkYaml = `{ profile: azure-iot-hub, url: "${cloud.url}", ca_file: "${pki.ca}", azure: { hub: ${HUB}, device_key: "${key}", sas_ttl_s: ${SAS_TTL} }, ${reconnect} }`;
      filters = ['devices/#', '$iothub/twin/PATCH/properties/reported/#'];
      break;
    }
    case 'sparkplug-b':
      cloud = await ProfileCloud.start({});
      uplinkYaml = `{ profile: sparkplug-b, url: "${cloud.url}", sparkplug: { group_id: g1 }, ${reconnect} }`;
      filters = ['spBv1.0/#'];
      break;
  }
  const side = await CloudSide.connect(cloud.testUrl, filters);
  const brokerPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'egw-profile-e2e-'));
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(
    configPath,
    [
      'version: 1',
      `gateway: { id: gw-e2e, data_dir: ${JSON.stringify(join(dir, 'data'))}, log_level: info, shutdown_timeout_ms: 5000 }`,
      'metrics: { enabled: false }',
      'coap: { enabled: false }',
      `broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }`,
      `uplink: ${uplinkYaml}`,
      'queue: { classes: { MEDIUM: { batch_window_ms: 50 } } }',
      '',
    ].join('\n'),
  );
  // Sparkplug: aliases are announced in DBIRTHs; data refers to them.
  const aliasName = new Map<number, string>();
  /** Replies (command results, config/reported) on the local name `local`, the profile's way, decoded. */
  const repliesOn = (local: string): Record<string, unknown>[] => {
    const out: Record<string, unknown>[] = [];
    for (const g of side.got) {
      if (profile === 'mqtt' || profile === 'aws-iot') {
        if (g.topic.endsWith(`/${local}`)) out.push(JSON.parse(g.payload.toString()) as Record<string, unknown>);
      } else if (profile === 'azure-iot-hub') {
        // A device-to-cloud event whose `topic` property names the result.
        if (g.topic.includes(`topic=${encodeURIComponent(local)}`))
          out.push(JSON.parse(g.payload.toString()) as Record<string, unknown>);
      } else if (g.topic === 'spBv1.0/g1/NDATA/gw-e2e') {
        // An NDATA Gateway/Message metric: {"topic", "id", "payload"} as a JSON string.
        for (const x of tahu.decodePayload(g.payload).metrics ?? []) {
          if (typeof x.value !== 'string') continue;
          const m = JSON.parse(x.value) as { topic?: string; payload?: string };
          if (m.topic === local && m.payload) out.push(JSON.parse(m.payload) as Record<string, unknown>);
        }
      }
    }
    return out;
  };
  const rig: ProfileRig = {
    profile,
    cloud,
    side,
    brokerPort,
    gateway: GatewayProcess.start(configPath),
    async restartGateway() {
      rig.gateway = GatewayProcess.start(configPath);
      await rig.gateway.ready(20000);
    },
    delivered() {
      const out = new Set<string>();
      const add = (dev: string, seq: unknown) => out.add(`${dev}/${String(seq)}`);
      const json = (g: Got) => {
        const doc = JSON.parse(g.payload.toString()) as {
          readings?: { deviceId: string; values: { seq?: unknown } }[];
        };
        for (const r of doc.readings ?? []) add(r.deviceId, r.values.seq);
      };
      for (const g of side.got) {
        if (profile === 'mqtt') {
          if (g.payload[0] === 0xc1) for (const r of decode(g.payload)) add(r.deviceId, r.values['seq']);
        } else if (profile === 'aws-iot') {
          if (g.topic.endsWith('/data')) json(g);
        } else if (profile === 'azure-iot-hub') {
          if (g.topic.includes('topic=sensors%2F')) json(g);
        } else {
          const m = /^spBv1\.0\/g1\/(DBIRTH|DDATA)\/gw-e2e\/(.+)$/.exec(g.topic);
          if (!m) continue;
          const p = tahu.decodePayload(g.payload);
          for (const x of p.metrics ?? []) {
            if (m[1] === 'DBIRTH') aliasName.set(num(x.alias), x.name!);
            else if (aliasName.get(num(x.alias)) === 'seq') add(m[2]!, num(x.value));
          }
        }
      }
      return out;
    },
    reportedStates() {
      const out: Record<string, unknown>[] = [];
      for (const g of side.got) {
        if (profile === 'mqtt' || profile === 'aws-iot') {
          if (g.topic.endsWith('/state')) out.push(JSON.parse(g.payload.toString()) as Record<string, unknown>);
        } else if (profile === 'azure-iot-hub') {
          if (g.topic.startsWith('$iothub/twin/PATCH/properties/reported/'))
            out.push(JSON.parse(g.payload.toString()) as Record<string, unknown>);
        } else if (g.topic === 'spBv1.0/g1/NDATA/gw-e2e') {
          for (const x of tahu.decodePayload(g.payload).metrics ?? []) {
            if (typeof x.value !== 'string') continue;
            const m = JSON.parse(x.value) as { topic?: string; payload?: string };
            if (m.topic === 'state' && m.payload) out.push(JSON.parse(m.payload) as Record<string, unknown>);
          }
        }
      }
      return out;
    },
    async sendDesired(version, config) {
      const c = await mqtt.connectAsync(cloud.testUrl, { protocolVersion: 5, clientId: `des-${Math.random()}` });
      if (profile === 'azure-iot-hub')
        await c.publishAsync(
          `$iothub/twin/PATCH/properties/desired/?$version=${version}`,
          JSON.stringify({ config, $version: version }),
          { qos: 1 },
        );
      else {
        const prefix = profile === 'aws-iot' ? 'edge/device-42' : 'edge/gw-e2e';
        await c.publishAsync(`${prefix}/config/desired`, JSON.stringify({ version, config }), { qos: 1 });
      }
      await c.endAsync();
    },
    commandResults: (deviceId) => repliesOn(`devices/${deviceId}/command_result`),
    configReported: () => repliesOn('config/reported'),
    bdSeqs(type) {
      const out: { index: number; bdSeq: number; lastBirthBdSeq: number | undefined }[] = [];
      let last: number | undefined;
      for (const [i, g] of side.got.entries()) {
        const m = /^spBv1\.0\/g1\/(NBIRTH|NDEATH)\/gw-e2e$/.exec(g.topic);
        if (!m) continue;
        const bd = num(tahu.decodePayload(g.payload).metrics!.find((x) => x.name === 'bdSeq')!.value);
        if (m[1] === 'NBIRTH') last = bd;
        else if (m[1] === type) out.push({ index: i, bdSeq: bd, lastBirthBdSeq: last });
      }
      return out;
    },
    async sendCommand(deviceId, body) {
      const c = await mqtt.connectAsync(cloud.testUrl, { protocolVersion: 5, clientId: `cmd-${Math.random()}` });
      const topic =
        profile === 'mqtt'
          ? `edge/gw-e2e/commands/${deviceId}`
          : profile === 'aws-iot'
            ? `edge/device-42/commands/${deviceId}`
            : profile === 'azure-iot-hub'
              ? `devices/gw-e2e/messages/devicebound/device=${deviceId}`
              : `spBv1.0/g1/DCMD/gw-e2e/${deviceId}`;
      const payload =
        profile === 'sparkplug-b'
          ? Buffer.from(
              (
                createRequire(import.meta.url)('sparkplug-payload') as {
                  get(ns: string): { encodePayload(p: object): Uint8Array };
                }
              )
                .get('spBv1.0')
                .encodePayload({ timestamp: Date.now(), metrics: [{ name: 'cmd', type: 'String', value: body }] }),
            )
          : Buffer.from(body);
      await c.publishAsync(topic, payload, { qos: 1 });
      await c.endAsync();
    },
    async close() {
      await rig.gateway.stop('SIGKILL');
      await side.close();
      await cloud.close();
      pki?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await rig.gateway.ready(20000);
  return rig;
}

function missing(pubs: readonly Publisher[], got: Set<string>): number {
  let n = 0;
  for (const p of pubs) for (const seq of p.acked) if (!got.has(`${p.dev}/${seq}`)) n++;
  return n;
}

/** driveOutage against a profile's cloud: every acknowledged reading must arrive. */
export async function runProfileOutage(
  rig: ProfileRig,
  total: number,
  nPub: number,
  timeoutMs: number,
): Promise<{ acked: number; missing: number; downSeconds: number }> {
  const missingOf = (pubs: readonly Publisher[]) => missing(pubs, rig.delivered());
  return withPublishers(rig, nPub, async (pubs) => {
    const downSeconds = await driveOutage(rig, pubs, total, timeoutMs, missingOf);
    return { acked: pubs.reduce((a, p) => a + p.acked.size, 0), missing: missingOf(pubs), downSeconds };
  });
}

/** driveCrashLoop against a profile's cloud: every PUBACKed reading arrives. */
export async function runProfileCrashLoop(
  rig: ProfileRig,
  kills: number,
  nPub: number,
  roundMs: number,
  timeoutMs: number,
): Promise<{ acked: number; missing: number }> {
  const missingOf = (pubs: readonly Publisher[]) => missing(pubs, rig.delivered());
  return withPublishers(
    rig,
    nPub,
    async (pubs) => {
      await driveCrashLoop(rig, pubs, kills, roundMs, timeoutMs, missingOf);
      return { acked: pubs.reduce((a, p) => a + p.acked.size, 0), missing: missingOf(pubs) };
    },
    32,
  );
}
