/**
 * Test-only fault injection for the OTA kill -9 matrix (docs/ota.md §Testing a kill at every
 * state). With `EDGE_GATEWAY_OTA_FAULT=<point>` in the environment the process announces the point on
 * stderr (`OTA fault point reached <point>`) and then holds there — the event loop blocked, no I/O,
 * no timers — for up to `EDGE_GATEWAY_OTA_FAULT_HOLD_MS` (default 60 s), so a test can `kill -9` it at
 * exactly that step. Off in production: ignored when NODE_ENV=production (the unit sets it) and
 * when the variable is unset; nothing else in the client depends on it.
 *
 * Points, in the order an update passes them: checking, downloading (half of the bundle's bytes
 * written), downloaded (verified, before unpacking), unpacking (extracted into releases/<v>.tmp,
 * before the rename), staged (releases/<v> in place), activate:trial-written,
 * activate:previous-linked, activate:current-linked (the swap done, the state not yet written),
 * trial (the new release in its health window), committing (trial file removed, state not yet
 * written), rollback:marker-written, rollback:current-linked.
 */
export const FAULT_POINTS = [
  'checking',
  'downloading',
  'downloaded',
  'unpacking',
  'staged',
  'activate:trial-written',
  'activate:previous-linked',
  'activate:current-linked',
  'trial',
  'committing',
  'rollback:marker-written',
  'rollback:current-linked',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

export function faultPoint(point: FaultPoint, env: NodeJS.ProcessEnv = process.env): void {
  if (env['EDGE_GATEWAY_OTA_FAULT'] !== point || env['NODE_ENV'] === 'production') return;
  process.stderr.write(`OTA fault point reached ${point}\n`);
  const hold = Number(env['EDGE_GATEWAY_OTA_FAULT_HOLD_MS'] ?? 60_000);
  // Atomics.wait blocks the thread: nothing after this point runs until the test kills us.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number.isFinite(hold) ? hold : 60_000);
}
