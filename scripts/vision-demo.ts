/**
 * Runs vision inspection from a config file's `vision:` section on its cameras, printing each
 * result and reject command, until every dropped image is decided (or Ctrl-C with --follow).
 * When a directory camera's folder is missing or empty, it is filled with synthetic sample parts.
 *
 *   npm run build && node dist/scripts/vision-demo.js config/examples/vision-demo.yaml [--follow]
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfigFile } from '../src/config/load.js';
import type { PublishOutcome, PublishRequest } from '../src/publisher/types.js';
import type { VisionConfig } from '../src/vision/config.js';
import { VisionService } from '../src/vision/service.js';
import type { InspectionResult } from '../src/vision/types.js';
import { parts } from './vision-synth.js';

async function main(): Promise<void> {
  const file = process.argv[2] ?? 'config/examples/vision-demo.yaml';
  const follow = process.argv.includes('--follow');
  // The gateway's own loader: the same schema, defaults, secrets and errors with their lines.
  let cfg: VisionConfig;
  try {
    cfg = loadConfigFile(file).vision;
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
  let expected = 0;
  for (const cam of cfg.cameras) {
    if (cam.kind !== 'directory') continue;
    mkdirSync(cam.path, { recursive: true });
    if (readdirSync(cam.path).length === 0)
      for await (const p of parts(5, 2024))
        writeFileSync(join(cam.path, `part-${String(p.index).padStart(3, '0')}-${p.label}.png`), p.png);
    expected += readdirSync(cam.path).filter((f) => !f.startsWith('.')).length;
  }
  let seen = 0;
  let resolveDone: () => void = () => undefined;
  const allDone = new Promise<void>((r) => (resolveDone = r));
  const publisher = {
    publish(req: PublishRequest): Promise<PublishOutcome> {
      if (req.topic.startsWith('inspection/')) {
        const r = JSON.parse(String(req.payload)) as InspectionResult;
        const conf = r.confidence === null ? '' : ` ${(r.confidence * 100).toFixed(1)}%`;
        const why = r.failSafe ? ` (fail-safe ${r.failSafe.action}: ${r.failSafe.reason})` : '';
        console.log(
          `${req.priority === 'CRITICAL' ? '!' : ' '} ${r.cameraId} ${r.frameId}: ${r.verdict} ${r.label ?? ''}${conf}${why}  ${r.latencyMs.total} ms`,
        );
        if (++seen >= expected && !follow) resolveDone();
      } else console.log(`  → ${req.topic} ${String(req.payload)}`);
      return Promise.resolve({ local: true, uplink: false });
    },
  };
  const log = pino({ level: 'info' });
  const svc = new VisionService({ config: { ...cfg, enabled: true }, log, publisher });
  await svc.start();
  process.once('SIGINT', () => resolveDone());
  if (expected > 0 || follow) await allDone;
  const v = svc.view();
  console.log(
    JSON.stringify(
      { provider: v.model?.provider, counters: v.counters, latencyMs: v.latencyMs, review: v.review?.stats },
      null,
      2,
    ),
  );
  await svc.stop();
  if (!existsSync(file)) process.exit(1);
}

await main();
