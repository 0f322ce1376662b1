import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { GatewayError } from '../../src/errors.js';
import { VisionService } from '../../src/vision/service.js';
import { partPng, rng, DEMO_LABELS, type DemoLabel } from '../../scripts/vision-synth.js';
import { Cloud } from './uplink-cloud.js';
import { captureLog, RecordingPublisher, visionConfig, DEMO_MODEL } from './vision-harness.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'egw-vision-'));
const REJECT = [{ kind: 'command', device_id: 'reject-gate', command: { coil: 0, value: true } }];

async function known(n: number, seed: number): Promise<{ label: DemoLabel; png: Buffer }[]> {
  const r = rng(seed);
  const out: { label: DemoLabel; png: Buffer }[] = [];
  for (let i = 0; i < n; i++) for (const label of DEMO_LABELS) out.push({ label, png: await partPng(label, r) });
  return out;
}

test('directory drop: known images give the expected labels; frame id = file name; defective rejected first and CRITICAL', async () => {
  const dir = tmp();
  const reviewDir = tmp();
  const pub = new RecordingPublisher();
  const { log } = captureLog();
  const svc = new VisionService({
    config: visionConfig({
      cameras: [{ id: 'belt1', kind: 'directory', path: dir, settle_ms: 50 }],
      reject: REJECT,
      deadline_ms: 5000,
      review: { dir: reviewDir, max_files: 5 },
    }),
    log,
    publisher: pub,
  });
  await svc.start();
  try {
    const parts = await known(10, 4242);
    parts.forEach((p, i) => writeFileSync(join(dir, `img-${String(i).padStart(3, '0')}-${p.label}.png`), p.png));
    await pub.until(() => pub.results().length >= parts.length, 30000, 'results');
    const results = pub.results();
    const byFrame = new Map(results.map((r) => [r.frameId, r]));
    let correct = 0;
    parts.forEach((p, i) => {
      const r = byFrame.get(`img-${String(i).padStart(3, '0')}-${p.label}.png`);
      assert.ok(r, `result for image ${i}`);
      if (r.label === p.label) correct++;
      assert.equal(r.provider, 'cpu');
      assert.equal(r.model, 'demo-defects.onnx');
      assert.ok(Math.abs(Object.values(r.scores).reduce((a, b) => a + b, 0) - 1) < 1e-9);
      assert.ok(r.latencyMs.total >= r.latencyMs.inference);
    });
    assert.ok(correct / parts.length >= 0.9, `accuracy ${correct}/${parts.length}`);
    for (const s of pub.sent.filter((x) => x.topic.startsWith('inspection/'))) {
      const r = JSON.parse(String(s.payload)) as { verdict: string };
      assert.equal(s.priority, r.verdict === 'defective' ? 'CRITICAL' : 'LOW');
      assert.equal(s.source, 'vision');
    }
    // Defective and (reject_uncertain: true by default) uncertain parts are rejected.
    const defective = results.filter((r) => r.verdict !== 'good');
    assert.ok(defective.some((r) => r.verdict === 'defective'));
    const cmds = pub.commands();
    assert.equal(cmds.length, defective.length);
    for (const c of cmds) {
      assert.equal(c.topic, 'commands/reject-gate');
      assert.equal(c.local, true);
      assert.equal(c.uplink, false);
      assert.equal(c.body.coil, 0);
      assert.ok(defective.some((d) => d.frameId === c.body.part_id));
      // The reject command is published before the result of the same part.
      const ci = pub.sent.findIndex((s) => s === pub.sent.find((x) => x.topic === c.topic && x.payload === c.payload));
      const ri = pub.sent.findIndex(
        (s) =>
          s.topic === 'inspection/belt1/result' && String(s.payload).includes(`"frameId":"${String(c.body.frame_id)}"`),
      );
      assert.ok(ci < ri);
    }
    // Files are deleted once decided.
    await pub.until(() => readdirSync(dir).length === 0, 15000, 'files deleted');
    const v = svc.view();
    assert.equal(v.counters.decided, parts.length);
    assert.equal(v.model?.provider, 'cpu');
    assert.ok(v.latencyMs.inference!.p50! > 0);
    // Review folder: defective and uncertain frames kept, at most 5 files, newest listed first.
    assert.equal(v.review!.stats.writes, defective.length);
    assert.equal(v.review!.stats.files, Math.min(5, defective.length));
    assert.deepEqual(readdirSync(reviewDir).sort(), v.review!.recent.map((e) => e.file).sort());
    assert.ok(v.review!.recent.every((e) => /-(defective|uncertain)-img-/.test(e.file)));
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(reviewDir, { recursive: true, force: true });
  }
});

test('a half-written file is not read before it settles; .part uploads are skipped until renamed', async () => {
  const dir = tmp();
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({
      cameras: [{ id: 'ftp', kind: 'directory', path: dir, settle_ms: 400 }],
      deadline_ms: 10000,
    }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const png = await partPng('good', rng(5));
    const half = Math.floor(png.length / 2);
    writeFileSync(join(dir, 'slow.png'), png.subarray(0, half));
    writeFileSync(join(dir, 'upload.png.part'), png);
    await new Promise((r) => setTimeout(r, 150));
    writeFileSync(join(dir, 'slow.png'), png); // the rest arrives before settle_ms
    await pub.until(() => pub.results().length >= 1, 10000, 'slow.png result');
    await new Promise((r) => setTimeout(r, 600));
    const results = pub.results();
    assert.equal(results.length, 1);
    assert.equal(results[0]!.frameId, 'slow.png');
    assert.notEqual(results[0]!.verdict, 'failsafe');
    assert.equal(svc.view().counters.frameErrors, 0);
    assert.ok(existsSync(join(dir, 'upload.png.part')));
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt, truncated and enormous images: counted errors, fail-safe reject, and the next part is decided', async () => {
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ reject: REJECT, max_image_pixels: 10_000_000, deadline_ms: 5000 }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const good = await partPng('good', rng(77));
    const huge = await (
      await import('sharp')
    )
      .default({ create: { width: 4000, height: 3000, channels: 3, background: '#888' } })
      .png({ compressionLevel: 9 })
      .toBuffer();
    const frames: [string, Buffer][] = [
      ['corrupt', Buffer.from('definitely not an image')],
      ['truncated', good.subarray(0, good.length >> 1)],
      ['enormous', huge],
      ['next', good],
    ];
    for (const [id, image] of frames)
      svc.push({ cameraId: 'cam', frameId: id, partId: `P-${id}`, captureTs: Date.now(), image });
    await pub.until(() => pub.results().length >= 4, 20000, 'four results');
    const by = new Map(pub.results().map((r) => [r.frameId, r]));
    for (const id of ['corrupt', 'truncated', 'enormous']) {
      assert.equal(by.get(id)!.verdict, 'failsafe');
      assert.deepEqual(by.get(id)!.failSafe, { reason: 'frame_error', action: 'reject' });
    }
    assert.notEqual(by.get('next')!.verdict, 'failsafe');
    assert.equal(svc.view().counters.frameErrors, 3);
    const rejected = pub.commands().map((c) => c.body.part_id);
    for (const id of ['corrupt', 'truncated', 'enormous']) assert.ok(rejected.includes(`P-${id}`));
  } finally {
    await svc.stop();
  }
});

test('a dropped part and a late part get the fail-safe reject, counted', async () => {
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ reject: REJECT, queue_per_camera: 2, deadline_ms: 2000 }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const png = await partPng('good', rng(8));
    // Late: captured 5 s ago, deadline 2 s.
    svc.push({ cameraId: 'late', frameId: 'old', partId: 'L1', captureTs: Date.now() - 5000, image: png });
    // Dropped: 20 frames at once into a queue of 2 (two more are being decoded).
    for (let i = 0; i < 20; i++)
      svc.push({ cameraId: 'burst', frameId: `b${i}`, partId: `B${i}`, captureTs: Date.now(), image: png });
    await pub.until(() => pub.results().length >= 21, 20000, 'every part decided');
    await svc.idle();
    const v = svc.view();
    const by = new Map(pub.results().map((r) => [r.frameId, r]));
    assert.deepEqual(by.get('old')!.failSafe, { reason: 'deadline', action: 'reject' });
    assert.equal(v.counters.deadlineMisses, 1);
    assert.ok(v.counters.dropped >= 14, `dropped ${v.counters.dropped}`);
    assert.equal(v.counters.failSafe.dropped, v.counters.dropped);
    // Every part has exactly one outcome (no part passes undecided).
    assert.equal(v.counters.decided + v.counters.dropped + v.counters.deadlineMisses, 21);
    const rejected = new Set(pub.commands().map((c) => c.body.part_id));
    assert.ok(rejected.has('L1'));
    for (const r of pub.results()) if (r.failSafe?.reason === 'dropped') assert.ok(rejected.has(r.partId));
  } finally {
    await svc.stop();
  }
});

test('asking for tensorrt falls back to cpu with a log line; a missing model is a start error', async () => {
  const { log, lines } = captureLog();
  const svc = new VisionService({
    config: visionConfig({ providers: ['tensorrt', 'cpu'] }),
    log,
    publisher: new RecordingPublisher(),
  });
  await svc.start();
  try {
    const line = lines().find((l) => String(l.msg).includes('fallback from tensorrt'));
    assert.ok(line, 'fallback log line');
    assert.equal(line.provider, 'cpu');
    assert.equal(svc.view().model?.attempts[0]?.provider, 'tensorrt');
  } finally {
    await svc.stop();
  }
  const bad = new VisionService({
    config: visionConfig({ model: { path: '/nonexistent/m.onnx' } }),
    log,
    publisher: new RecordingPublisher(),
  });
  await assert.rejects(bad.start(), (e: unknown) => e instanceof GatewayError && e.code === 'EGW_VISION_MODEL');
});

test('an HTTP snapshot server in the test produces results with the part id from X-Part-Id', async () => {
  const png = await partPng('chip', rng(31));
  let n = 0;
  const srv = createServer((_req, res) => {
    n++;
    res.writeHead(200, { 'content-type': 'image/png', 'x-part-id': `H${n}` });
    res.end(png);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({
      cameras: [{ id: 'snap', kind: 'http', url: `http://127.0.0.1:${port}/snapshot.png`, interval_ms: 100 }],
    }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    await pub.until(() => pub.results().length >= 3, 15000, 'snapshot results');
    const r = pub.results()[0]!;
    assert.equal(r.cameraId, 'snap');
    assert.match(r.partId ?? '', /^H\d+$/);
    assert.notEqual(r.verdict, 'failsafe');
  } finally {
    await svc.stop();
    srv.close();
  }
});

test('MQTT image messages on camera/{id}/image (part id as topic suffix or user property) produce results', async () => {
  const cloud = await Cloud.create();
  const sub = await mqtt.connectAsync(cloud.url, { protocolVersion: 5 });
  const pubc = await mqtt.connectAsync(cloud.url, { protocolVersion: 5 });
  const handlers = new Map<
    string,
    (t: string, p: Buffer, props?: { userProperties?: Record<string, string | string[]> }) => void
  >();
  sub.on('message', (topic, payload, packet) => {
    for (const [filter, h] of handlers) {
      const re = new RegExp(`^${filter.replace('+', '[^/]+')}$`);
      if (re.test(topic))
        h(topic, payload, packet.properties as { userProperties?: Record<string, string | string[]> });
    }
  });
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ cameras: [{ id: 'cam7', kind: 'mqtt' }] }),
    log: captureLog().log,
    publisher: pub,
    subscribe: async (filter, h) => {
      handlers.set(filter, h);
      await sub.subscribeAsync(filter, { qos: 1 });
      return () => handlers.delete(filter);
    },
  });
  await svc.start();
  try {
    const png = await partPng('scratch', rng(12));
    await pubc.publishAsync('camera/cam7/image/PART-1', png, { qos: 1 });
    await pubc.publishAsync('camera/cam7/image', png, {
      qos: 1,
      properties: { userProperties: { part_id: 'PART-2' } },
    });
    await pub.until(() => pub.results().length >= 2, 15000, 'mqtt results');
    assert.deepEqual(
      pub
        .results()
        .map((r) => r.partId)
        .sort(),
      ['PART-1', 'PART-2'],
    );
  } finally {
    await svc.stop();
    await sub.endAsync();
    await pubc.endAsync();
    await cloud.close();
  }
});

test(
  'an ffmpeg stream produces results, reconnects when it ends, and leaves no child behind',
  { skip: !existsSync('/usr/bin/ffmpeg') && 'ffmpeg not installed' },
  async () => {
    const pub = new RecordingPublisher();
    const svc = new VisionService({
      config: visionConfig({
        cameras: [
          {
            id: 'rtsp',
            kind: 'ffmpeg',
            input: 'testsrc=size=160x120:rate=10:duration=1',
            // -re: at the stream's own rate, as a camera delivers (lavfi would dump all frames at once).
            input_args: ['-re', '-f', 'lavfi'],
            fps: 10,
            reconnect_ms: 200,
          },
        ],
      }),
      log: captureLog().log,
      publisher: pub,
    });
    await svc.start();
    try {
      await pub.until(() => pub.results().length >= 12, 30000, 'ffmpeg results');
      const cam = svc.view().cameras.rtsp!;
      assert.ok((cam.starts as number) >= 2, 'restarted after the stream ended');
    } finally {
      await svc.stop();
    }
    assert.ok(pub.results().every((r) => r.cameraId === 'rtsp'));
    assert.ok(pub.results().filter((r) => r.verdict !== 'failsafe').length >= 12);
    // No ffmpeg child of this process is left.
    const { execFileSync } = await import('node:child_process');
    const kids = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)]).toString();
    assert.doesNotMatch(kids, /ffmpeg/);
  },
);

test('model swap under load drops no frame; a corrupt new model leaves the old one serving', async () => {
  const dir = tmp();
  const copy = join(dir, 'new-model.onnx');
  copyFileSync(DEMO_MODEL, copy);
  const corrupt = join(dir, 'corrupt.onnx');
  writeFileSync(corrupt, Buffer.from('this is not an onnx model'));
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ shadow_frames: 3, queue_per_camera: 1000, deadline_ms: 60000 }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const png = await partPng('spot', rng(3));
    let sent = 0;
    const feeder = setInterval(() => {
      for (let i = 0; i < 2; i++)
        svc.push({ cameraId: 'c', frameId: `f${sent}`, partId: `p${sent++}`, captureTs: Date.now(), image: png });
    }, 20);
    await svc.swapModel(copy);
    await pub.until(() => svc.view().swap.state === 'switched', 20000, 'switched');
    await svc.swapModel(corrupt);
    assert.equal(svc.view().swap.state, 'failed');
    assert.match(svc.view().swap.reason ?? '', /corrupt\.onnx/);
    const served = pub.results().length;
    await pub.until(() => pub.results().length > served + 5, 10000, 'still serving');
    clearInterval(feeder);
    await svc.idle();
    const v = svc.view();
    assert.equal(v.model?.path, copy);
    assert.equal(v.counters.dropped, 0);
    assert.deepEqual(v.counters.failSafe, {});
    assert.equal(v.counters.decided, sent);
    const models = new Set(pub.results().map((r) => r.model));
    assert.deepEqual([...models].sort(), ['demo-defects.onnx', 'new-model.onnx']);
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inspecting at full speed keeps the event loop responsive (p99 delay bounded; the 20 ms figure is benchmarked)', async () => {
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ queue_per_camera: 1000, deadline_ms: 120000 }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const images = (await known(5, 900)).map((p) => p.png);
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const N = 200;
    for (let i = 0; i < N; i++)
      svc.push({
        cameraId: 'c',
        frameId: `f${i}`,
        partId: null,
        captureTs: Date.now(),
        image: images[i % images.length]!,
      });
    await pub.until(() => pub.results().length >= N, 120000, 'all results');
    h.disable();
    const p99 = h.percentile(99) / 1e6;
    const fps = svc.view().fps;
    console.log(`# event-loop delay p99 ${p99.toFixed(2)} ms, max ${(h.max / 1e6).toFixed(2)} ms, ${fps} fps`);
    // The ≤ 20 ms target is measured by scripts/vision-bench.ts (eventLoopDelayDuringOverlapMs), not
    // here: this shared machine is noisy. This bound still catches decode or inference moving onto the
    // main thread (200 frames back to back would hold the loop for whole batches).
    assert.ok(p99 <= 50, `p99 ${p99} ms`);
  } finally {
    await svc.stop();
  }
});

test(
  'ffmpeg raw frames follow a model swap to another input size: ffmpeg restarts at the new size, no part fails',
  { skip: !existsSync('/usr/bin/ffmpeg') && 'ffmpeg not installed' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-vision-retarget-'));
    const tiny = join(dir, 'tiny-32.onnx');
    copyFileSync(join(process.cwd(), 'test', 'fixtures', 'vision', 'tiny-32.onnx'), tiny);
    const pub = new RecordingPublisher();
    const log = captureLog();
    const svc = new VisionService({
      config: visionConfig({
        cameras: [
          {
            id: 'cam',
            kind: 'ffmpeg',
            input: 'testsrc=size=160x120:rate=10:duration=120',
            input_args: ['-re', '-f', 'lavfi'],
            fps: 10,
          },
        ],
        deadline_ms: 5000,
      }),
      log: log.log,
      publisher: pub,
    });
    await svc.start();
    try {
      const view = () => svc.view().cameras.cam as { rawSize?: string; starts: number; format: string };
      await pub.until(() => pub.results().length >= 5, 30000, 'results at 64×64');
      assert.equal(view().format, 'raw');
      assert.equal(view().rawSize, '64x64x3');
      await svc.swapModel(tiny);
      await pub.until(() => svc.view().swap.state === 'switched', 20000, 'switched');
      await pub.until(() => view().rawSize === '32x32x3', 20000, 'ffmpeg restarted at 32×32');
      const before = pub.results().length;
      await pub.until(
        () => pub.results().filter((r) => r.model === 'tiny-32.onnx').length >= 5 && pub.results().length > before,
        30000,
        'results from the new model',
      );
      assert.equal(view().starts, 2, 'one planned restart, no backoff restarts');
      assert.ok(
        log.lines().some((l) => l.msg === 'vision: model input changed; restarting ffmpeg at the new size'),
        'the restart is logged',
      );
    } finally {
      await svc.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    const results = pub.results();
    assert.deepEqual(
      // A frame still queued when the test stops the service is `stopped`, not a swap casualty.
      results.filter((r) => r.verdict === 'failsafe' && r.failSafe?.reason !== 'stopped').map((r) => r.failSafe),
      [],
      'no part failed or was dropped across the swap',
    );
    assert.ok(results.some((r) => r.model === 'demo-defects.onnx') && results.some((r) => r.model === 'tiny-32.onnx'));
  },
);
