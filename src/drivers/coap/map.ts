import { decodePayload, PayloadError, CT_CBOR, CT_JSON, CT_TEXT } from '../../coap/payload.js';
import type { Sample } from '../types.js';

/**
 * A downstream device's representation → samples. JSON (50) and CBOR (60) take the same shapes as
 * POST /sensors (docs/coap.md); text/plain (0) or an unlabelled body may be a bare number or
 * true/false, named `valueName`. Values go through the shared normaliser (docs/readings.md) like
 * POST /sensors: what it cannot represent is left out and reported through `onProblem`; a payload
 * with nothing representable is refused (PayloadError) with the reason.
 */
export function mapPayload(
  payload: Buffer,
  contentFormat: number | undefined,
  opts: { deviceId: string; valueName: string; unit?: string; nowMs: number; onProblem?: (message: string) => void },
): Sample[] {
  const bare = parseBare(payload);
  if ((contentFormat === undefined || contentFormat === CT_TEXT || contentFormat === CT_JSON) && bare !== undefined) {
    return [
      {
        values: { [opts.valueName]: bare },
        quality: 'good',
        ts: opts.nowMs,
        bytes: payload.length,
        ...(opts.unit ? { units: { [opts.valueName]: opts.unit } } : {}),
      },
    ];
  }
  const ct =
    contentFormat === CT_CBOR
      ? CT_CBOR
      : contentFormat === undefined || contentFormat === CT_TEXT
        ? CT_JSON
        : contentFormat;
  const decoded = decodePayload(payload, ct, opts.deviceId, opts.nowMs, undefined, 'coap-poll');
  if (decoded.problemCount > 0) opts.onProblem?.(decoded.message);
  const readings = decoded.readings;
  return readings.map((r) => ({
    values: r.values,
    quality: r.quality,
    ts: r.ts,
    bytes: Math.round(payload.length / readings.length),
    ...(r.units ? { units: r.units } : {}),
  }));
}

function parseBare(payload: Buffer): number | boolean | undefined {
  const s = payload.toString('utf8').trim();
  if (s === 'true') return true;
  if (s === 'false') return false;
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

export { PayloadError };
