import { lazyRequire } from '../lifecycle/lazy.js';
import {
  describeProblems,
  MAX_READINGS_PER_MESSAGE,
  normaliseDocument,
  normaliseJson,
  normaliseReadings,
  type Normalised,
  type RefusalCode,
} from '../pipeline/normalise.js';
import { isValidDeviceId, type Reading, type ReadingSource } from '../pipeline/reading.js';

/** CoAP Content-Format numbers (IANA registry, RFC 7252 §12.3). */
export const CT_TEXT = 0;
export const CT_LINK_FORMAT = 40;
export const CT_JSON = 50;
export const CT_CBOR = 60;

/** A decoder for the binary codec, plugged in by the composition root when `src/codec/` provides one. */
export interface BinaryDecoder {
  contentFormat: number;
  decode(buf: Buffer, deviceId: string): Reading[];
}

export class PayloadError extends Error {
  constructor(
    /** CoAP response code to answer with: 4.00 bad payload, 4.15 unknown format. */
    readonly coapCode: '4.00' | '4.15',
    message: string,
    /** Catalogue code for the dead letter and logs. */
    readonly code: RefusalCode = 'EGW_INGEST_INVALID',
  ) {
    super(message);
  }
}

/** Most readings one request may carry (a batch); more is a 4.00, not a silent cut. */
export const MAX_BATCH = MAX_READINGS_PER_MESSAGE;

// Loaded on the first CBOR payload (lifecycle/lazy.ts).
const cborX = lazyRequire<typeof import('cbor-x')>('cbor-x');
let cbor: import('cbor-x').Decoder | undefined;

/** Readings accepted from a payload, and what was left out (kept as a dead letter by the caller). */
export interface DecodedPayload {
  readings: Reading[];
  /** Readings refused or fields left out; 0 when the payload was accepted whole. */
  problemCount: number;
  /** One line describing the problems ('' when none). */
  message: string;
  code: RefusalCode;
}

/**
 * Payload → Readings by Content-Format: JSON (50), CBOR (60) and the binary codec, all through the
 * shared normaliser (pipeline/normalise.ts; shapes and limits in docs/readings.md). An absent
 * Content-Format is treated as JSON. Throws PayloadError (4.00 / 4.15) when nothing can be
 * accepted; otherwise returns the readings and what was left out.
 */
export function decodePayload(
  payload: Buffer,
  contentFormat: number | undefined,
  deviceId: string,
  nowMs: number,
  binary?: BinaryDecoder,
  source: ReadingSource = 'coap',
): DecodedPayload {
  if (!isValidDeviceId(deviceId)) throw new PayloadError('4.00', 'device id not allowed');
  if (payload.length === 0) throw new PayloadError('4.00', 'empty payload');
  let n: Normalised;
  if (contentFormat === undefined || contentFormat === CT_JSON) {
    n = normaliseJson(payload, deviceId, source, nowMs);
  } else if (contentFormat === CT_CBOR) {
    let doc: unknown;
    try {
      cbor ??= new (cborX().Decoder)({ mapsAsObjects: true, useRecords: false });
      doc = cbor.decode(payload);
    } catch (err) {
      throw new PayloadError('4.00', `invalid CBOR: ${(err as Error).message}`);
    }
    n = normaliseDocument(doc, deviceId, source, nowMs);
  } else if (binary && contentFormat === binary.contentFormat) {
    let decoded: Reading[];
    try {
      decoded = binary.decode(payload, deviceId);
    } catch (err) {
      throw new PayloadError('4.00', `invalid binary reading: ${(err as Error).message}`);
    }
    const other = decoded.find((r) => r.deviceId && r.deviceId !== deviceId);
    // The URI names the device; a batch for another device is refused rather than relabelled.
    if (other) {
      const why = `reading for device ${other.deviceId} posted to /sensors/${deviceId}`;
      throw new PayloadError('4.00', why, 'EGW_INGEST_DEVICE_ID');
    }
    n = normaliseReadings(
      decoded.map((r) => ({ ...r, deviceId, source })),
      nowMs,
    );
  } else {
    const accepted = [CT_JSON, CT_CBOR, ...(binary ? [binary.contentFormat] : [])].join(', ');
    throw new PayloadError('4.15', `Content-Format ${contentFormat} not accepted; use ${accepted}`);
  }
  const message = n.problemCount > 0 ? describeProblems(n) : '';
  if (n.readings.length === 0) throw new PayloadError('4.00', message, n.code);
  return { readings: n.readings, problemCount: n.problemCount, message, code: n.code };
}

/** decodePayload's readings only (what was left out is not reported): for callers that keep no dead letters. */
export function decodeReadings(
  payload: Buffer,
  contentFormat: number | undefined,
  deviceId: string,
  nowMs: number,
  binary?: BinaryDecoder,
): Reading[] {
  return decodePayload(payload, contentFormat, deviceId, nowMs, binary).readings;
}
