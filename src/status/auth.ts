import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

export const COOKIE_NAME = 'egw_status';
/** A Cookie header longer than this is not parsed at all (the server caps all headers at 8 KiB). */
const MAX_COOKIE_HEADER = 4096;
const MAX_COOKIES = 32;

const digest = (s: string | Buffer) => createHash('sha256').update(s).digest();

/**
 * Constant-time token comparison: both sides are hashed first so neither the length nor a common
 * prefix of the expected token leaks through timing (the same rule as src/mgmt/tokens.ts).
 */
export function tokenMatches(presented: string, expected: readonly string[]): boolean {
  const p = digest(presented);
  let ok = false;
  // Every expected token is compared, whichever matches: the time does not say which one did.
  for (const e of expected) if (e.length > 0 && timingSafeEqual(p, digest(e))) ok = true;
  return ok;
}

/** Loopback binds (127.0.0.0/8, ::1, localhost) need no token; anything else does. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

/**
 * Cookies from a Cookie header (RFC 6265 §5.4 / §4.2.1): `name=value` pairs split by `;`. Hostile
 * input is bounded: an oversized header or too many pairs give nothing; a duplicate name keeps the
 * first (RFC 6265 §5.4 orders longer paths first); never throws.
 */
export function parseCookies(header: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const h = Array.isArray(header) ? header.join('; ') : header;
  if (!h || h.length > MAX_COOKIE_HEADER) return out;
  const parts = h.split(';');
  if (parts.length > MAX_COOKIES) return out;
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

/**
 * Sessions without server state: the cookie is `v1.<expiry s>.<nonce>.<mac>`, the MAC an
 * HMAC-SHA256 under a key made at start (a restart logs everyone out, which is fine for a page
 * a technician opens on site). The token itself never leaves the login request.
 */
export class SessionKeeper {
  private readonly key = randomBytes(32);

  constructor(
    private readonly lifetimeS: number,
    private readonly wallNowS: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  issue(): string {
    const exp = this.wallNowS() + this.lifetimeS;
    const body = `v1.${exp}.${randomBytes(16).toString('base64url')}`;
    return `${body}.${this.mac(body)}`;
  }

  /** True for a cookie this process issued that has not expired; false for anything else. */
  valid(cookie: string | undefined): boolean {
    if (!cookie || cookie.length > 200) return false;
    const parts = cookie.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1' || !/^\d{1,12}$/.test(parts[1]!)) return false;
    const body = parts.slice(0, 3).join('.');
    const want = Buffer.from(this.mac(body));
    const got = Buffer.from(parts[3]!);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return false;
    return Number(parts[1]) > this.wallNowS();
  }

  /** Set-Cookie for a new session: HttpOnly (no script reads it), SameSite=Strict (no cross-site send). */
  setCookie(value: string, secure: boolean): string {
    return `${COOKIE_NAME}=${value}; Path=/status/; Max-Age=${this.lifetimeS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  static clearCookie(): string {
    return `${COOKIE_NAME}=; Path=/status/; Max-Age=0; HttpOnly; SameSite=Strict`;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}
