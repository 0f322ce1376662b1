import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export type Role = 'read' | 'admin';

export interface Tokens {
  read: string;
  admin: string;
  /** Where they came from: the config, or the generated file in the data dir. */
  source: 'config' | 'file' | 'generated';
  file?: string;
}

export const TOKEN_FILE = 'mgmt-tokens.json';

/**
 * Tokens from the config; whichever is missing comes from `{dataDir}/mgmt-tokens.json`, created at
 * first start with mode 0600 (O_EXCL, so two starts never race into different tokens). `announce`
 * is called once, when the file is created, so the operator can read the tokens that one time.
 */
export function resolveTokens(
  cfg: { read_token?: string; admin_token?: string },
  dataDir: string,
  announce: (text: string) => void,
): Tokens {
  if (cfg.read_token && cfg.admin_token) return { read: cfg.read_token, admin: cfg.admin_token, source: 'config' };
  const file = join(dataDir, TOKEN_FILE);
  let stored: { read?: unknown; admin?: unknown } | undefined;
  try {
    stored = JSON.parse(readFileSync(file, 'utf8')) as { read?: unknown; admin?: unknown };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let source: Tokens['source'] = 'file';
  if (!stored || typeof stored.read !== 'string' || typeof stored.admin !== 'string') {
    stored = { read: newToken(), admin: newToken() };
    mkdirSync(dataDir, { recursive: true });
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(stored, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    source = 'generated';
    announce(
      `edge-gateway: generated management tokens in ${file} (mode 0600); shown this once:\n` +
        `  read token:  ${String(stored.read)}\n  admin token: ${String(stored.admin)}\n` +
        `  use: edge-gateway ctl --token <token> status   (or EDGE_GATEWAY_TOKEN=<token>)\n`,
    );
  }
  return {
    read: cfg.read_token ?? String(stored.read),
    admin: cfg.admin_token ?? String(stored.admin),
    source: cfg.read_token || cfg.admin_token ? 'config' : source,
    file,
  };
}

/**
 * 192 random bits, base64url; never starting with '-': `ctl --token -abc…` would read the token as
 * an option (1 generated token in 64 did). Redrawn rather than patched, so every token is equally
 * likely among those allowed.
 */
export function newToken(): string {
  for (;;) {
    const t = randomBytes(24).toString('base64url');
    if (!t.startsWith('-')) return t;
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * The role a presented token grants, compared in constant time: both sides are hashed first so
 * neither the length nor a common prefix leaks through timing.
 */
export function roleOf(presented: string | undefined, tokens: Pick<Tokens, 'read' | 'admin'>): Role | undefined {
  if (presented === undefined || presented.length === 0 || presented.length > 512) return undefined;
  const p = digest(presented);
  const isAdmin = timingSafeEqual(p, digest(tokens.admin));
  const isRead = timingSafeEqual(p, digest(tokens.read));
  if (isAdmin) return 'admin';
  return isRead ? 'read' : undefined;
}

/**
 * Failed authentications per source: a bucket of `perMin` refilling over a minute. While the
 * bucket is empty the source is refused before its token is even compared (brute force costs a
 * minute per handful of guesses). Bounded: the oldest sources are forgotten first.
 */
export class FailureLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perMin: number,
    private readonly maxKeys = 10_000,
  ) {}

  private refill(key: string, nowMs: number): { tokens: number; at: number } | undefined {
    const b = this.buckets.get(key);
    if (!b) return undefined;
    b.tokens = Math.min(this.perMin, b.tokens + ((nowMs - b.at) / 60_000) * this.perMin);
    b.at = nowMs;
    if (b.tokens >= this.perMin) this.buckets.delete(key);
    return b;
  }

  blocked(key: string, nowMs: number): boolean {
    const b = this.refill(key, nowMs);
    return b !== undefined && b.tokens < 1;
  }

  /** Seconds until the source may try again (for Max-Age). */
  retryAfterS(key: string, nowMs: number): number {
    const b = this.refill(key, nowMs);
    if (!b || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * 60) / this.perMin);
  }

  fail(key: string, nowMs: number): void {
    const b = this.refill(key, nowMs) ?? { tokens: this.perMin, at: nowMs };
    b.tokens = Math.max(0, b.tokens - 1);
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
