import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GatewayError } from '../../src/errors.js';
import { tensorDims, toTensor } from '../../src/vision/contract.js';
import { decodeForModel } from '../../src/vision/decode.js';
import { decide } from '../../src/vision/decision.js';
import { InferenceEngine } from '../../src/vision/engine.js';
import { partPng, rng } from '../../scripts/vision-synth.js';
import { RejectActuator } from '../../src/vision/actions.js';
import { Inspector, MAX_IN_FLIGHT } from '../../src/vision/inspector.js';
import { captureLog, DEMO_MODEL, RecordingPublisher, visionConfig } from './vision-harness.js';

test('the demo model loads on cpu in a worker; contract from its metadata; scores match a direct session.run', async () => {
  const engine = await InferenceEngine.load({ config: visionConfig({ warmup_runs: 1 }) });
  try {
    assert.equal(engine.provider, 'cpu');
    assert.deepEqual(engine.attempts, []);
    const c = engine.contract;
    assert.deepEqual(c.labels, ['good', 'scratch', 'spot', 'chip']);
    assert.deepEqual([c.layout, c.width, c.height, c.channels], ['NCHW', 64, 64, 3]);
    assert.deepEqual(c.mean, [0.5, 0.5, 0.5]);
    const img = await partPng('spot', rng(99));
    const pixels = await decodeForModel(img, c, { maxPixels: 1e8 });
    // Reference: the same tensor through onnxruntime on this thread.
    const s = await ort.InferenceSession.create(DEMO_MODEL);
    const ref = await s.run({ [c.inputName]: new ort.Tensor('float32', toTensor(pixels, c), tensorDims(c)) });
    const refLogits = ref[c.outputName]!.data as Float32Array;
    const out = await engine.infer(pixels.slice());
    assert.deepEqual(Array.from(out.logits), Array.from(refLogits));
    const policy = {
      labels: c.labels,
      goodLabels: c.goodLabels,
      defectThresholds: {},
      defaultDefectThreshold: 0.5,
      uncertainBelow: 0.6,
    };
    assert.deepEqual(decide(out.logits, policy).scores, decide(refLogits, policy).scores);
    assert.ok(out.inferenceMs >= 0 && out.preprocessMs >= 0);
    await s.release();
  } finally {
    await engine.close();
  }
});

test('asking for tensorrt and cuda here falls back to cpu and says why', async () => {
  const engine = await InferenceEngine.load({
    config: visionConfig({ providers: ['tensorrt', 'cuda', 'cpu'], warmup_runs: 0 }),
  });
  try {
    assert.equal(engine.provider, 'cpu');
    assert.deepEqual(
      engine.attempts.map((a) => a.provider),
      ['tensorrt', 'cuda'],
    );
    for (const a of engine.attempts) assert.ok(a.error.length > 0);
  } finally {
    await engine.close();
  }
});

test('a missing model file, a non-model file and no loadable provider are EGW_VISION_MODEL', async () => {
  await assert.rejects(
    InferenceEngine.load({ config: visionConfig({ model: { path: '/nonexistent/model.onnx' } }) }),
    (e: unknown) => e instanceof GatewayError && e.code === 'EGW_VISION_MODEL' && /not found/.test(e.message),
  );
  await assert.rejects(
    InferenceEngine.load({ config: visionConfig({ model: { path: join(process.cwd(), 'package.json') } }) }),
    (e: unknown) => e instanceof GatewayError && e.code === 'EGW_VISION_MODEL',
  );
  await assert.rejects(
    InferenceEngine.load({ config: visionConfig({ providers: ['tensorrt'] }) }),
    (e: unknown) => e instanceof GatewayError && e.code === 'EGW_VISION_MODEL' && /tensorrt:/.test(e.message),
  );
  // Labels that do not match the output count break the contract at load (warm-up checks it).
  await assert.rejects(
    InferenceEngine.load({ config: visionConfig({ model: { path: DEMO_MODEL, labels: ['good', 'bad'] } }) }),
    (e: unknown) => e instanceof GatewayError && /4 scores for 2 labels/.test(e.message),
  );
});

test('held-out synthetic parts (a seed not used in training): accuracy ≥ 95 %', async () => {
  const engine = await InferenceEngine.load({ config: visionConfig({ warmup_runs: 1 }) });
  try {
    const c = engine.contract;
    const { parts } = await import('../../scripts/vision-synth.js');
    let n = 0;
    let ok = 0;
    for await (const p of parts(50, 31337)) {
      const out = await engine.infer(await decodeForModel(p.png, c, { maxPixels: 1e8 }));
      let best = 0;
      for (let i = 1; i < out.logits.length; i++) if (out.logits[i]! > out.logits[best]!) best = i;
      n++;
      if (c.labels[best] === p.label) ok++;
    }
    console.log(`# held-out accuracy ${ok}/${n} = ${((ok / n) * 100).toFixed(1)} %`);
    assert.ok(ok / n >= 0.95, `${ok}/${n}`);
  } finally {
    await engine.close();
  }
});

test('an NHWC model (layout from its shape and metadata) gives the same scores as the NCHW one', async () => {
  const nchw = await InferenceEngine.load({ config: visionConfig({ warmup_runs: 0 }) });
  const nhwc = await InferenceEngine.load({
    config: visionConfig({ warmup_runs: 0, model: { path: DEMO_MODEL.replace('.onnx', '-nhwc.onnx') } }),
  });
  try {
    assert.equal(nchw.contract.layout, 'NCHW');
    assert.equal(nhwc.contract.layout, 'NHWC');
    for (const label of ['good', 'scratch', 'spot', 'chip'] as const) {
      const img = await partPng(label, rng(label.length * 7));
      const a = await nchw.infer(await decodeForModel(img, nchw.contract, { maxPixels: 1e8 }));
      const b = await nhwc.infer(await decodeForModel(img, nhwc.contract, { maxPixels: 1e8 }));
      a.logits.forEach((v, i) =>
        assert.ok(Math.abs(v - b.logits[i]!) < 1e-4, `${label}[${i}]: ${v} vs ${b.logits[i]}`),
      );
    }
  } finally {
    await nchw.close();
    await nhwc.close();
  }
});

test('a tensor made by the caller gives the same logits as pixels converted in the worker, and comes back for reuse', async () => {
  const engine = await InferenceEngine.load({ config: visionConfig({ warmup_runs: 0 }) });
  try {
    const c = engine.contract;
    const pixels = await decodeForModel(await partPng('chip', rng(5)), c, { maxPixels: 1e8 });
    const a = await engine.infer(pixels.slice());
    const tensor = toTensor(pixels, c);
    const b = await engine.inferTensor(tensor);
    assert.deepEqual(Array.from(b.logits), Array.from(a.logits));
    assert.equal(tensor.length, 0, 'transferred to the worker');
    assert.equal(b.tensor?.length, c.width * c.height * c.channels, 'and back');
    await assert.rejects(engine.inferTensor(new Float32Array(5)), /5 elements/);
  } finally {
    await engine.close();
  }
});

test('the inspector keeps two frames in flight to the worker, so it never waits for the round trip', async () => {
  const cfg = visionConfig({ queue_per_camera: 100, deadline_ms: 60000 });
  const engine = await InferenceEngine.load({ config: cfg });
  let inFlight = 0;
  let maxInFlight = 0;
  const real = engine.inferTensor.bind(engine);
  engine.inferTensor = async (t, ms) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    try {
      return await real(t, ms);
    } finally {
      inFlight--;
    }
  };
  const results: string[] = [];
  const insp = new Inspector(
    cfg,
    engine,
    new RejectActuator([], new RecordingPublisher(), captureLog().log),
    captureLog().log,
    {
      onResult: (r) => results.push(r.verdict),
    },
  );
  try {
    const png = await partPng('good', rng(1));
    for (let i = 0; i < 12; i++)
      insp.push({ cameraId: 'c', frameId: `f${i}`, partId: `p${i}`, captureTs: Date.now(), image: png });
    await insp.idle();
    assert.equal(results.length, 12);
    assert.ok(!results.includes('failsafe'));
    assert.equal(maxInFlight, MAX_IN_FLIGHT);
    assert.equal(MAX_IN_FLIGHT, 2);
  } finally {
    await insp.stop();
  }
});
