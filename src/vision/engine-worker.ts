import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type * as Ort from 'onnxruntime-node';
import type { Provider } from './config.js';
import { ContractError, resolveContract, tensorDims, toTensor, type ModelContract } from './contract.js';
import type { FromWorker, LoadRequest, ProviderAttempt, ToWorker } from './engine-protocol.js';
import { readOnnxMetadata } from './onnx-metadata.js';

/*
 * The inference worker. onnxruntime-node's session.run does its work on the calling thread
 * (microsoft/onnxruntime#19611), so a 20-100 ms model would stall the broker and CoAP server
 * if run on the main thread. Here it owns one session; the main thread sends pixels, receives
 * logits. Tensor conversion runs here too, so the main thread does neither.
 */

type OrtModule = typeof Ort;
let ort: OrtModule | undefined;
let session: Ort.InferenceSession | undefined;
let contract: ModelContract | undefined;
let tensorBuf: Float32Array | undefined;

const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => parentPort!.postMessage(m, transfer ?? []);
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function epOption(p: Provider, req: LoadRequest): Ort.InferenceSession.ExecutionProviderConfig {
  if (p === 'cuda') return { name: 'cuda', deviceId: req.cudaDeviceId };
  if (p === 'tensorrt') return { name: 'tensorrt', deviceId: req.cudaDeviceId };
  return 'cpu';
}

async function load(req: LoadRequest): Promise<void> {
  const attempts: ProviderAttempt[] = [];
  const t0 = performance.now();
  try {
    ort ??= (await import(req.binding ?? 'onnxruntime-node')) as OrtModule;
    const bytes = readFileSync(req.modelPath);
    const metadata = readOnnxMetadata(bytes);
    let chosen: Provider | undefined;
    let s: Ort.InferenceSession | undefined;
    for (const p of req.providers) {
      // One provider per attempt: a list would let onnxruntime assign nodes to CPU quietly, and
      // the operator must know which provider runs the model (issue: "never a silent fallback").
      try {
        s = await ort.InferenceSession.create(bytes, {
          executionProviders: [epOption(p, req)],
          intraOpNumThreads: req.intraOpThreads,
          interOpNumThreads: 1,
          graphOptimizationLevel: 'all',
          extra: { session: { intra_op: { allow_spinning: req.spinning ? '1' : '0' } } },
        });
        chosen = p;
        break;
      } catch (e) {
        attempts.push({ provider: p, error: msg(e) });
      }
    }
    if (s === undefined || chosen === undefined) {
      post({
        type: 'load-failed',
        error: 'no execution provider could load the model',
        attempts,
        contractError: false,
      });
      return;
    }
    const input = s.inputMetadata[0];
    const c = resolveContract(
      {
        inputNames: s.inputNames,
        outputNames: s.outputNames,
        inputShape: input && input.isTensor ? input.shape : [],
        metadata,
      },
      req.model,
      req.labelsFromFile,
    );
    const loadMs = performance.now() - t0;
    session = s;
    contract = c;
    tensorBuf = new Float32Array(c.width * c.height * c.channels);
    const t1 = performance.now();
    const blank = new Uint8Array(c.width * c.height * c.channels);
    for (let i = 0; i < req.warmupRuns; i++) {
      const out = await run(blank);
      if (out.length !== c.labels.length)
        throw new ContractError(`the model outputs ${out.length} scores for ${c.labels.length} labels`);
    }
    post({ type: 'loaded', provider: chosen, attempts, contract: c, loadMs, warmupMs: performance.now() - t1 });
  } catch (e) {
    post({ type: 'load-failed', error: msg(e), attempts, contractError: e instanceof ContractError });
  }
}

let lastPre = 0;
async function run(pixels: Uint8Array | null, prepared?: Float32Array): Promise<Float32Array> {
  const c = contract!;
  const t0 = performance.now();
  let data: Float32Array;
  if (prepared) {
    if (prepared.length !== c.width * c.height * c.channels)
      throw new ContractError(`tensor has ${prepared.length} elements; ${c.width * c.height * c.channels} expected`);
    data = prepared;
  } else data = toTensor(pixels!, c, tensorBuf);
  const feed = { [c.inputName]: new ort!.Tensor('float32', data, tensorDims(c)) };
  lastPre = performance.now() - t0;
  const out = await session!.run(feed);
  const t = out[c.outputName];
  if (!t || !(t.data instanceof Float32Array)) throw new Error('the model output is not float32');
  return Float32Array.from(t.data);
}

// Requests are handled one at a time (the session is not re-entered). The main thread keeps two
// in flight, so the next request is already queued here when a run ends.
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (m: ToWorker) => {
  chain = chain.then(async () => {
    if (m.type === 'load') await load(m);
    else if (m.type === 'infer') {
      try {
        const t0 = performance.now();
        const logits = await run(m.pixels ?? null, m.tensor);
        const inferenceMs = performance.now() - t0 - lastPre;
        const transfer = [logits.buffer as ArrayBuffer];
        if (m.tensor) transfer.push(m.tensor.buffer as ArrayBuffer);
        post(
          {
            type: 'result',
            id: m.id,
            logits,
            preprocessMs: lastPre,
            inferenceMs,
            ...(m.tensor ? { tensor: m.tensor } : {}),
          },
          transfer,
        );
      } catch (e) {
        post({ type: 'infer-failed', id: m.id, error: msg(e) });
      }
    } else {
      await session?.release().catch(() => undefined);
      session = undefined;
      parentPort!.close();
    }
  });
});
