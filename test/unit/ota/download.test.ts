import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { download, DownloadError, retryAfterMs } from '../../../src/ota/download.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A static file server whose behaviour each test scripts per request. */
async function server(
  t: { after(fn: () => void | Promise<void>): void },
  handle: (req: IncomingMessage, res: ServerResponse, n: number) => void,
) {
  const log: { range: string | undefined; ifRange: string | undefined }[] = [];
  const srv = createServer((req, res) => {
    log.push({ range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined });
    handle(req, res, log.length);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  srv.on('connection', (s) => t.after(() => void s.destroy()));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/bundle.tgz`, log };
}

/** Serves `body` honouring Range + If-Range against `etag` (RFC 9110 §14.2, §13.1.5). */
function serveRange(req: IncomingMessage, res: ServerResponse, body: Buffer, etag: string, cutAt?: number) {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'] as string | undefined;
  if (range && (ifRange === undefined || ifRange === etag)) {
    const from = Number(range[1]);
    res.writeHead(206, {
      etag,
      'content-length': body.length - from,
      'content-range': `bytes ${from}-${body.length - 1}/${body.length}`,
    });
    res.end(body.subarray(from));
    return;
  }
  res.writeHead(200, { etag, 'content-length': body.length });
  if (cutAt !== undefined) {
    res.write(body.subarray(0, cutAt));
    setTimeout(() => res.socket?.destroy(), 20);
  } else res.end(body);
}

function dir(t: { after(fn: () => void): void }) {
  const d = mkdtempSync(join(tmpdir(), 'egw-dl-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const noSleep: number[] = [];
const fast = { backoffMs: 10, sleep: async (ms: number) => void noSleep.push(ms), freeBytes: () => 1e12 };

test('a download cut in the middle resumes with Range + If-Range and fetches only the rest', async (t) => {
  const body = randomBytes(300_000);
  const srv = await server(t, (req, res, n) => serveRange(req, res, body, '"v1"', n === 1 ? 100_000 : undefined));
  const dest = join(dir(t), 'b.tgz');
  const r = await download({ url: srv.url, dest, size: body.length, sha256: sha(body), ...fast });
  assert.deepEqual(readFileSync(dest), body);
  assert.equal(r.resumed, 1);
  assert.equal(srv.log[1]!.ifRange, '"v1"');
  assert.match(srv.log[1]!.range!, /^bytes=\d+-$/);
  assert.ok(r.fetched < body.length * 1.1, `fetched ${r.fetched} for ${body.length}`);
  assert.equal(existsSync(`${dest}.part`), false);
});

test('a file changed on the server restarts from zero (If-Range fails → 200), never splices', async (t) => {
  const body = randomBytes(200_000);
  const srv = await server(t, (req, res, n) =>
    serveRange(req, res, body, n === 1 ? '"v1"' : '"v2"', n === 1 ? 50_000 : undefined),
  );
  const dest = join(dir(t), 'b.tgz');
  const r = await download({ url: srv.url, dest, size: body.length, sha256: sha(body), ...fast });
  assert.deepEqual(readFileSync(dest), body);
  assert.equal(r.restarted, 1);
  assert.equal(r.resumed, 0);

  // Content really changed: the new bytes are refused by the hash, the partial file is removed.
  const other = randomBytes(200_000);
  const srv2 = await server(t, (req, res, n) =>
    serveRange(req, res, n === 1 ? body : other, n === 1 ? '"a"' : '"b"', n === 1 ? 50_000 : undefined),
  );
  const dest2 = join(dir(t), 'c.tgz');
  await assert.rejects(
    download({ url: srv2.url, dest: dest2, size: body.length, sha256: sha(body), ...fast }),
    (e: unknown) => {
      assert.ok(e instanceof DownloadError);
      assert.equal(e.kind, 'sha256');
      return true;
    },
  );
  assert.equal(existsSync(`${dest2}.part`), false);
  assert.equal(existsSync(dest2), false);
});

test('a server that ignores Range is read from the start again, not appended', async (t) => {
  const body = randomBytes(150_000);
  const srv = await server(t, (_req, res, n) => {
    res.writeHead(200, { etag: '"x"', 'content-length': body.length });
    if (n === 1) {
      res.write(body.subarray(0, 70_000));
      setTimeout(() => res.socket?.destroy(), 20);
    } else res.end(body);
  });
  const dest = join(dir(t), 'b.tgz');
  const r = await download({ url: srv.url, dest, size: body.length, sha256: sha(body), ...fast });
  assert.deepEqual(readFileSync(dest), body);
  assert.equal(r.restarted, 1);
  assert.ok(srv.log[1]!.range, 'a Range was asked for');
});

test('503 with Retry-After waits as told; a stall mid-body is cut by the read timeout and resumed', async (t) => {
  const body = randomBytes(100_000);
  const srv = await server(t, (req, res, n) => {
    if (n === 1) {
      res.writeHead(503, { 'retry-after': '2' });
      res.end();
    } else if (n === 2) {
      res.writeHead(200, { etag: '"s"', 'content-length': body.length });
      res.write(body.subarray(0, 30_000)); // then nothing: a stall
    } else serveRange(req, res, body, '"s"');
  });
  const waits: number[] = [];
  const dest = join(dir(t), 'b.tgz');
  const r = await download({
    url: srv.url,
    dest,
    size: body.length,
    sha256: sha(body),
    readTimeoutMs: 300,
    backoffMs: 10,
    freeBytes: () => 1e12,
    sleep: async (ms) => void waits.push(ms),
  });
  assert.deepEqual(readFileSync(dest), body);
  assert.equal(waits[0], 2000, 'Retry-After: 2 → 2 s');
  assert.equal(r.resumed, 1);
  assert.equal(r.attempts, 3);
});

test('4xx is final at once; too little disk is refused before any request; more bytes than declared are refused', async (t) => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(404);
    res.end();
  });
  const d = dir(t);
  await assert.rejects(
    download({ url: srv.url, dest: join(d, 'a'), size: 10, sha256: 'a'.repeat(64), ...fast }),
    /404/,
  );
  assert.equal(srv.log.length, 1);

  const srv2 = await server(t, (_req, res) => res.end('x'));
  await assert.rejects(
    download({
      url: srv2.url,
      dest: join(d, 'b'),
      size: 100 * 1048576,
      sha256: 'a'.repeat(64),
      freeBytes: () => 150 * 1048576,
    }),
    (e: unknown) => e instanceof DownloadError && e.kind === 'disk_space' && /needs 250 MB/.test(e.message),
  );
  assert.equal(srv2.log.length, 0, 'nothing fetched');

  const big = randomBytes(5000);
  const srv3 = await server(t, (_req, res) => {
    res.writeHead(200);
    res.end(big);
  });
  await assert.rejects(
    download({ url: srv3.url, dest: join(d, 'c'), size: 1000, sha256: sha(big.subarray(0, 1000)), ...fast }),
    (e: unknown) => e instanceof DownloadError && e.kind === 'size',
  );
  assert.equal(existsSync(join(d, 'c.part')), false);
  await assert.rejects(
    download({ url: 'file:///etc/passwd', dest: join(d, 'e'), size: 1, sha256: 'a'.repeat(64), ...fast }),
    /http/,
  );
});

test('Retry-After parsing: seconds, HTTP date, garbage, bounded', () => {
  assert.equal(retryAfterMs('5'), 5000);
  assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(retryAfterMs('soon'), 0);
  assert.equal(retryAfterMs('999999'), 600_000);
  assert.equal(retryAfterMs(undefined), 0);
});
