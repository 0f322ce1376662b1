import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, createReadStream, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VisionService } from '../../src/vision/service.js';
import { partPng, rng } from '../../scripts/vision-synth.js';
import { captureLog, DEMO_MODEL, RecordingPublisher, visionConfig } from './vision-harness.js';

test('serial reject: one line per rejected part on a real pty (socat), with the part id', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-vision-serial-'));
  const dev = join(dir, 'gate-dev');
  const peer = join(dir, 'gate-peer');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${dev}`, `pty,raw,echo=0,link=${peer}`], { stdio: 'ignore' });
  for (let i = 0; i < 250 && !(existsSync(dev) && existsSync(peer)); i++) await new Promise((r) => setTimeout(r, 20));
  let got = '';
  const rd = createReadStream(peer);
  rd.on('data', (d) => (got += d.toString()));
  rd.on('error', () => undefined); // EIO once socat closes the pty at the end
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ reject: [{ kind: 'serial', port: dev, baud: 115200, line: 'REJECT {cameraId} {partId}' }] }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    svc.push({
      cameraId: 'belt',
      frameId: 'f1',
      partId: 'A-17',
      captureTs: Date.now(),
      image: await partPng('chip', rng(5)),
    });
    svc.push({ cameraId: 'belt', frameId: 'f2', partId: 'A-18', captureTs: Date.now(), image: Buffer.from('garbage') });
    svc.push({
      cameraId: 'belt',
      frameId: 'f3',
      partId: 'A-19',
      captureTs: Date.now(),
      image: await partPng('good', rng(6)),
    });
    await pub.until(() => pub.results().length >= 3, 15000, 'results');
    const by = new Map(pub.results().map((r) => [r.partId, r.verdict]));
    const expected = ['A-17', 'A-18', 'A-19'].filter((p) => by.get(p) !== 'good');
    // Results are published before the gate's write reaches the peer, and in completion order
    // (the garbage frame fails fast): wait for every expected line, not just the last pushed.
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && !expected.every((p) => got.includes(`REJECT belt ${p}\n`)))
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(expected.includes('A-18'), 'the garbage frame is a fail-safe reject');
    assert.deepEqual(
      got
        .split('\n')
        .filter((l) => l !== '')
        .sort(),
      expected.map((p) => `REJECT belt ${p}`).sort(),
    );
    assert.equal(svc.view().counters.rejectErrors, 0);
  } finally {
    await svc.stop();
    rd.destroy();
    socat.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model file replaced on disk is swapped in (shadow, then switch); a broken one is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-vision-watch-'));
  const model = join(dir, 'model.onnx');
  copyFileSync(DEMO_MODEL, model);
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({ model: { path: model }, shadow_frames: 2 }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const png = await partPng('good', rng(1));
    let i = 0;
    const feeder = setInterval(
      () => svc.push({ cameraId: 'c', frameId: `f${i++}`, partId: null, captureTs: Date.now(), image: png }),
      30,
    );
    writeFileSync(model, Buffer.from('truncated model'));
    await pub.until(() => svc.view().swap.state === 'failed', 20000, 'swap refused');
    // Replaced the safe way (temp file + rename): a new inode.
    copyFileSync(DEMO_MODEL, `${model}.tmp`);
    renameSync(`${model}.tmp`, model);
    await pub.until(() => svc.view().swap.state === 'switched', 20000, 'swap done');
    clearInterval(feeder);
    await svc.idle();
    const v = svc.view();
    assert.deepEqual(v.counters.failSafe, {});
    assert.equal(v.counters.decided, i);
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a plugin reject hook gets every rejected part; a throwing hook is a counted reject error', async () => {
  const pub = new RecordingPublisher();
  const svc = new VisionService({ config: visionConfig(), log: captureLog().log, publisher: pub });
  await svc.start();
  try {
    const seen: string[] = [];
    const results: string[] = [];
    svc.addRejectHook((ev) => void seen.push(`${ev.partId}:${ev.reason}`));
    const off = svc.addRejectHook(() => {
      throw new Error('plc offline');
    });
    svc.onInspection((r) => results.push(r.verdict));
    svc.push({ cameraId: 'c', frameId: 'x', partId: 'P1', captureTs: Date.now(), image: Buffer.from('bad') });
    await pub.until(() => pub.results().length >= 1, 10000, 'result');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, ['P1:frame_error']);
    assert.deepEqual(results, ['failsafe']);
    assert.equal(svc.view().counters.rejectErrors, 1);
    off();
  } finally {
    await svc.stop();
  }
});

test('a dead inference worker: its parts get the fail-safe, the model is reloaded, inspection resumes', async () => {
  const pub = new RecordingPublisher();
  const svc = new VisionService({ config: visionConfig({ reject: [] }), log: captureLog().log, publisher: pub });
  await svc.start();
  try {
    const png = await partPng('good', rng(2));
    const first = svc.engine!;
    await first.kill();
    svc.push({ cameraId: 'c', frameId: 'during', partId: null, captureTs: Date.now(), image: png });
    await pub.until(() => pub.results().length >= 1, 10000, 'fail-safe result');
    assert.deepEqual(pub.results()[0]!.failSafe, { reason: 'inference_error', action: 'reject' });
    for (let i = 0; i < 1000 && svc.view().counters.workerRestarts === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(svc.view().counters.workerRestarts, 1);
    assert.notEqual(svc.engine, first);
    svc.push({ cameraId: 'c', frameId: 'after', partId: null, captureTs: Date.now(), image: png });
    await pub.until(() => pub.results().length >= 2, 10000, 'result after reload');
    assert.notEqual(pub.results()[1]!.verdict, 'failsafe');
    assert.equal(svc.health().ok, true);
  } finally {
    await svc.stop();
  }
});

test('POST /mgmt/inspection body: swaps within the model folder only; hostile bodies are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-vision-mgmt-'));
  const model = join(dir, 'model.onnx');
  copyFileSync(DEMO_MODEL, model);
  copyFileSync(DEMO_MODEL, join(dir, 'v2.onnx'));
  writeFileSync(join(dir, 'bad.onnx'), 'not a model');
  const svc = new VisionService({
    config: visionConfig({ model: { path: model }, shadow_frames: 0 }),
    log: captureLog().log,
    publisher: new RecordingPublisher(),
  });
  await svc.start();
  try {
    for (const body of [
      null,
      [],
      'x',
      { model: 5 },
      { model: '../../etc/passwd' },
      { model: '/etc/x.onnx' },
      { model: 'a/b.onnx' },
      { model: 'x.txt' },
      { model: 'v2.onnx', extra: 1 },
      { model: 'x'.repeat(300) + '.onnx' },
    ])
      assert.equal((await svc.mgmtPost(body)).ok, false, JSON.stringify(body).slice(0, 60));
    const bad = await svc.mgmtPost({ model: 'bad.onnx' });
    assert.equal(bad.ok, false);
    assert.equal(bad.swap?.state, 'failed');
    assert.equal(svc.view().model?.path, model, 'the old model keeps serving');
    const ok = await svc.mgmtPost({ model: 'v2.onnx' });
    assert.equal(ok.ok, true);
    assert.equal(svc.view().model?.path, join(dir, 'v2.onnx'));
    assert.equal((await svc.mgmtPost({})).ok, true);
    assert.equal(svc.view().model?.path, model);
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
