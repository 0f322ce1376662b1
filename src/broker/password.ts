import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Salted slow password hashes for broker users, stored in the config as
 * `scrypt$N$r$p$salt$hash` (salt and hash base64). scrypt (RFC 7914) is memory-hard; N=16384,
 * r=8, p=1 takes ~50 ms and 16 MiB on a Pi 4, which is what a connect may cost. node:crypto's
 * async scrypt runs on the libuv thread pool, so a connect storm does not block the event loop.
 */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { N: 16384, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

export interface PasswordHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

function derive(password: Buffer | string, salt: Buffer, params: ScryptParams, keylen: number): Promise<Buffer> {
  const opts: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r * params.p + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, params, KEY_BYTES);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Parses the stored form; null when it is not a usable scrypt hash (the config schema checks the shape). */
export function parsePasswordHash(encoded: string): PasswordHash | null {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  // N must be a power of two > 1 (RFC 7914 §2); bounds keep a typo from allocating gigabytes.
  if (!Number.isInteger(N) || N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0) return null;
  if (!Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return null;
  const salt = Buffer.from(parts[4]!, 'base64');
  const hash = Buffer.from(parts[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16) return null;
  return { N, r, p, salt, hash };
}

/** Constant-time comparison of the derived key with the stored one. */
export async function verifyPassword(password: Buffer | string, stored: PasswordHash): Promise<boolean> {
  const key = await derive(password, stored.salt, stored, stored.hash.length);
  return timingSafeEqual(key, stored.hash);
}

/**
 * A hash nobody's password matches, verified for unknown usernames so that "no such user" takes
 * as long as "wrong password" (no user enumeration by timing).
 */
export function dummyHash(params: ScryptParams = DEFAULT_SCRYPT): PasswordHash {
  return { ...params, salt: randomBytes(SALT_BYTES), hash: randomBytes(KEY_BYTES) };
}
