import { serialize, deserialize } from 'node:v8';

/**
 * Row encoding of an MQTT packet object (pure: values in, values out).
 *
 * aedes hands the persistence plain objects and aedes-packet `Packet`s whose own keys must come
 * back exactly (the abstract suite deep-compares them, `messageId: undefined` included), with the
 * payload's type kept (Buffer stays Buffer, string stays string). `v8.serialize` does all that but
 * costs ~12 µs a packet because every Buffer goes through a JS host-object hook, so the hot path
 * is split in three columns instead:
 * - `head`: JSON of the scalar fields; `$u` lists keys whose value is `undefined`, `$p` marks that
 *   a `payload` key exists.
 * - `payload`: the payload as BLOB (Buffer/Uint8Array) or TEXT (string) — SQLite keeps the type.
 * - `extra`: `v8.serialize` of the rare object-valued fields (MQTT 5 `properties`, which may hold
 *   Buffers such as correlationData), NULL otherwise.
 * Function-valued keys (aedes' QoSPacket carries `writeCallback`) are not data and are dropped.
 */
export interface EncodedPacket {
  head: string;
  payload: Buffer | string | null;
  extra: Buffer | null;
}

export type PacketObject = Record<string, unknown>;

export function encodePacket(packet: object): EncodedPacket {
  const src = packet as PacketObject;
  const head: PacketObject = {};
  let undef: string[] | undefined;
  let extra: PacketObject | undefined;
  let payload: Buffer | string | null = null;
  for (const key of Object.keys(src)) {
    const v = src[key];
    if (key === 'payload' && (typeof v === 'string' || v instanceof Uint8Array)) {
      payload = typeof v === 'string' ? v : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      head.$p = 1;
      continue;
    }
    switch (typeof v) {
      case 'undefined':
        (undef ??= []).push(key);
        break;
      case 'function':
      case 'symbol':
        break;
      case 'object':
        if (v === null) head[key] = null;
        else (extra ??= {})[key] = v;
        break;
      case 'bigint':
        (extra ??= {})[key] = v;
        break;
      default:
        head[key] = v;
    }
  }
  if (undef !== undefined) head.$u = undef;
  return { head: JSON.stringify(head), payload, extra: extra === undefined ? null : serialize(extra) };
}

export function decodePacket(head: string, payload: unknown, extra: unknown): PacketObject {
  const obj = JSON.parse(head) as PacketObject;
  const undef = obj.$u;
  if (undef !== undefined) {
    delete obj.$u;
    for (const k of undef as string[]) obj[k] = undefined;
  }
  if (obj.$p !== undefined) {
    delete obj.$p;
    // better-sqlite3 returns BLOBs as Buffer and TEXT as string, so the payload type round-trips.
    obj.payload = payload;
  }
  if (Buffer.isBuffer(extra)) Object.assign(obj, deserialize(extra) as PacketObject);
  return obj;
}
