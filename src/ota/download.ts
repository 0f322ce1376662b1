import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import { writeFileDurable } from './durable.js';

/**
 * Resumable download of an OTA bundle (docs/ota.md §Download). A cut download resumes with a Range
 * request guarded by If-Range (the ETag, else Last-Modified, the server gave for the partial file),
 * so a file changed on the server restarts from zero instead of being spliced (RFC 9110 §13.1.5,
 * §14.2). A 200 to a Range request means the server ignored it: start over, never append. 4xx is
 * final; 5xx, 429 (with Retry-After) and stalls are retried with backoff. Never more than `size`
 * bytes are written; size and sha256 are verified before the file is handed on.
 */

export type DownloadFailure = 'http' | 'disk_space' | 'size' | 'sha256' | 'aborted' | 'network';

export class DownloadError extends Error {
  constructor(
    readonly kind: DownloadFailure,
    message: string,
    /** false: retrying the same request cannot help (4xx, wrong hash, no space). */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

export interface DownloadOptions {
  url: string;
  /** Where the verified bundle ends up; `${dest}.part` and `${dest}.part.json` while downloading. */
  dest: string;
  size: number;
  sha256: string;
  /** No bytes for this long → the attempt is abandoned and retried (default 30 s). */
  readTimeoutMs?: number;
  /** Attempts at most (default 8); backoff doubles from `backoffMs` (default 1 s) to 60 s. */
  maxAttempts?: number;
  backoffMs?: number;
  /** Free space needed besides the bundle: size × 2 (bundle + unpacked) + this margin (default 50 MB). */
  marginBytes?: number;
  signal?: AbortSignal;
  onProgress?: (received: number, total: number) => void;
  /** For tests: what is free on the file system of `dest` (bytes). */
  freeBytes?: (path: string) => number;
  /** Waits between attempts (tests record the waits instead of sleeping). */
  sleep?: (ms: number) => Promise<void>;
}

interface PartMeta {
  url: string;
  sha256: string;
  etag: string | null;
  lastModified: string | null;
}

export interface DownloadResult {
  path: string;
  attempts: number;
  /** Bytes fetched over the network in total (≥ size when restarts happened). */
  fetched: number;
  resumed: number;
  restarted: number;
}

export function freeBytesOf(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new DownloadError('aborted', 'download aborted', false));
      },
      { once: true },
    );
  });

export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const part = `${opts.dest}.part`;
  const metaPath = `${part}.json`;
  // A bundle verified before a kill (docs/ota.md §Testing a kill at every state): not fetched again.
  if (existsSync(opts.dest) && statSync(opts.dest).size === opts.size && (await sha256File(opts.dest)) === opts.sha256)
    return { path: opts.dest, attempts: 0, fetched: 0, resumed: 0, restarted: 0 };
  const free = (opts.freeBytes ?? freeBytesOf)(dirname(opts.dest));
  const need = opts.size * 2 + (opts.marginBytes ?? 50 * 1024 * 1024);
  const have = existsSync(part) ? statSync(part).size : 0;
  if (free + have < need) {
    cleanup(part, metaPath);
    throw new DownloadError(
      'disk_space',
      `not enough disk: the update needs ${mb(need)} MB (bundle ×2 + margin), ${mb(free)} MB free`,
      false,
    );
  }
  let meta = readMeta(metaPath);
  if (!meta || meta.url !== opts.url || meta.sha256 !== opts.sha256) {
    cleanup(part, metaPath);
    meta = null;
  }
  const result: DownloadResult = { path: opts.dest, attempts: 0, fetched: 0, resumed: 0, restarted: 0 };
  const maxAttempts = opts.maxAttempts ?? 8;
  let backoff = opts.backoffMs ?? 1000;
  const sleep = opts.sleep ?? ((ms: number) => defaultSleep(ms, opts.signal));
  for (;;) {
    if (opts.signal?.aborted) throw new DownloadError('aborted', 'download aborted', false);
    result.attempts++;
    let waitMs = backoff;
    try {
      const done = await attempt(opts, part, metaPath, meta, result);
      if (done) break;
      meta = readMeta(metaPath);
      continue; // the server ignored Range or the file changed: start over at once
    } catch (err) {
      if (!(err instanceof DownloadError) || !err.retryable || result.attempts >= maxAttempts) {
        if (err instanceof DownloadError && err.kind !== 'aborted' && !err.retryable) cleanup(part, metaPath);
        throw err;
      }
      if (err instanceof RetryAfter) waitMs = Math.max(err.ms, backoff);
      meta = readMeta(metaPath);
    }
    await sleep(Math.min(waitMs, 60_000));
    backoff = Math.min(backoff * 2, 60_000);
  }
  // Verify before handing on: size, then sha256 of every byte on disk.
  const size = statSync(part).size;
  if (size !== opts.size) {
    cleanup(part, metaPath);
    throw new DownloadError('size', `bundle is ${size} bytes, the manifest says ${opts.size}`, false);
  }
  const digest = await sha256File(part);
  if (digest !== opts.sha256) {
    cleanup(part, metaPath);
    throw new DownloadError('sha256', `bundle sha256 ${digest} does not match the manifest's ${opts.sha256}`, false);
  }
  renameSync(part, opts.dest);
  rmSync(metaPath, { force: true });
  return result;
}

class RetryAfter extends DownloadError {
  constructor(
    message: string,
    readonly ms: number,
  ) {
    super('http', message, true);
  }
}

/** One HTTP attempt. Resolves true when the file is complete, false to start over at once. */
async function attempt(
  opts: DownloadOptions,
  part: string,
  metaPath: string,
  meta: PartMeta | null,
  result: DownloadResult,
): Promise<boolean> {
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > opts.size) {
    cleanup(part, metaPath);
    have = 0;
  }
  if (have === opts.size) return true;
  const validator = meta?.etag ?? meta?.lastModified ?? null;
  // Resume only with a validator: without If-Range a changed file would be spliced.
  const resume = have > 0 && validator !== null;
  if (!resume && have > 0) {
    cleanup(part, metaPath);
    have = 0;
  }
  const headers: Record<string, string> = { 'user-agent': 'edge-gateway-ota' };
  if (resume) {
    headers['range'] = `bytes=${have}-`;
    headers['if-range'] = validator;
  }
  const res = await get(opts.url, headers, opts.readTimeoutMs ?? 30_000, opts.signal);
  const status = res.statusCode ?? 0;
  if (status === 416) {
    res.resume();
    cleanup(part, metaPath);
    result.restarted++;
    return false;
  }
  if (status === 429 || status === 503) {
    res.resume();
    throw new RetryAfter(`server answered ${status}`, retryAfterMs(res.headers['retry-after']));
  }
  if (status >= 500) {
    res.resume();
    throw new DownloadError('http', `server answered ${status}`, true);
  }
  if (status >= 400 || (status !== 200 && status !== 206)) {
    res.resume();
    throw new DownloadError('http', `server answered ${status} for ${opts.url}`, false);
  }
  let offset = 0;
  if (status === 206 && resume) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== have) {
      // A range we did not ask for: do not guess, start over.
      res.destroy();
      cleanup(part, metaPath);
      result.restarted++;
      return false;
    }
    offset = have;
    result.resumed++;
  } else {
    // 200: a full body (the file changed, or the server ignores Range): replace, never append.
    if (have > 0) result.restarted++;
    cleanup(part, metaPath);
    const etag = typeof res.headers.etag === 'string' && !res.headers.etag.startsWith('W/') ? res.headers.etag : null;
    const lastModified = typeof res.headers['last-modified'] === 'string' ? res.headers['last-modified'] : null;
    writeFileDurable(
      metaPath,
      JSON.stringify({ url: opts.url, sha256: opts.sha256, etag, lastModified } satisfies PartMeta),
    );
  }
  const fd = openSync(part, offset > 0 ? 'r+' : 'w');
  let pos = offset;
  try {
    if (offset === 0) ftruncateSync(fd, 0);
    await new Promise<void>((resolve, reject) => {
      const timer = { t: undefined as NodeJS.Timeout | undefined };
      const arm = () => {
        clearTimeout(timer.t);
        timer.t = setTimeout(
          () => res.destroy(new DownloadError('network', `no data for ${opts.readTimeoutMs ?? 30_000} ms`, true)),
          opts.readTimeoutMs ?? 30_000,
        );
      };
      arm();
      res.on('data', (chunk: Buffer) => {
        arm();
        if (pos + chunk.length > opts.size) {
          res.destroy(new DownloadError('size', `server sent more than the manifest's ${opts.size} bytes`, false));
          return;
        }
        writeSync(fd, chunk, 0, chunk.length, pos);
        pos += chunk.length;
        result.fetched += chunk.length;
        opts.onProgress?.(pos, opts.size);
      });
      res.on('end', () => {
        clearTimeout(timer.t);
        resolve();
      });
      res.on('error', (err) => {
        clearTimeout(timer.t);
        reject(err instanceof DownloadError ? err : new DownloadError('network', err.message, true));
      });
      res.on('close', () => {
        clearTimeout(timer.t);
        if (!res.complete) reject(new DownloadError('network', 'connection closed mid-body', true));
      });
    });
  } finally {
    fsyncSync(fd);
    closeSync(fd);
  }
  if (pos < opts.size) throw new DownloadError('network', `body ended at ${pos} of ${opts.size} bytes`, true);
  return true;
}

function get(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new DownloadError('http', `bundle URL is not valid: ${url}`, false));
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      reject(new DownloadError('http', `bundle URL must be http(s): ${url}`, false));
      return;
    }
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { headers, signal, timeout: timeoutMs });
    req.on('response', resolve);
    req.on('timeout', () => req.destroy(new DownloadError('network', `no answer within ${timeoutMs} ms`, true)));
    req.on('error', (err) => {
      if (signal?.aborted) reject(new DownloadError('aborted', 'download aborted', false));
      else reject(err instanceof DownloadError ? err : new DownloadError('network', err.message, true));
    });
    req.end();
  });
}

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3); bounded to 10 minutes. */
export function retryAfterMs(h: string | undefined, now = Date.now()): number {
  if (!h) return 0;
  if (/^\d+$/.test(h.trim())) return Math.min(Number(h) * 1000, 600_000);
  const t = Date.parse(h);
  return Number.isFinite(t) ? Math.min(Math.max(0, t - now), 600_000) : 0;
}

function readMeta(path: string): PartMeta | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PartMeta;
  } catch {
    return null;
  }
}

function cleanup(part: string, metaPath: string): void {
  rmSync(part, { force: true });
  rmSync(metaPath, { force: true });
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

const mb = (b: number) => Math.ceil(b / 1048576);

/** GETs a small document (the manifest envelope): bounded size and time, 2xx only. */
export async function fetchSmall(
  url: string,
  maxBytes: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const res = await get(url, { 'user-agent': 'edge-gateway-ota' }, timeoutMs, signal);
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    res.resume();
    throw new DownloadError('http', `manifest: server answered ${status} for ${url}`, status >= 500 || status === 429);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(
      () => res.destroy(new DownloadError('network', `manifest: no answer within ${timeoutMs} ms`, true)),
      timeoutMs,
    );
    res.on('data', (c: Buffer) => {
      n += c.length;
      if (n > maxBytes) res.destroy(new DownloadError('size', `manifest larger than ${maxBytes} bytes`, false));
      else chunks.push(c);
    });
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    res.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof DownloadError ? err : new DownloadError('network', err.message, true));
    });
  });
}
