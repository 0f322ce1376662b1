import { lazyRequire } from '../lifecycle/lazy.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { LatestValues } from '../pipeline/latest.js';
import type { RefusalCode } from '../pipeline/normalise.js';
import type { Pipeline, Refusal } from '../pipeline/pipeline.js';
import { isValidDeviceId, type Reading } from '../pipeline/reading.js';
import { CT_CBOR, CT_JSON, decodePayload, PayloadError, type BinaryDecoder, type DecodedPayload } from './payload.js';
import { json, text, type CoapReply, type CoapRequest, type Resource } from './router.js';

export interface SensorResourceOptions {
  pipeline: Pipeline;
  latest: LatestValues;
  devices: DeviceRegistry;
  log: Logger;
  binary?: BinaryDecoder;
  /** Wall clock for readings without a timestamp. */
  wallClock?: () => number;
}

/** Devices listed in /.well-known/core and /sensors; beyond this the list says it is truncated. */
const MAX_LISTED = 1000;
const DISCOVERY_INSTANCES = 100;
// Loaded on the first CBOR answer (lifecycle/lazy.ts).
const cborX = lazyRequire<typeof import('cbor-x')>('cbor-x');
let cbor: import('cbor-x').Encoder | undefined;

/** `/sensors` and `/sensors/{deviceId}`: ingest (POST), latest value (GET) and observe (RFC 7641). */
export function sensorResources(opts: SensorResourceOptions): { resources: Resource[]; close(): void } {
  const { pipeline, latest, devices, log } = opts;
  const wallClock = opts.wallClock ?? Date.now;
  const watchers = new Map<string, Set<(r: Reading) => void>>();
  const onUpdate = (r: Reading) => {
    const set = watchers.get(r.deviceId);
    if (set) for (const fn of set) fn(r);
  };
  latest.on('update', onUpdate);

  const represent = (r: Reading, accept: number | undefined): CoapReply =>
    accept === CT_CBOR
      ? {
          code: '2.05',
          payload: (cbor ??= new (cborX().Encoder)({ useRecords: false, mapsAsObjects: true })).encode(r),
          contentFormat: CT_CBOR,
        }
      : { code: '2.05', payload: JSON.stringify(r), contentFormat: CT_JSON };

  const acceptable = (req: CoapRequest) => req.accept === undefined || req.accept === CT_JSON || req.accept === CT_CBOR;

  const post = async (req: CoapRequest, deviceId: string): Promise<CoapReply> => {
    if (!isValidDeviceId(deviceId))
      return text('4.00', 'device id not allowed: letters, digits, _ . : - (1-64, EGW_INGEST_DEVICE_ID)');
    const refusal = (code: RefusalCode, reason: string, accepted: number): Refusal => ({
      source: 'coap',
      transport: 'coap',
      deviceId,
      origin: `coap:${req.source}`,
      topic: `sensors/${deviceId}/data`,
      payload: req.payload,
      code,
      reason,
      accepted,
    });
    let decoded: DecodedPayload;
    try {
      decoded = decodePayload(req.payload, req.contentFormat, deviceId, wallClock(), opts.binary);
    } catch (err) {
      if (err instanceof PayloadError) {
        // The client is told (4.00/4.15); the bytes are kept too, and counted for the device.
        void pipeline.refuse(refusal(err.code, err.message, 0));
        return text(err.coapCode, err.message);
      }
      throw err;
    }
    // Accepted with parts left out: the original payload is kept beside the readings (2.01 below).
    const kept =
      decoded.problemCount > 0
        ? pipeline.refuse(refusal(decoded.code, decoded.message, decoded.readings.length))
        : undefined;
    try {
      // Acknowledge after commit: 2.01 only once every sink (outbox included) has committed.
      await pipeline.ingest(decoded.readings, { topic: `sensors/${deviceId}/data`, origin: `coap:${req.source}` });
    } catch (err) {
      await kept;
      if (err instanceof GatewayError && err.code === 'EGW_PIPELINE_OVERLOAD') {
        return { ...text('5.03', 'gateway busy; retry later'), maxAge: 5 };
      }
      log.error({ err, deviceId }, 'CoAP ingest failed');
      return text('5.00', 'reading not accepted; retry');
    }
    await kept;
    devices.message(deviceId, 'coap', req.payload.length);
    if (!devices.get(deviceId)?.online) devices.setOnline(deviceId, 'coap', true);
    return { code: '2.01' };
  };

  const list: Resource = {
    path: '/sensors',
    rt: 'edge.sensors',
    if: 'core.ll',
    ct: [CT_JSON],
    title: 'Devices with a latest reading',
    methods: {
      GET: () => {
        const ids = latest.devices();
        const shown = ids.slice(-MAX_LISTED).reverse(); // most recently updated first
        const items = shown.map((id) => latest.get(id)).filter((r): r is Reading => r !== undefined);
        return json('2.05', { count: ids.length, truncated: ids.length > shown.length, devices: items });
      },
    },
  };

  const one: Resource = {
    path: '/sensors/{deviceId}',
    rt: 'edge.reading',
    if: 'core.s',
    ct: [CT_JSON, CT_CBOR],
    obs: true,
    instances: () =>
      latest
        .devices()
        .slice(-DISCOVERY_INSTANCES)
        .map((id) => `/sensors/${id}`),
    methods: {
      GET: (req, p) => {
        const id = p['deviceId']!;
        if (!isValidDeviceId(id)) return text('4.00', 'device id not allowed');
        if (!acceptable(req)) return text('4.06', 'Accept 50 (JSON) or 60 (CBOR)');
        const r = latest.get(id);
        // Observing a device that has not reported yet is allowed: 2.05 with an empty state.
        if (!r)
          return req.observe
            ? json('2.05', { deviceId: id, pending: true })
            : text('4.04', `no reading from ${id} yet`);
        return represent(r, req.accept);
      },
      POST: (req, p) => post(req, p['deviceId']!),
      PUT: (req, p) => post(req, p['deviceId']!),
    },
    observe: (req, p, push) => {
      const id = p['deviceId']!;
      const fn = (r: Reading) => push(represent(r, req.accept));
      let set = watchers.get(id);
      if (!set) watchers.set(id, (set = new Set()));
      set.add(fn);
      return () => {
        set.delete(fn);
        if (set.size === 0) watchers.delete(id);
      };
    },
  };

  return {
    resources: [list, one],
    close: () => {
      latest.off('update', onUpdate);
      watchers.clear();
    },
  };
}
