import type { AllowList } from '../config/cidr.js';
import { encodeResponse, inspectDatagram, isRequestCode } from './datagram.js';
import type { RateLimiter } from './rate-limit.js';

/** What the server does with one datagram, decided before the `coap` library sees it. */
export type Verdict =
  | { action: 'pass' }
  /** A Block1 request: collected by the server's assembler, not the library. */
  | { action: 'block1'; block1: { num: number; more: boolean; size: number } }
  | { action: 'drop'; reason: DropReason }
  /** Dropped, but answered with `reply` (5.03 rate limit, 4.13 too large). */
  | { action: 'answer'; reason: DropReason; reply: Buffer; code?: string };

export type DropReason = 'malformed' | 'not a request' | 'source not allowed' | 'rate limit' | 'too large';

export interface FilterOptions {
  allow: AllowList;
  limiter: RateLimiter;
  maxPayloadBytes: number;
}

/**
 * The datagram filter in front of the library: malformed datagrams, sources outside the allow-list,
 * sources over their rate and bodies over the size limit are refused here, so hostile traffic never
 * reaches the library's own error path. Values in, a verdict out (the limiter holds the only state).
 */
export function filterDatagram(opts: FilterOptions, msg: Buffer, address: string, nowMs: number): Verdict {
  const r = inspectDatagram(msg);
  // RFC 7252 §4.2/§4.3: a malformed message is silently ignored (a RST would help spoofers reflect).
  if (!r.ok) return { action: 'drop', reason: 'malformed' };
  const info = r.info;
  // An unlisted source learns nothing, not even that a CoAP server is here; this includes the
  // ACK/RST/ping traffic below, so the allow-list is checked first.
  if (!opts.allow.allows(address)) return { action: 'drop', reason: 'source not allowed' };
  if (!isRequestCode(info.code)) {
    // Responses are not expected by a server; ACK/RST of our notifications and CON pings pass.
    return info.code === 0 ? { action: 'pass' } : { action: 'drop', reason: 'not a request' };
  }
  if (!opts.limiter.take(address, nowMs)) {
    return info.type === 0
      ? { action: 'answer', reason: 'rate limit', reply: encodeResponse(info, 5, 3) }
      : { action: 'drop', reason: 'rate limit' };
  }
  const max = opts.maxPayloadBytes;
  const b1 = info.block1;
  const total = b1 ? Math.max(b1.num * b1.size + info.payloadLength, info.size1 ?? 0) : info.payloadLength;
  // RFC 7959 §2.9.3: 4.13 with Size1 telling the largest acceptable body.
  if (total > max)
    return { action: 'answer', reason: 'too large', reply: encodeResponse(info, 4, 13, max), code: '4.13' };
  return b1 ? { action: 'block1', block1: b1 } : { action: 'pass' };
}
