import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Channel,
  UNIT,
  ctl,
  inspectBoard,
  installBoard,
  keygen,
  makeRelease,
  otaYaml,
  pack,
  tempBase,
  type ReleaseKind,
  boardUnits,
} from '../helpers/ota-rig.js';
import { Supervisor, parseSpan, type Run } from '../helpers/supervisor.js';
import { readUnit } from '../helpers/systemd-unit.js';

// The OTA rollback end to end under the shipped unit's semantics (docs/ota.md §Activation, trial and
// rollback): test/helpers/supervisor.ts reads systemd/edge-gateway.service and
// edge-gateway-rollback.service and runs the real gateway the way systemd 252 would — ExecStartPre=
// (the trial script), Type=notify READY within TimeoutStartSec=, WatchdogSec=, Restart=,
// RestartForceExitStatus=, StartLimitBurst=/IntervalSec=, OnFailure= — with NOTIFY_SOCKET served by
// a unix datagram listener and the gateway's real systemd-notify CLI calls. Durations scaled by 0.1
// (TimeoutStartSec=60s → 6 s, WatchdogSec=30s → 3 s, RestartSec=2s → 0.2 s, StartLimitIntervalSec=600 → 60 s).

const SCALE = 0.1;

interface Board {
  base: string;
  root: string;
  data: string;
  channel: Channel;
  keyFile: string;
  sup: Supervisor;
}

async function board(
  t: { after(fn: () => void | Promise<void>): void },
  o: { maxTrialStarts?: number; env?: Record<string, string> } = {},
): Promise<Board> {
  const tmp = tempBase('egw-otasup-');
  t.after(() => tmp.cleanup());
  const base = tmp.dir;
  const root = installBoard(base);
  const { keyFile, publicKey } = keygen(base);
  mkdirSync(join(base, 'channel'));
  const channel = new Channel(join(base, 'channel'));
  await channel.listen();
  t.after(() => channel.close());
  const data = join(base, 'data');
  const cfg = join(base, 'gateway.yaml');
  writeFileSync(
    cfg,
    otaYaml({
      data,
      channelUrl: channel.url,
      publicKey,
      ...(o.maxTrialStarts !== undefined ? { maxTrialStarts: o.maxTrialStarts } : {}),
    }),
  );
  const sup = new Supervisor({
    ...boardUnits(root, cfg, join(base, 'notify.sock')),
    scale: SCALE,
    ...(o.env ? { env: o.env } : {}),
  });
  t.after(() => sup.stop());
  return { base, root, data, channel, keyFile, sup };
}

function offer(b: Board, version: string, kind: ReleaseKind): void {
  pack(b.channel.dir, b.keyFile, makeRelease(join(b.base, `src-${version}`), version, kind));
}

async function coapPort(b: Board, run: Run): Promise<number> {
  const line = await b.sup.waitFor('CoAP listening', () => run.log((l) => l.msg === 'CoAP listening'), 15000);
  return line['port'] as number;
}

/** `ctl ota apply` against the running release; it exits 75 once the new release is activated. */
async function apply(b: Board, run: Run): Promise<void> {
  const r = await ctl(await coapPort(b, run), ['ota', 'apply']);
  assert.equal(r.code, 0, r.out);
}

function otaState(b: Board): { phase: string; reason: string | null; result: string; version: string | null } {
  return JSON.parse(readFileSync(join(b.data, 'ota-state.json'), 'utf8')) as {
    phase: string;
    reason: string | null;
    result: string;
    version: string | null;
  };
}

const kinds = (b: Board) => b.sup.events.map((e) => (e.detail ? `${e.ev}:${e.detail}` : e.ev));

test('the supervisor reads the shipped unit: the keys it applies are there', () => {
  const u = readUnit(UNIT);
  const s = u.get('Service')!;
  assert.deepEqual(s.get('Type'), ['notify']);
  assert.ok(parseSpan(s.get('TimeoutStartSec')![0]!) > 0);
  assert.ok(parseSpan(s.get('WatchdogSec')![0]!) > 0);
  assert.equal(s.get('ExecStartPre')!.length, 1);
  assert.deepEqual(u.get('Unit')!.get('OnFailure'), ['edge-gateway-rollback.service']);
  assert.ok(Number(u.get('Unit')!.get('StartLimitBurst')![0]) >= 5, 'room for the trial starts before the limit');
  assert.equal(parseSpan('30s'), 30000);
  assert.equal(parseSpan('600'), 600000);
  assert.equal(parseSpan('2min 3s'), 123000);
  assert.equal(parseSpan('500ms'), 500);
});

test('a good update: exit 75 restarts into the new release, READY, health window, committed', async (t) => {
  const b = await board(t);
  offer(b, '0.2.0', 'real');
  await b.sup.start();
  const old = await b.sup.readyRun('0.1.0', 20000);
  await apply(b, old);
  const fresh = await b.sup.readyRun('0.2.0', 30000);
  assert.equal(inspectBoard(b.root).current, 'releases/0.2.0');
  assert.match(inspectBoard(b.root).trial ?? '', /starts=1\n/, 'the trial script counted this start');
  await b.sup.waitFor('commit', () => fresh.log((l) => l.msg === 'update committed after its health window'), 30000);
  const board1 = inspectBoard(b.root);
  assert.equal(board1.trial, null);
  assert.equal(board1.current, 'releases/0.2.0');
  assert.equal(board1.previous, 'releases/0.1.0');
  assert.equal(otaState(b).phase, 'committed');
  const ev = kinds(b);
  assert.ok(ev.includes('exit:{"code":75}'), ev.join(' '));
  assert.ok(!ev.some((e) => e.startsWith('start-limit-hit') || e.startsWith('failed')), ev.join(' '));
  // A committed release's restarts are not counted: kill -9 twice, READY each time, no trial file.
  for (let i = 0; i < 2; i++) {
    const n = b.sup.events.length;
    b.sup.kill('SIGKILL');
    await b.sup.readyRun('0.2.0', 30000, n);
  }
  assert.equal(inspectBoard(b.root).trial, null);
  assert.equal(inspectBoard(b.root).current, 'releases/0.2.0');
});

test('a new release that never sends READY: TimeoutStartSec, restarts counted by ExecStartPre, rolled back', async (t) => {
  const b = await board(t);
  offer(b, '0.2.0', 'hang');
  await b.sup.start();
  const old = await b.sup.readyRun('0.1.0', 20000);
  const n = b.sup.events.length;
  await apply(b, old);
  const back = await b.sup.readyRun('0.1.0', 60000, n);
  const ev = kinds(b);
  assert.equal(ev.filter((e) => e === 'start-timeout:0.2.0').length, 3, ev.join(' '));
  assert.ok(!ev.includes('start-limit-hit'), 'the trial script rolled back before the start limit');
  const board1 = inspectBoard(b.root);
  assert.equal(board1.current, 'releases/0.1.0');
  assert.equal(board1.trial, null);
  assert.ok(board1.currentComplete);
  await b.sup.waitFor('rolled_back', () => back.log((l) => /was rolled back/.test(l.msg)), 15000);
  const s = otaState(b);
  assert.equal(s.phase, 'rolled_back');
  assert.match(s.reason ?? '', /rolled back to 0\.1\.0: trial_starts/);
  // The same manifest is not taken again.
  const again = await ctl(await coapPort(b, back), ['ota', 'check']);
  assert.match(again.out, /was rolled back here/);
});

test('a new release that crashes at every start: the start limit fails the unit, OnFailure= rolls back', async (t) => {
  // max_trial_starts 10: the unit's StartLimitBurst= is reached first, so the backstop acts.
  const b = await board(t, { maxTrialStarts: 10 });
  offer(b, '0.2.0', 'crash');
  await b.sup.start();
  const old = await b.sup.readyRun('0.1.0', 20000);
  const n = b.sup.events.length;
  await apply(b, old);
  const back = await b.sup.readyRun('0.1.0', 60000, n);
  const ev = kinds(b);
  assert.ok(
    ev.some((e) => e.startsWith('start-limit-hit')),
    ev.join(' '),
  );
  assert.ok(ev.includes('on-failure:edge-gateway-rollback.service'), ev.join(' '));
  assert.ok(ev.includes('reset-failed'), ev.join(' '));
  assert.equal(inspectBoard(b.root).current, 'releases/0.1.0');
  await b.sup.waitFor('rolled_back', () => back.log((l) => /was rolled back/.test(l.msg)), 15000);
  assert.match(otaState(b).reason ?? '', /unit_failed/);
});

test('a watchdog miss: no WATCHDOG=1 for WatchdogSec → SIGABRT, restarted; a committed release is not counted', async (t) => {
  const tmp = tempBase('egw-otasup-wd-');
  t.after(() => tmp.cleanup());
  // A test-only preload: SIGUSR2 blocks the event loop for 5 s (> WatchdogSec scaled to 3 s).
  const blocker = join(tmp.dir, 'block.mjs');
  writeFileSync(blocker, `process.on('SIGUSR2', () => { const s = Date.now(); while (Date.now() - s < 5000) {} });\n`);
  const b = await board(t, { env: { NODE_OPTIONS: `--import ${blocker}` } });
  await b.sup.start();
  const run = await b.sup.readyRun('0.1.0', 20000);
  // Pings arrive while healthy.
  await new Promise((r) => setTimeout(r, b.sup.watchdogMs * 1.5));
  assert.ok(!kinds(b).some((e) => e.startsWith('watchdog-timeout')), 'no miss while the loop runs');
  const n = b.sup.events.length;
  run.child.kill('SIGUSR2');
  await b.sup.readyRun('0.1.0', 30000, n);
  const ev = kinds(b).slice(n);
  assert.equal(ev[0], 'watchdog-timeout:0.1.0', ev.join(' '));
  assert.ok(ev.includes('exit:{"signal":"SIGABRT"}'), ev.join(' '));
  assert.ok(ev.includes('restart:watchdog'), ev.join(' '));
  assert.equal(inspectBoard(b.root).trial, null, 'a committed release restarted by the watchdog is not on trial');
  assert.equal(inspectBoard(b.root).current, 'releases/0.1.0');
});

test('ctl ota apply answers with the state in progress when the install takes longer than a CoAP client waits', async (t) => {
  const b = await board(t);
  offer(b, '0.2.0', 'real');
  b.channel.delayMs = 8000; // the bundle's server is slow to answer
  await b.sup.start();
  const old = await b.sup.readyRun('0.1.0', 20000);
  const t0 = performance.now();
  const r = await ctl(await coapPort(b, old), ['ota', 'apply']);
  const took = performance.now() - t0;
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /downloading/);
  assert.ok(took < 9000, `answered after ${took} ms`);
  // The install goes on: the new release starts.
  await b.sup.readyRun('0.2.0', 60000);
});
