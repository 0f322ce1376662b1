import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Channel,
  ctl,
  inspectBoard,
  installBoard,
  keygen,
  makeRelease,
  otaYaml,
  pack,
  tempBase,
  boardUnits,
} from '../helpers/ota-rig.js';
import { Supervisor, type Run } from '../helpers/supervisor.js';
import { Cloud, CloudSubscriber, freePort } from './uplink-cloud.js';
import { Publisher, compare } from './uplink-scenarios.js';
import { FAULT_POINTS, type FaultPoint } from '../../src/ota/fault.js';

// kill -9 at every OTA state (docs/ota.md §Testing a kill at every state). The gateway runs under the
// unit's semantics (test/helpers/supervisor.ts: ExecStartPre trial script, READY, Restart=); the update
// is a real release (this build) packed and signed by ota-pack and served over HTTP with Range
// support; QoS 1 publishers keep sending through the gateway's broker to a mosquitto "cloud" the whole
// time. The test-only fault point EDGE_GATEWAY_OTA_FAULT=<state> holds the process at that step; the test then
// kills it with SIGKILL and the supervisor restarts it. After the restart the board must be either the
// old release running committed or the new one running on trial (never a dangling `current`, a half
// release or a half-written state file), an update cut before the switch must resume when applied
// again, and every reading a publisher got a PUBACK for must reach the cloud.

// The cases are split over two files (ota-kill-install, ota-kill-switch) so each stays within the
// runner's per-file timeout.

type Outcome = 'old' | 'new-trial' | 'new-committed' | 'old-rolled-back';
export interface Case {
  point: FaultPoint;
  /** Which release reaches the point: the old one installing, or the new one on trial. */
  in: 'old' | 'new';
  expect: Outcome;
}
export const CASES: Case[] = [
  { point: 'checking', in: 'old', expect: 'old' },
  { point: 'downloading', in: 'old', expect: 'old' },
  { point: 'downloaded', in: 'old', expect: 'old' },
  { point: 'unpacking', in: 'old', expect: 'old' },
  { point: 'staged', in: 'old', expect: 'old' },
  { point: 'activate:trial-written', in: 'old', expect: 'old' },
  { point: 'activate:previous-linked', in: 'old', expect: 'old' },
  { point: 'activate:current-linked', in: 'old', expect: 'new-trial' },
  { point: 'trial', in: 'new', expect: 'new-trial' },
  { point: 'committing', in: 'new', expect: 'new-committed' },
  { point: 'rollback:marker-written', in: 'new', expect: 'old-rolled-back' },
  { point: 'rollback:current-linked', in: 'new', expect: 'old-rolled-back' },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function coapPort(sup: Supervisor, run: Run): Promise<number> {
  const line = await sup.waitFor('CoAP listening', () => run.log((l) => l.msg === 'CoAP listening'), 20000);
  return line['port'] as number;
}

function state(data: string): { phase: string; reason: string | null; version: string | null } {
  // Must parse when present: the state file is never half-written. Absent: nothing was ever written (idle).
  if (!existsSync(join(data, 'ota-state.json'))) return { phase: 'idle', reason: null, version: null };
  return JSON.parse(readFileSync(join(data, 'ota-state.json'), 'utf8')) as {
    phase: string;
    reason: string | null;
    version: string | null;
  };
}

/** The invariants after any restart: `current` (and `previous`) name whole releases; no trial file that lies. */
function assertConsistent(root: string, running: string): void {
  const b = inspectBoard(root);
  assert.equal(b.current, `releases/${running}`, 'the running release is the one `current` names');
  assert.ok(b.currentComplete, `releases/${running} is a whole release`);
  if (b.previous) assert.ok(existsSync(join(root, b.previous, 'dist', 'src', 'main.js')), 'previous is whole');
  if (b.trial) assert.match(b.trial, new RegExp(`^version=${running.replace(/\./g, '\\.')}\n`), 'trial names current');
}

/** Every fault point the client has is in the matrix. */
export function allPointsCovered(): void {
  assert.deepEqual(CASES.map((c) => c.point).sort(), [...FAULT_POINTS].sort());
}

/** Registers the shared rig (cloud, key, channel with the 0.2.0 bundle) and one test per case. */
export function killMatrix(cases: readonly Case[]): void {
  let cloud: Cloud;
  let sub: CloudSubscriber;
  let shared: { dir: string; cleanup(): void };
  let channel: Channel;
  let publicKey = '';
  let bundleSize = 0;

  before(async () => {
    cloud = await Cloud.create();
    sub = await CloudSubscriber.connect(cloud.url);
    shared = tempBase('egw-otakill-');
    const key = keygen(shared.dir);
    publicKey = key.publicKey;
    mkdirSync(join(shared.dir, 'channel'));
    channel = new Channel(join(shared.dir, 'channel'));
    await channel.listen();
    bundleSize = pack(channel.dir, key.keyFile, makeRelease(join(shared.dir, 'src-0.2.0'), '0.2.0')).size;
  });

  after(async () => {
    await channel?.close();
    await sub?.close();
    await cloud?.close();
    shared?.cleanup();
  });

  for (const c of cases) {
    test(`kill -9 at ${c.point}: restarts into ${c.expect}; nothing acknowledged lost`, async (t) => {
      const tmp = tempBase('egw-otakill-case-');
      t.after(() => tmp.cleanup());
      const root = installBoard(tmp.dir);
      const data = join(tmp.dir, 'data');
      const brokerPort = await freePort();
      const cfg = join(tmp.dir, 'gateway.yaml');
      writeFileSync(
        cfg,
        otaYaml({
          data,
          channelUrl: channel.url,
          publicKey,
          extra: [
            `broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }`,
            `uplink: { url: ${JSON.stringify(cloud.url)}, reconnect: { min_ms: 100, max_ms: 1000, jitter: 0.5 } }`,
          ].join('\n'),
        }),
      );
      const sup = new Supervisor({
        ...boardUnits(root, cfg, join(tmp.dir, 'notify.sock')),
        // TimeoutStartSec=60s → 15 s (a loaded machine), RestartSec=2s → 0.5 s.
        scale: 0.25,
        // The unit sets NODE_ENV=production, which turns fault points off; this test turns them on.
        env: { NODE_ENV: 'test', EDGE_GATEWAY_OTA_FAULT: c.point },
      });
      t.after(() => sup.stop());
      await cloud.start();
      await sup.start();
      const old = await sup.readyRun('0.1.0', 30000);
      const pubs = [0, 1].map((k) => new Publisher(`mqtt://127.0.0.1:${brokerPort}`, `${c.point}-${k}`, 16));
      t.after(() => Promise.all(pubs.map((p) => p.close())));
      const running = Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, 120000, 200)));
      const acked = () => pubs.reduce((a, p) => a + p.acked.size, 0);
      await sup.waitFor('first PUBACKs', () => acked() >= 50, 20000);
      channel.served.length = 0;

      // The update; for the rollback points the new release must fail its window: the cloud goes away
      // after the switch, so the uplink it had before never comes back (reason uplink_not_reconnected).
      void ctl(await coapPort(sup, old), ['ota', 'apply'], 8000);
      if (c.point.startsWith('rollback:')) {
        await sup.waitFor(
          'exit 75',
          () => sup.events.some((e) => e.ev === 'exit' && e.detail === '{"code":75}'),
          30000,
        );
        await cloud.stop();
      }
      const held = await sup.waitFor(
        `OTA fault point reached ${c.point}`,
        () => sup.runs.find((r) => r.stderr.includes(`OTA fault point reached ${c.point}`)),
        60000,
      );
      assert.equal(held.release, c.in === 'old' ? '0.1.0' : '0.2.0');
      const ackedAtKill = acked();
      delete sup.env['EDGE_GATEWAY_OTA_FAULT'];
      const n = sup.events.length;
      sup.kill('SIGKILL');
      await cloud.start();

      // The restart (ExecStartPre, then whichever release `current` names).
      const expectVersion = c.expect === 'old' || c.expect === 'old-rolled-back' ? '0.1.0' : '0.2.0';
      const after1 = await sup.readyRun(expectVersion, 60000, n);
      assertConsistent(root, expectVersion);
      const s = state(data);
      t.diagnostic(`${c.point}: after the restart ${expectVersion} runs, state ${s.phase} (${s.reason ?? ''})`);
      switch (c.expect) {
        case 'old': {
          assert.equal(inspectBoard(root).trial, null, 'no trial file left for the old release');
          assert.ok(['idle', 'failed'].includes(s.phase), s.phase);
          if (c.point !== 'checking') assert.match(s.reason ?? '', /interrupted while/);
          // Resumes: applied again, the update goes through to the new release on trial.
          const m = sup.events.length;
          const again = await ctl(await coapPort(sup, after1), ['ota', 'apply'], 20000);
          assert.equal(again.code, 0, again.out);
          const fresh = await sup.readyRun('0.2.0', 60000, m);
          assertConsistent(root, '0.2.0');
          assert.match(inspectBoard(root).trial ?? '', /^version=0\.2\.0\n/);
          if (c.point === 'downloading') {
            // The cut download resumed: Range + If-Range, 206, only the missing bytes sent again.
            const resumed = channel.served.find((r) => r.url.endsWith('.tar.gz') && r.range !== null);
            assert.ok(resumed, JSON.stringify(channel.served));
            assert.match(resumed.range!, /^bytes=\d+-$/);
            assert.ok(resumed.ifRange, 'If-Range guards the resume');
            assert.equal(resumed.status, 206);
            // Only the missing part is fetched again: the cut came after half of the bytes were written.
            const offset = Number(/^bytes=(\d+)-$/.exec(resumed.range!)![1]);
            assert.ok(offset >= bundleSize / 2, `resumed at ${offset} of ${bundleSize}`);
            assert.equal(resumed.bytes, bundleSize - offset);
            t.diagnostic(`resume: at byte ${offset} of ${bundleSize}, ${resumed.bytes} bytes fetched again`);
          }
          if (c.point === 'downloaded' || c.point === 'unpacking' || c.point === 'staged') {
            assert.equal(
              channel.served.filter((r) => r.url.endsWith('.tar.gz')).length,
              c.point === 'staged' ? 2 : 1,
              'a bundle verified before the kill is not fetched again (it is removed once unpacked)',
            );
          }
          assert.ok(!existsSync(join(root, 'releases', '0.2.0.tmp')), 'no leftover unpack directory');
          await sup.waitFor(
            'commit',
            () => fresh.log((l) => l.msg === 'update committed after its health window'),
            40000,
          );
          break;
        }
        case 'new-trial': {
          assert.match(inspectBoard(root).trial ?? '', /^version=0\.2\.0\n/);
          assert.equal(s.phase, 'trial');
          await sup.waitFor(
            'commit',
            () => after1.log((l) => l.msg === 'update committed after its health window'),
            40000,
          );
          assert.equal(state(data).phase, 'committed');
          assert.equal(inspectBoard(root).trial, null);
          break;
        }
        case 'new-committed': {
          assert.equal(inspectBoard(root).trial, null);
          assert.equal(s.phase, 'committed');
          break;
        }
        case 'old-rolled-back': {
          await sup.waitFor('rolled back', () => after1.log((l) => /was rolled back/.test(l.msg)), 20000);
          const r = state(data);
          assert.equal(r.phase, 'rolled_back');
          assert.match(r.reason ?? '', /uplink_not_reconnected/);
          assert.equal(inspectBoard(root).trial, null);
          assert.equal(inspectBoard(root).rollback, null, 'the marker was read and removed');
          break;
        }
      }
      assertConsistent(root, sup.current!.release);

      // Nothing acknowledged was lost: every PUBACKed reading (before, during and after the kill) reaches the cloud.
      await sleep(500);
      for (const p of pubs) p.stop();
      await running;
      await sup.waitFor('delivery', () => compare(pubs, sub).missing === 0 || undefined, 30000).catch(() => undefined);
      const report = compare(pubs, sub);
      t.diagnostic(
        `${c.point}: ${report.acked} acknowledged (${ackedAtKill} before the kill), ${report.missing} missing`,
      );
      assert.ok(report.acked > ackedAtKill);
      assert.equal(report.missing, 0);
    });
  }
}
