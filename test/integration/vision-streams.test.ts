// Real camera streams through Debian's ffmpeg (src/vision/sources/ffmpeg.ts): MJPEG over HTTP
// served here (multipart/x-mixed-replace, RFC 2046 §5.1 as IP cameras send it), RTSP with H.264
// over RTP/TCP, and V4L2 as far as this machine allows (no /dev/video*, no v4l2loopback module).
// Hostile streams: a truncated JPEG, a missing boundary, an oversize part, the server dropping
// mid-frame, nobody listening — each counted, the source reconnects with backoff, no crash, no
// ffmpeg left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { once } from 'node:events';
import sharp from 'sharp';
import { FfmpegSource, type FfmpegOptions } from '../../src/vision/sources/ffmpeg.js';
import type { Frame } from '../../src/vision/types.js';
import { VisionService } from '../../src/vision/service.js';
import { partSvg, rng, DEMO_LABELS } from '../../scripts/vision-synth.js';
import { captureLog, ffmpegChildren, RecordingPublisher, until, visionConfig } from './vision-harness.js';

const FFMPEG = '/usr/bin/ffmpeg';
const skip = !existsSync(FFMPEG) && 'ffmpeg not installed (scripts/test-peers.txt)';

/** Synthesized parts as JPEG (scripts/vision-synth.ts), the bytes an MJPEG camera sends. */
async function jpegs(n: number, size = 160): Promise<Buffer[]> {
  const r = rng(7);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++)
    out.push(
      await sharp(Buffer.from(partSvg(DEMO_LABELS[i % DEMO_LABELS.length]!, r, size)))
        .jpeg({ quality: 85 })
        .toBuffer(),
    );
  return out;
}

const partHead = (len: number) => `--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${len}\r\n\r\n`;

/**
 * An MJPEG camera: connection k (0-based) is served by `script(k, res)`; the default is good
 * parts every 50 ms until the client goes (bounded by the test's own end).
 */
async function mjpegServer(
  script: (k: number, res: ServerResponse, good: Buffer[]) => void,
): Promise<{ url: string; server: Server; connections: () => number; close: () => Promise<void> }> {
  const good = await jpegs(8);
  let k = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'multipart/x-mixed-replace; boundary=frame', 'cache-control': 'no-cache' });
    script(k++, res, good);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/video.mjpg`,
    server,
    connections: () => k,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Writes good parts every `everyMs`; `at` may replace part i (return true to stop the stream). */
function stream(res: ServerResponse, good: Buffer[], at?: (i: number) => boolean, everyMs = 50): void {
  let i = 0;
  const t = setInterval(() => {
    if (res.destroyed) return clearInterval(t);
    if (at?.(i)) return clearInterval(t);
    const b = good[i % good.length]!;
    res.write(partHead(b.length));
    res.write(b);
    res.write('\r\n');
    i++;
    if (i > 400) {
      clearInterval(t);
      res.end();
    }
  }, everyMs);
  res.on('close', () => clearInterval(t));
}

function source(input: string, extra: Partial<FfmpegOptions> = {}, maxBytes = 8 * 1024 * 1024) {
  const frames: Frame[] = [];
  const src = new FfmpegSource(
    'cam',
    { input, format: 'jpeg', inputArgs: [], fps: 10, reconnectMs: 100, reconnectMaxMs: 400, ffmpeg: FFMPEG, ...extra },
    maxBytes,
    captureLog().log,
  );
  return { src, frames, start: () => src.start((f) => frames.push(f)) };
}

const view = (s: FfmpegSource) =>
  s.view() as {
    frames: number;
    starts: number;
    exits: number;
    errors: number;
    backoffMs: number;
    lastExit: string | null;
    lastError: string | null;
  };

test('MJPEG over HTTP: a multipart/x-mixed-replace stream gives results with real inference', { skip }, async () => {
  const cam = await mjpegServer((_k, res, good) => stream(res, good));
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({
      cameras: [{ id: 'mjpeg', kind: 'ffmpeg', input: cam.url, fps: 10, reconnect_ms: 200 }],
      deadline_ms: 5000,
    }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    await pub.until(() => pub.results().filter((r) => r.verdict !== 'failsafe').length >= 5, 20000, 'MJPEG results');
  } finally {
    await svc.stop();
    await cam.close();
  }
  const ok = pub.results().filter((r) => r.verdict !== 'failsafe');
  assert.ok(ok.every((r) => r.cameraId === 'mjpeg' && r.label !== null && r.latencyMs.inference >= 0));
  assert.equal(ffmpegChildren(), '');
});

test('MJPEG: parts arrive at the stream rate (wall-clock stamps, not ffmpeg’s assumed 25 fps)', { skip }, async () => {
  // 10 parts/s for 2 s at fps 10: about 20 frames. Without -use_wallclock_as_timestamps ffmpeg
  // stamps the parts 40 ms apart (25 fps), so 2 s of parts are 0.8 s of stream: about 8 frames.
  const cam = await mjpegServer((_k, res, good) => stream(res, good, undefined, 100));
  const s = source(cam.url, { reconnectMs: 5000, reconnectMaxMs: 5000 });
  assert.ok(s.src.args().includes('-use_wallclock_as_timestamps'));
  await s.start();
  try {
    await until(() => s.frames.length >= 1, 10000, 'first frame');
    const n0 = s.frames.length;
    await new Promise((r) => setTimeout(r, 2000));
    const n = s.frames.length - n0;
    assert.ok(n >= 14 && n <= 26, `${n} frames in 2 s at fps 10`);
  } finally {
    await s.src.stop();
    await cam.close();
  }
});

test('MJPEG: a truncated JPEG part is counted and the stream goes on', { skip }, async () => {
  const cam = await mjpegServer((_k, res, good) => {
    const big = good[1]!;
    stream(res, good, (i) => {
      if (i !== 5) return false;
      // The part claims its full length but ends at half: ffmpeg reads the next part's bytes into
      // it, the JPEG decoder fails on it; the stream carries on.
      const cut = big.subarray(0, big.length >> 1);
      res.write(partHead(cut.length));
      res.write(cut);
      res.write('\r\n');
      stream(res, good); // the rest of the stream
      return true;
    });
  });
  const s = source(cam.url);
  await s.start();
  try {
    await until(() => view(s.src).errors >= 1, 15000, 'the decode error counted');
    const after = s.frames.length;
    await until(() => s.frames.length >= after + 5, 10000, 'frames after the bad part');
    const v = view(s.src);
    assert.match(v.lastError ?? '', /invalid|error|overread|marker|huffman|eoi|corrupt/i);
    assert.equal(v.starts, 1, 'a corrupt part is not a reason to restart');
  } finally {
    await s.src.stop();
    await cam.close();
  }
  assert.equal(ffmpegChildren(), '');
});

test('MJPEG: a missing boundary ends the stream; counted, restarted, frames again', { skip }, async () => {
  const cam = await mjpegServer((k, res, good) =>
    stream(res, good, (i) => {
      if (k > 0 || i !== 3) return false;
      const b = good[0]!;
      res.write(`Content-Type: image/jpeg\r\nContent-Length: ${b.length}\r\n\r\n`); // no "--frame"
      res.write(b);
      res.write('\r\n');
      return false;
    }),
  );
  const s = source(cam.url);
  await s.start();
  try {
    await until(() => view(s.src).exits >= 1, 15000, 'ffmpeg exit on the bad part');
    const v = view(s.src);
    assert.match(v.lastError ?? '', /boundary|invalid data/i);
    assert.ok(v.errors >= 1);
    const after = s.frames.length;
    await until(() => view(s.src).starts >= 2 && s.frames.length >= after + 3, 15000, 'frames after reconnect');
    assert.ok(cam.connections() >= 2);
  } finally {
    await s.src.stop();
    await cam.close();
  }
  assert.equal(ffmpegChildren(), '');
});

test('MJPEG: an oversize part makes ffmpeg fail, not grow; restarted, frames again', { skip }, async () => {
  const cam = await mjpegServer((k, res, good) =>
    stream(res, good, (i) => {
      if (k > 0 || i !== 3) return false;
      // 40 MiB: a JPEG header then filler, over -max_alloc (max(max_image_bytes, 16 MiB)).
      const b = good[0]!;
      const body = Buffer.concat([b.subarray(0, b.length - 2), Buffer.alloc(40 * 1024 * 1024, 0x55), b.subarray(-2)]);
      res.write(partHead(body.length));
      res.write(body);
      res.write('\r\n');
      stream(res, good);
      return true;
    }),
  );
  const s = source(cam.url, {}, 1024 * 1024);
  assert.deepEqual(s.src.args().slice(s.src.args().indexOf('-max_alloc'), s.src.args().indexOf('-max_alloc') + 2), [
    '-max_alloc',
    String(16 * 1024 * 1024),
  ]);
  await s.start();
  try {
    await until(() => view(s.src).exits >= 1, 20000, 'ffmpeg refusing the part');
    assert.match(view(s.src).lastError ?? '', /allocate|memory|invalid/i);
    const after = s.frames.length;
    await until(() => s.frames.length >= after + 3, 15000, 'frames after reconnect');
  } finally {
    await s.src.stop();
    await cam.close();
  }
  assert.equal(ffmpegChildren(), '');
});

test('MJPEG: the server dropping mid-frame is an exit; the source reconnects and frames resume', { skip }, async () => {
  const cam = await mjpegServer((k, res, good) =>
    stream(res, good, (i) => {
      if (k > 0 || i !== 6) return false;
      const b = good[2]!;
      res.write(partHead(b.length));
      res.write(b.subarray(0, b.length >> 2));
      res.socket?.destroy(); // mid-frame
      return true;
    }),
  );
  const s = source(cam.url);
  await s.start();
  try {
    await until(() => view(s.src).exits >= 1, 15000, 'exit on the drop');
    const after = s.frames.length;
    await until(() => s.frames.length >= after + 3 && cam.connections() >= 2, 15000, 'frames after reconnect');
    assert.equal(view(s.src).backoffMs, 100, 'a stream that delivered reconnects after reconnect_ms');
  } finally {
    await s.src.stop();
    await cam.close();
  }
  assert.equal(ffmpegChildren(), '');
});

test('nobody listening: restarts back off exponentially up to reconnect_max_ms', { skip }, async () => {
  const port = await freePort();
  const s = source(`http://127.0.0.1:${port}/video.mjpg`);
  const t0 = Date.now();
  await s.start();
  try {
    await until(() => view(s.src).backoffMs === 400, 15000, 'backoff at its cap');
    await new Promise((r) => setTimeout(r, 1000));
    const v = view(s.src);
    const elapsed = Date.now() - t0;
    // Delays 100, 200, 400, 400, …: far fewer starts than a fixed 100 ms would give.
    assert.ok(v.starts <= 3 + Math.ceil(elapsed / 400), `${v.starts} starts in ${elapsed} ms`);
    assert.ok(v.exits >= 3);
    assert.match(v.lastError ?? '', /refused/i);
    assert.equal(s.frames.length, 0);
  } finally {
    await s.src.stop();
  }
  assert.equal(ffmpegChildren(), '');
});

async function freePort(): Promise<number> {
  const srv = createNetServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * An H.264 camera pushing RTSP (ANNOUNCE/RECORD, RTP interleaved over TCP). No RTSP server runs
 * here (mediamtx is not a Debian package; ffmpeg's RTSP muxer cannot listen), so the roles are
 * swapped: the source's ffmpeg listens (`-rtsp_flags listen`) and this ffmpeg connects to it.
 * The source still goes through ffmpeg's RTSP demuxer, RTP depacketizer and H.264 decoder.
 */
async function pushRtsp(url: string, seconds: number): Promise<ChildProcess> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const p = spawn(
      FFMPEG,
      [
        ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-f', 'lavfi'],
        ...['-i', `testsrc=size=320x240:rate=15:duration=${seconds}`],
        ...['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p'],
        ...['-f', 'rtsp', '-rtsp_transport', 'tcp', url],
      ],
      { stdio: 'ignore' },
    );
    // Refused at once while the listener is (re)starting: try again shortly.
    const early = await Promise.race([
      once(p, 'exit').then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
    ]);
    if (!early) return p;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('could not push RTSP');
}

test('RTSP: H.264 over RTP/TCP gives frames; the source listens again after the camera goes', { skip }, async () => {
  const port = await freePort();
  const url = `rtsp://127.0.0.1:${port}/cam`;
  const s = source(url, { inputArgs: ['-rtsp_flags', 'listen'], reconnectMs: 100, reconnectMaxMs: 200 });
  const args = s.src.args();
  assert.deepEqual(args.slice(args.indexOf('-rtsp_transport'), args.indexOf('-i') + 2), [
    '-rtsp_transport',
    'tcp',
    '-rtsp_flags',
    'listen',
    '-i',
    url,
  ]);
  await s.start();
  const pushers: ChildProcess[] = [];
  try {
    pushers.push(await pushRtsp(url, 2));
    await until(() => s.frames.length >= 5, 20000, 'RTSP frames');
    const meta = await sharp(s.frames[0]!.image).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.equal(meta.width, 320);
    await until(() => view(s.src).exits >= 1, 20000, 'stream end');
    const after = s.frames.length;
    pushers.push(await pushRtsp(url, 6));
    await until(() => s.frames.length >= after + 5, 20000, 'frames from the second session');
    assert.ok(view(s.src).starts >= 2);
  } finally {
    for (const p of pushers) if (p.exitCode === null) p.kill('SIGKILL');
    await s.src.stop();
  }
  assert.equal(ffmpegChildren(), '');
});

test('max_width: ffmpeg scales a wide stream down before encoding (aspect kept, never up)', { skip }, async () => {
  const wide = source('testsrc=size=640x480:rate=10:duration=1', {
    inputArgs: ['-re', '-f', 'lavfi'],
    maxWidth: 200,
    reconnectMs: 60000,
    reconnectMaxMs: 60000,
  });
  assert.ok(wide.src.args().includes('fps=10,scale=w=min(iw\\,200):h=-2'));
  const narrow = source('testsrc=size=160x120:rate=10:duration=1', {
    inputArgs: ['-re', '-f', 'lavfi'],
    maxWidth: 200,
    reconnectMs: 60000,
    reconnectMaxMs: 60000,
  });
  await wide.start();
  await narrow.start();
  try {
    await until(() => wide.frames.length >= 2 && narrow.frames.length >= 2, 15000, 'frames');
    const a = await sharp(wide.frames[0]!.image).metadata();
    const b = await sharp(narrow.frames[0]!.image).metadata();
    assert.deepEqual([a.width, a.height], [200, 150]);
    assert.deepEqual([b.width, b.height], [160, 120]);
  } finally {
    await wide.src.stop();
    await narrow.src.stop();
  }
});

const videoDevices = existsSync('/dev') ? readdirSync('/dev').filter((d) => /^video\d+$/.test(d)) : [];

test('V4L2: arguments for a USB camera (-f v4l2, input_args before -i)', () => {
  const s = new FfmpegSource(
    'usb',
    {
      input: '/dev/video0',
      format: 'jpeg',
      inputArgs: ['-input_format', 'mjpeg', '-video_size', '1280x720', '-framerate', '30'],
      fps: 5,
      reconnectMs: 100,
      reconnectMaxMs: 1000,
      ffmpeg: FFMPEG,
    },
    8 * 1024 * 1024,
    captureLog().log,
  );
  const a = s.args();
  const i = a.indexOf('-i');
  assert.deepEqual(a.slice(i - 8, i + 2), [
    '-f',
    'v4l2',
    '-input_format',
    'mjpeg',
    '-video_size',
    '1280x720',
    '-framerate',
    '30',
    '-i',
    '/dev/video0',
  ]);
  assert.deepEqual(a.slice(i + 2), ['-vf', 'fps=5', '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '3', 'pipe:1']);
  assert.ok(!a.includes('-use_wallclock_as_timestamps') && !a.includes('-rtsp_transport'));
});

test('V4L2: a device that is not there is an error counted and retried with backoff, no crash', { skip }, async () => {
  const dev = '/dev/video-egw-missing-0';
  const s = source(dev);
  assert.deepEqual(s.src.args().slice(s.src.args().indexOf('-f'), s.src.args().indexOf('-f') + 2), ['-f', 'v4l2']);
  await s.start();
  try {
    await until(() => view(s.src).exits >= 3, 15000, 'three failed starts');
    const v = view(s.src);
    assert.match(v.lastError ?? '', /No such file or directory/);
    assert.ok(v.backoffMs >= 200, 'failed starts back off');
    assert.equal(s.frames.length, 0);
  } finally {
    await s.src.stop();
  }
  assert.equal(ffmpegChildren(), '');
});

test(
  'V4L2: a real camera gives frames',
  { skip: (skip || videoDevices.length === 0) && 'no /dev/video* here (no camera, no v4l2loopback module)' },
  async () => {
    const s = source(`/dev/${videoDevices[0]}`);
    await s.start();
    try {
      await until(() => s.frames.length >= 3, 20000, 'V4L2 frames');
    } finally {
      await s.src.stop();
    }
  },
);
