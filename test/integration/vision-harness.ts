// Helpers for the vision tests: a config with the schema's defaults, a recording publisher (the
// Publisher seam; the real one lives in the modules branch), a log capture and result waiting.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { PublishOutcome, PublishRequest, Publisher } from '../../src/publisher/types.js';
import { parseConfig } from '../../src/config/load.js';
import type { VisionConfig } from '../../src/vision/config.js';
import type { InspectionResult } from '../../src/vision/types.js';

export const DEMO_MODEL = join(process.cwd(), 'test', 'fixtures', 'vision', 'demo-defects.onnx');

/** The vision section through the gateway's loader (schema defaults, if/then branches), as it runs. */
export function visionConfig(extra: Record<string, unknown> = {}): VisionConfig {
  const vision = { enabled: true, model: { path: DEMO_MODEL }, warmup_runs: 1, ...extra };
  return parseConfig(JSON.stringify({ version: 1, vision }), 'vision-test.yaml', {}).vision;
}

export class RecordingPublisher implements Publisher {
  readonly sent: (PublishRequest & { at: number })[] = [];
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  publish(req: PublishRequest): Promise<PublishOutcome> {
    this.sent.push({ ...req, at: Date.now() });
    this.waiters = this.waiters.filter((w) => (w.pred() ? (w.resolve(), false) : true));
    return Promise.resolve({ local: req.local !== false, uplink: req.uplink !== false });
  }
  results(): InspectionResult[] {
    return this.sent
      .filter((s) => s.topic.startsWith('inspection/'))
      .map((s) => JSON.parse(String(s.payload)) as InspectionResult);
  }
  commands(): (PublishRequest & { body: Record<string, unknown> })[] {
    return this.sent
      .filter((s) => s.topic.startsWith('commands/'))
      .map((s) => ({ ...s, body: JSON.parse(String(s.payload)) as Record<string, unknown> }));
  }
  /**
   * Waits (bounded) until `pred` holds: checked on every publish and every 25 ms, since some
   * predicates (files deleted, lines on a pty) change without a publish.
   */
  until(pred: () => boolean, timeoutMs = 20000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(t);
        clearInterval(poll);
        resolve();
      };
      const w = { pred, resolve: done };
      const t = setTimeout(() => {
        clearInterval(poll);
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(() => {
        if (!pred()) return;
        this.waiters = this.waiters.filter((x) => x !== w);
        done();
      }, 25);
      this.waiters.push(w);
    });
  }
}

export function captureLog(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      );
      cb();
    },
  });
  return {
    log: pino({ level: 'debug' }, stream),
    lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Polls `pred` every 25 ms until it holds; throws after `ms`. */
export async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** This process's ffmpeg children (`ps` lines; empty when none): sources must leave none behind. */
export function ffmpegChildren(): string {
  try {
    return execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)])
      .toString()
      .split('\n')
      .filter((l) => /ffmpeg/.test(l))
      .join('\n');
  } catch {
    return ''; // ps exits 1 when there is no child at all
  }
}
