import protobuf from 'protobufjs';

/**
 * The part of the Sparkplug B payload schema the gateway writes and reads: `Payload` and `Metric`
 * with scalar values. Field numbers and types are those of the Sparkplug B 3.0 specification
 * (§6.4 "Payload Definition", the normative `sparkplug_b.proto` of Eclipse Tahu,
 * github.com/eclipse/tahu/blob/master/sparkplug_b/sparkplug_b.proto, package
 * org.eclipse.tahu.protobuf). Fields the gateway never uses (templates, data sets, property sets,
 * metadata) are left out: protobuf decoders skip unknown fields, so the bytes stay compatible.
 * The tests decode what the gateway sends with Tahu's own generated decoder (sparkplug-payload).
 */
const schema = {
  nested: {
    // proto2 (as sparkplug_b.proto): explicit presence, so seq 0 and false are written, not skipped.
    Payload: {
      edition: 'proto2',
      fields: {
        timestamp: { type: 'uint64', id: 1 },
        metrics: { rule: 'repeated', type: 'Metric', id: 2 },
        seq: { type: 'uint64', id: 3 },
        uuid: { type: 'string', id: 4 },
        body: { type: 'bytes', id: 5 },
      },
      nested: {
        Metric: {
          edition: 'proto2',
          oneofs: {
            value: {
              oneof: [
                'intValue',
                'longValue',
                'floatValue',
                'doubleValue',
                'booleanValue',
                'stringValue',
                'bytesValue',
              ],
            },
          },
          fields: {
            name: { type: 'string', id: 1 },
            alias: { type: 'uint64', id: 2 },
            timestamp: { type: 'uint64', id: 3 },
            datatype: { type: 'uint32', id: 4 },
            isHistorical: { type: 'bool', id: 5 },
            isTransient: { type: 'bool', id: 6 },
            isNull: { type: 'bool', id: 7 },
            intValue: { type: 'uint32', id: 10 },
            longValue: { type: 'uint64', id: 11 },
            floatValue: { type: 'float', id: 12 },
            doubleValue: { type: 'double', id: 13 },
            booleanValue: { type: 'bool', id: 14 },
            stringValue: { type: 'string', id: 15 },
            bytesValue: { type: 'bytes', id: 16 },
          },
        },
      },
    },
  },
};

const PayloadType = protobuf.Root.fromJSON(schema).lookupType('Payload');

/** Sparkplug B data types used here (spec §6.4.16 "Datatype Details"). */
export const DataType = { Int64: 4, UInt64: 8, Double: 10, Boolean: 11, String: 12 } as const;

export interface SpMetric {
  name?: string;
  alias?: number;
  timestamp?: number;
  datatype?: number;
  isHistorical?: boolean;
  isNull?: boolean;
  longValue?: number;
  doubleValue?: number;
  booleanValue?: boolean;
  stringValue?: string;
  intValue?: number;
  floatValue?: number;
}

export interface SpPayload {
  timestamp?: number;
  metrics: SpMetric[];
  seq?: number;
}

export function encodeSparkplug(p: SpPayload): Buffer {
  return Buffer.from(PayloadType.encode(PayloadType.fromObject(p)).finish());
}

/** Decodes an incoming payload (NCMD/DCMD from the cloud: untrusted). Throws on malformed bytes. */
export function decodeSparkplug(buf: Uint8Array): SpPayload {
  const m = PayloadType.decode(buf);
  const o = PayloadType.toObject(m, { longs: Number, defaults: false, oneofs: false }) as {
    timestamp?: number;
    seq?: number;
    metrics?: SpMetric[];
  };
  return {
    ...(o.timestamp !== undefined ? { timestamp: o.timestamp } : {}),
    metrics: o.metrics ?? [],
    ...(o.seq !== undefined ? { seq: o.seq } : {}),
  };
}
