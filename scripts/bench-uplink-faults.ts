// Full-size fault runs (the npm test versions use smaller counts):
//   node dist/scripts/bench-uplink-faults.js outage [readings=100000] [publishers=8]
//   node dist/scripts/bench-uplink-faults.js crash [kills=20] [publishers=4]
// Prints one JSON line with the counts (acked, delivered, missing, duplicates by kind).
import { runCrashLoop, runOutage, startRig } from '../test/integration/uplink-scenarios.js';

const [mode = 'outage', a, b] = process.argv.slice(2);
const rig = await startRig('queue: { classes: { MEDIUM: { batch_window_ms: 50 } } }');
try {
  const r =
    mode === 'crash'
      ? await runCrashLoop(rig, Number(a ?? 20), Number(b ?? 4), 500, 300000)
      : await runOutage(rig, Number(a ?? 100000), Number(b ?? 8), 600000);
  process.stdout.write(`${JSON.stringify({ mode, ...r })}\n`);
  process.exitCode = r.missing === 0 ? 0 : 1;
} finally {
  await rig.close();
}
