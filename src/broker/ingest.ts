import {
  describeProblems,
  normaliseJson,
  normaliseReadings,
  type Normalised,
  type Problem,
  type RefusalCode,
} from '../pipeline/normalise.js';
import { isValidDeviceId, type Reading } from '../pipeline/reading.js';
import { contentTypeKind } from './mqtt5.js';

export { MAX_READINGS_PER_MESSAGE, MAX_VALUES_PER_READING } from '../pipeline/normalise.js';

/**
 * The pure ingest decoder: topic + payload bytes → Readings, or a refusal with a code. No I/O,
 * so it is tested with bytes alone and the binary codec plugs in as one more decoder. Values,
 * limits and timestamps are the shared normaliser's (pipeline/normalise.ts, docs/readings.md).
 */

/** Binary payload formats (the codec) tried before JSON when they recognise the bytes. */
export interface PayloadDecoder {
  readonly name: string;
  looksLike(payload: Buffer): boolean;
  /** Returns the readings or throws (a coded GatewayError for a precise reason). */
  decode(payload: Buffer, deviceId: string, receivedAt: number): Reading[];
}

export type IngestResult =
  | {
      ok: true;
      deviceId: string;
      readings: Reading[];
      /** Readings refused or fields left out: the payload is kept as a dead letter. */
      problems: Problem[] | undefined;
      /** One line describing the problems ('' when none). */
      message: string;
    }
  | { ok: false; deviceId: string | undefined; code: RefusalCode; message: string };

/**
 * `sensors/{deviceId}/data` → the raw id segment; undefined for any other topic (those are
 * routed but not ingested). Checked by string ops only: this runs on every publish.
 */
export function sensorTopicId(topic: string): string | undefined {
  if (!topic.startsWith('sensors/') || !topic.endsWith('/data')) return undefined;
  const id = topic.slice(8, -5);
  return id.length > 0 && !id.includes('/') ? id : undefined;
}

function outcome(id: string, n: Normalised, prefix: string): IngestResult {
  if (n.readings.length === 0) {
    return { ok: false, deviceId: id, code: n.code, message: prefix + describeProblems(n) };
  }
  return {
    ok: true,
    deviceId: id,
    readings: n.readings,
    problems: n.problems,
    message: n.problemCount > 0 ? prefix + describeProblems(n) : '',
  };
}

export function decodeSensorMessage(
  topic: string,
  payload: Buffer,
  receivedAt: number,
  decoders: readonly PayloadDecoder[] = [],
  contentType?: string,
): IngestResult | undefined {
  const id = sensorTopicId(topic);
  if (id === undefined) return undefined;
  // DESIGN "identifiers are checked at the boundary".
  if (!isValidDeviceId(id)) {
    return {
      ok: false,
      deviceId: undefined,
      code: 'EGW_INGEST_DEVICE_ID',
      message: `device id in topic ${JSON.stringify(topic.slice(0, 100))} is not allowed`,
    };
  }
  // An MQTT 5 Content Type may name the format (application/json or the codec's media type);
  // absent or unknown, the payload decides (the codec's magic byte).
  const kind = contentTypeKind(contentType);
  for (const d of kind === 'json' ? [] : decoders) {
    if (!d.looksLike(payload)) {
      if (kind === 'codec') {
        return {
          ok: false,
          deviceId: id,
          code: 'EGW_INGEST_INVALID',
          message: `${d.name}: content type ${contentType} but not a codec payload`,
        };
      }
      continue;
    }
    let readings: Reading[];
    try {
      readings = d.decode(payload, id, receivedAt);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      return {
        ok: false,
        deviceId: id,
        code: code === 'EGW_INGEST_DEVICE_ID' ? code : 'EGW_INGEST_INVALID',
        message: `${d.name}: ${(err as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`,
      };
    }
    if (readings.length === 0)
      return { ok: false, deviceId: id, code: 'EGW_INGEST_INVALID', message: `${d.name} payload holds no reading` };
    return outcome(id, normaliseReadings(readings, receivedAt), `${d.name}: `);
  }
  return outcome(id, normaliseJson(payload, id, 'mqtt', receivedAt), '');
}
