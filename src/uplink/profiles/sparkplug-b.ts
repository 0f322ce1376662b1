import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { isValidDeviceId, type Reading, type ReadingValue } from '../../pipeline/reading.js';
import { readingsOf } from './json.js';
import { DataType, decodeSparkplug, encodeSparkplug, type SpMetric, type SpPayload } from './sparkplug-schema.js';
import type { CloudProfile, Downlink, ProfileLink, ProfileMessage, WirePublish } from './types.js';

/** Sparkplug B 3.0 namespace (spec §4.1.1: `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`). */
export const SP_NAMESPACE = 'spBv1.0';
export const REBIRTH_METRIC = 'Node Control/Rebirth';
/** Non-reading messages (alerts, status, plugin messages) as one String metric of the node. */
export const MESSAGE_METRIC = 'Gateway/Message';
/** Alias of the node's own metrics; device metrics get 100 and up. */
const NODE_ALIASES = { bdSeq: 1, rebirth: 2, message: 3 } as const;
/** Bound on the metrics remembered per node (aliases and last values); beyond it, DDATA goes without aliases. */
const MAX_METRICS = 100_000;

interface MetricState {
  alias: number;
  datatype: number;
  last: ReadingValue;
  ts: number;
}

interface DeviceState {
  metrics: Map<string, MetricState>;
  aliasToName: Map<number, string>;
}

/** Command id of an NCMD/DCMD: its timestamp and a digest of its bytes (stable across redeliveries). */
function commandId(p: SpPayload, raw: Buffer): string {
  const ts = typeof p.timestamp === 'number' ? p.timestamp : Number(p.timestamp ?? 0);
  return `spb-${ts}-${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
}

function datatypeOf(v: ReadingValue): number | undefined {
  if (typeof v === 'number') return DataType.Double;
  if (typeof v === 'boolean') return DataType.Boolean;
  if (typeof v === 'string') return DataType.String;
  return undefined;
}

function withValue(m: SpMetric, datatype: number, v: ReadingValue): SpMetric {
  if (v === null) m.isNull = true;
  else if (datatype === DataType.Double) m.doubleValue = v as number;
  else if (datatype === DataType.Boolean) m.booleanValue = v as boolean;
  else m.stringValue = v as string;
  return m;
}

function valueOf(m: SpMetric): ReadingValue {
  if (m.isNull) return null;
  return m.doubleValue ?? m.floatValue ?? m.longValue ?? m.intValue ?? m.booleanValue ?? m.stringValue ?? null;
}

export interface SparkplugOptions {
  groupId: string;
  edgeNodeId: string;
  nowMs?: () => number;
  /**
   * Where the last bdSeq is kept across restarts (`{data_dir}/sparkplug-bdseq`). Without it a
   * restarted process starts at 0 again, and a late NDEATH will from the killed process (bdSeq 0)
   * would match the new NBIRTH's bdSeq 0: the host application would mark the live node dead.
   */
  bdSeqFile?: string;
}

/** The bdSeq of the previous CONNECT, or -1 when none was recorded (or the record is unreadable). */
function loadBdSeq(file: string | undefined): number {
  if (!file) return -1;
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n >= 0 && n <= 255 ? n : -1;
  } catch {
    return -1;
  }
}

/** Best effort, atomically (a power cut leaves the old or the new value, never half a file). */
function saveBdSeq(file: string | undefined, n: number): void {
  if (!file) return;
  try {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, `${n}\n`);
    renameSync(tmp, file);
  } catch {
    // An unwritable data dir costs only the cross-restart guarantee; the session still works.
  }
}

/**
 * Eclipse Sparkplug B 3.0 (docs/cloud-profiles.md): the gateway is the edge node, each device id a
 * Sparkplug device. NDEATH is the MQTT will, carrying the bdSeq of the connection (§5.2, bdSeq
 * incremented per CONNECT, 0–255); NBIRTH after each connect (seq 0) and on an NCMD
 * `Node Control/Rebirth`; a DBIRTH before a device's first DDATA in a session and when its metric
 * set or types change; DDEATH when its status goes offline; seq 0–255 on every message after
 * NBIRTH; metric names in births, aliases in data. Protobuf payloads (sparkplug-schema.ts).
 */
export function sparkplugProfile(o: SparkplugOptions): CloudProfile {
  const now = o.nowMs ?? (() => Date.now());
  const base = `${SP_NAMESPACE}/${o.groupId}`;
  const node = o.edgeNodeId;
  const topic = (type: string, device?: string) =>
    device === undefined ? `${base}/${type}/${node}` : `${base}/${type}/${node}/${device}`;
  let bdSeq = loadBdSeq(o.bdSeqFile);
  let seq = 0;
  let nextAlias = 100;
  let metricCount = 0;
  const devices = new Map<string, DeviceState>();
  /** Devices with a DBIRTH in the current session. */
  const born = new Set<string>();

  const nextSeq = (): number => (seq = (seq + 1) % 256);

  const nbirth = (): WirePublish => {
    seq = 0; // [tck-id-payloads-nbirth-seq]: NBIRTH carries seq 0; the next message is 1
    const ts = now();
    return {
      topic: topic('NBIRTH'),
      qos: 0, // [tck-id-topics-nbirth-qos]
      payload: encodeSparkplug({
        timestamp: ts,
        seq: 0,
        metrics: [
          { name: 'bdSeq', alias: NODE_ALIASES.bdSeq, timestamp: ts, datatype: DataType.Int64, longValue: bdSeq },
          {
            name: REBIRTH_METRIC,
            alias: NODE_ALIASES.rebirth,
            timestamp: ts,
            datatype: DataType.Boolean,
            booleanValue: false,
          },
          {
            name: MESSAGE_METRIC,
            alias: NODE_ALIASES.message,
            timestamp: ts,
            datatype: DataType.String,
            stringValue: '',
          },
        ],
      }),
    };
  };

  const dbirth = (deviceId: string, d: DeviceState): WirePublish => {
    const metrics: SpMetric[] = [];
    for (const [name, m] of d.metrics) {
      metrics.push(withValue({ name, alias: m.alias, timestamp: m.ts, datatype: m.datatype }, m.datatype, m.last));
    }
    born.add(deviceId);
    return {
      topic: topic('DBIRTH', deviceId),
      qos: 0, // [tck-id-topics-dbirth-qos]
      payload: encodeSparkplug({ timestamp: now(), seq: nextSeq(), metrics }),
    };
  };

  /** Learns the readings' metrics; true when the device needs a (new) DBIRTH before its DDATA. */
  const learn = (deviceId: string, readings: readonly Reading[]): boolean => {
    let d = devices.get(deviceId);
    let rebirth = !born.has(deviceId);
    if (!d) devices.set(deviceId, (d = { metrics: new Map(), aliasToName: new Map() }));
    for (const r of readings) {
      for (const [name, v] of Object.entries(r.values)) {
        const m = d.metrics.get(name);
        const t = datatypeOf(v);
        if (!m) {
          if (metricCount >= MAX_METRICS) continue;
          metricCount++;
          const alias = nextAlias++;
          d.metrics.set(name, { alias, datatype: t ?? DataType.Double, last: v, ts: r.ts });
          d.aliasToName.set(alias, name);
          rebirth = true;
        } else if (t !== undefined && t !== m.datatype) {
          // A metric's datatype is fixed by its birth (§6.4.x): a new type needs a new DBIRTH.
          m.datatype = t;
          rebirth = true;
        }
      }
    }
    return rebirth;
  };

  const ddata = (deviceId: string, readings: readonly Reading[]): WirePublish => {
    const d = devices.get(deviceId)!;
    const metrics: SpMetric[] = [];
    for (const r of readings) {
      for (const [name, v] of Object.entries(r.values)) {
        const m = d.metrics.get(name);
        if (!m) {
          // Over the metric bound: sent by name (no alias), still typed.
          const t = datatypeOf(v) ?? DataType.Double;
          metrics.push(withValue({ name, timestamp: r.ts, datatype: t }, t, v));
          continue;
        }
        if (r.ts >= m.ts) {
          m.last = v;
          m.ts = r.ts;
        }
        metrics.push(withValue({ alias: m.alias, timestamp: r.ts, datatype: m.datatype }, m.datatype, v));
      }
    }
    return {
      topic: topic('DDATA', deviceId),
      qos: 1,
      payload: encodeSparkplug({ timestamp: now(), seq: nextSeq(), metrics }),
    };
  };

  const rebirthAll = (link: ProfileLink): void => {
    born.clear();
    link.publish(nbirth());
    for (const [id, d] of devices) if (d.metrics.size > 0) link.publish(dbirth(id, d));
  };

  const commandMetrics = (p: SpPayload, d: DeviceState | undefined): Record<string, ReadingValue> => {
    const out: Record<string, ReadingValue> = {};
    for (const m of p.metrics) {
      const name = m.name ?? (m.alias !== undefined ? d?.aliasToName.get(m.alias) : undefined);
      if (name !== undefined) out[name] = valueOf(m);
    }
    return out;
  };

  /** Results and reported state ride as one NDATA `Gateway/Message` string metric (docs/cloud-profiles.md). */
  const nodeMessage = (body: Record<string, unknown>): WirePublish => {
    const ts = now();
    return {
      topic: topic('NDATA'),
      qos: 1,
      payload: encodeSparkplug({
        timestamp: ts,
        seq: nextSeq(),
        metrics: [
          { alias: NODE_ALIASES.message, timestamp: ts, datatype: DataType.String, stringValue: JSON.stringify(body) },
        ],
      }),
    };
  };

  return {
    name: 'sparkplug-b',
    protocolVersion: 5,
    maxPayloadBytes: 268_435_455,
    maxInflight: undefined,
    topicPrefix: base,
    connectOptions(b: IClientOptions): IClientOptions {
      bdSeq = (bdSeq + 1) % 256; // §5.2: bdSeq + 1 per CONNECT, 255 wraps to 0
      saveBdSeq(o.bdSeqFile, bdSeq);
      const ts = now();
      return {
        ...b,
        // [tck-id-principles-persistence-clean-session-50]: Clean Start true, Session Expiry 0.
        clean: true,
        properties: { ...b.properties, sessionExpiryInterval: 0 },
        will: {
          topic: topic('NDEATH'),
          qos: 1, // [tck-id-topics-ndeath-will-qos] NDEATH will: QoS 1, not retained
          retain: false,
          payload: encodeSparkplug({
            timestamp: ts,
            metrics: [{ name: 'bdSeq', timestamp: ts, datatype: DataType.Int64, longValue: bdSeq }],
          }),
        },
      };
    },
    renewAfterMs: () => undefined,
    subscriptions: () => [topic('NCMD'), `${topic('DCMD')}/+`],
    onConnected: rebirthAll,
    onStopping(link) {
      // §5.3: an edge node that disconnects on purpose publishes its NDEATH itself first.
      const ts = now();
      link.publish({
        topic: topic('NDEATH'),
        qos: 0,
        payload: encodeSparkplug({
          timestamp: ts,
          metrics: [{ name: 'bdSeq', timestamp: ts, datatype: DataType.Int64, longValue: bdSeq }],
        }),
      });
    },
    encode(msg: ProfileMessage): WirePublish[] {
      const readings = readingsOf(msg);
      if (readings !== undefined && readings.length > 0) {
        // One device per batch (the outbox batches by topic and device).
        const deviceId = readings[0]!.deviceId;
        const out: WirePublish[] = [];
        if (learn(deviceId, readings)) out.push(dbirth(deviceId, devices.get(deviceId)!));
        out.push(ddata(deviceId, readings));
        return out;
      }
      const status = /^devices\/([^/]+)\/status$/.exec(msg.topic);
      if (status) {
        const id = status[1]!;
        let online = true;
        try {
          online = (JSON.parse(Buffer.from(msg.payload).toString('utf8')) as { online?: unknown }).online !== false;
        } catch {
          // Not the gateway's status document: treated as a plain message below.
        }
        if (!online) {
          if (!born.has(id)) return []; // never born in this session: nothing to take back
          born.delete(id);
          return [
            {
              topic: topic('DDEATH', id),
              qos: 1,
              payload: encodeSparkplug({ timestamp: now(), seq: nextSeq(), metrics: [] }),
            },
          ];
        }
      }
      const body = Buffer.from(msg.payload);
      const value = JSON.stringify({
        id: msg.id,
        topic: msg.topic,
        contentType: msg.contentType,
        ...(msg.contentType.startsWith('application/json') || msg.contentType.startsWith('text/')
          ? { payload: body.toString('utf8') }
          : { payloadBase64: body.toString('base64') }),
      });
      const ts = now();
      return [
        {
          topic: topic('NDATA'),
          qos: 1,
          payload: encodeSparkplug({
            timestamp: ts,
            seq: nextSeq(),
            metrics: [{ alias: NODE_ALIASES.message, timestamp: ts, datatype: DataType.String, stringValue: value }],
          }),
        },
      ];
    },
    inbound(t: string, payload: Buffer, link: ProfileLink): Downlink | undefined {
      let p: SpPayload;
      try {
        p = decodeSparkplug(payload);
      } catch {
        return undefined; // not a Sparkplug payload: refused at the boundary
      }
      if (t === topic('NCMD')) {
        const rebirth = p.metrics.some(
          (m) => (m.name === REBIRTH_METRIC || m.alias === NODE_ALIASES.rebirth) && m.booleanValue === true,
        );
        if (rebirth) {
          rebirthAll(link); // §6.4.x Node Control/Rebirth: NBIRTH and every DBIRTH again
          return undefined;
        }
        return {
          kind: 'gateway-command',
          payload: Buffer.from(JSON.stringify(commandMetrics(p, undefined))),
          props: { userProperties: { 'msg-id': commandId(p, payload) } },
        };
      }
      const prefix = `${topic('DCMD')}/`;
      if (t.startsWith(prefix)) {
        const deviceId = t.slice(prefix.length);
        const body = Buffer.from(JSON.stringify(commandMetrics(p, devices.get(deviceId))));
        // A DCMD has no command id: the payload's timestamp and content name it, so a QoS 1
        // redelivery of the same DCMD is recognised by the command pipeline's dedupe.
        const props = { userProperties: { 'msg-id': commandId(p, payload) } };
        if (!isValidDeviceId(deviceId)) return { kind: 'bad-device-id', raw: deviceId, payload: body, props };
        return { kind: 'device-command', deviceId, payload: body, props };
      }
      return undefined;
    },
    // Sparkplug's namespace has no place for replies: they ride as NDATA message metrics like
    // alerts do, `{"topic": "devices/{id}/command_result", "payload": "..."}` (docs/cloud-profiles.md).
    replies: {
      deviceCommandResult: (id) => `devices/${id}/command_result`,
      gatewayCommandResult: () => 'gateway/command_result',
      configReported: () => 'config/reported',
    },
    commandResult(to, json, opts) {
      return nodeMessage({ topic: to, ...(opts.msgId ? { id: opts.msgId } : {}), payload: json });
    },
    reportState(doc) {
      return nodeMessage({ topic: 'state', payload: JSON.stringify(doc) });
    },
  };
}
