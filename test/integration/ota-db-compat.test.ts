import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
import { pointAt } from '../../src/ota/releases.js';
import { Cloud, CloudSubscriber, freePort } from './uplink-cloud.js';
import { Publisher, compare } from './uplink-scenarios.js';

// Data across releases (docs/ota.md §Data across releases) end to end: the new release's outbox has a
// migration step the old one does not know; it runs on trial, migrates the real state database and
// acknowledges readings; it is then killed until the trial script rolls back (max_trial_starts 3), and
// the old release starts on the migrated data dir. An additive step: it opens, and every reading
// acknowledged by either release reaches the cloud. A step marked `breaks`: it refuses with
// EGW_STORE_NEWER, writes nothing, and stays down at the start limit (the rollback unit is skipped,
// nothing is on trial any more) with every acknowledged reading still in the outbox.

/** The new release: this build with one more outbox migration step (patched into its compiled JS). */
function newRelease(dir: string, step: string | { sql: string; breaks: true }): string {
  makeRelease(dir, '0.2.0');
  const f = join(dir, 'dist', 'src', 'queue', 'outbox-store.js');
  const js = readFileSync(f, 'utf8');
  const start = js.indexOf('const MIGRATIONS = [');
  const end = js.indexOf('\n];', start) + 3;
  assert.ok(start >= 0 && end > start, 'found the outbox migrations');
  writeFileSync(f, `${js.slice(0, end)}\nMIGRATIONS.push(${JSON.stringify(step)});${js.slice(end)}`);
  return dir;
}

async function scenario(
  t: { after(fn: () => void | Promise<void>): void; diagnostic(s: string): void },
  step: string | { sql: string; breaks: true },
) {
  const tmp = tempBase('egw-otadb-');
  t.after(() => tmp.cleanup());
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => {
    await sub.close();
    await cloud.close();
  });
  const root = installBoard(tmp.dir);
  const key = keygen(tmp.dir);
  mkdirSync(join(tmp.dir, 'channel'));
  const channel = new Channel(join(tmp.dir, 'channel'));
  await channel.listen();
  t.after(() => channel.close());
  pack(channel.dir, key.keyFile, newRelease(join(tmp.dir, 'src-0.2.0'), step));
  const data = join(tmp.dir, 'data');
  const brokerPort = await freePort();
  const cfg = join(tmp.dir, 'gateway.yaml');
  writeFileSync(
    cfg,
    otaYaml({
      data,
      channelUrl: channel.url,
      publicKey: key.publicKey,
      extra: [
        `broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }`,
        `uplink: { url: ${JSON.stringify(cloud.url)}, reconnect: { min_ms: 100, max_ms: 1000, jitter: 0.5 } }`,
      ].join('\n'),
    }),
  );
  const supOpts = {
    ...boardUnits(root, cfg, join(tmp.dir, 'notify.sock')),
    scale: 0.25,
  };
  const sup = new Supervisor(supOpts);
  t.after(() => sup.stop());
  await sup.start();
  const old = await sup.readyRun('0.1.0', 30000);
  const pubs = [0, 1].map((k) => new Publisher(`mqtt://127.0.0.1:${brokerPort}`, `dbcompat-${k}`, 16));
  t.after(async () => {
    await Promise.all(pubs.map((p) => p.close()));
  });
  const running = Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, 120000, 200)));
  const acked = () => pubs.reduce((a, p) => a + p.acked.size, 0);
  await sup.waitFor('PUBACKs from the old release', () => acked() >= 50, 20000);
  const port = (old.log((l) => l.msg === 'CoAP listening')?.['port'] as number | undefined) ?? 0;
  const applied = await ctl(port, ['ota', 'apply']);
  assert.equal(applied.code, 0, applied.out);
  // The new release on trial migrates and acknowledges readings; three kills, then the fourth start
  // is rolled back by the trial script (max_trial_starts 3).
  let fresh: Run | undefined;
  for (let i = 0; i < 3; i++) {
    const n = sup.events.length;
    fresh = await sup.readyRun('0.2.0', 30000, n);
    const before = acked();
    await sup.waitFor('PUBACKs from the new release', () => acked() >= before + 30, 20000);
    sup.kill('SIGKILL');
  }
  assert.ok(fresh);
  const db = new Database(join(data, 'gateway.db'), { readonly: true });
  const steps = db.prepare("SELECT version, breaks FROM schema_migrations WHERE module = 'outbox'").all();
  db.close();
  assert.deepEqual(steps, [
    { version: 1, breaks: 0 },
    { version: 2, breaks: typeof step === 'string' ? 0 : 1 },
  ]);
  return { sup, supOpts, dir: tmp.dir, data, root, pubs, running, acked, sub, cloud };
}

test('an additive migration of the new release: the rolled-back release opens the data dir; nothing acknowledged lost', async (t) => {
  const s = await scenario(t, 'ALTER TABLE outbox ADD COLUMN trace TEXT');
  const back = await s.sup.readyRun(
    '0.1.0',
    60000,
    s.sup.events.findLastIndex((e) => e.ev === 'exit'),
  );
  await s.sup.waitFor('rolled_back', () => back.log((l) => /was rolled back/.test(l.msg)), 20000);
  assert.equal(inspectBoard(s.root).current, 'releases/0.1.0');
  const before = s.acked();
  await s.sup.waitFor('PUBACKs from the old release again', () => s.acked() >= before + 30, 20000);
  for (const p of s.pubs) p.stop();
  await s.running;
  await s.sup
    .waitFor('delivery', () => compare(s.pubs, s.sub).missing === 0 || undefined, 30000)
    .catch(() => undefined);
  const r = compare(s.pubs, s.sub);
  t.diagnostic(`${r.acked} acknowledged across both releases, ${r.missing} missing`);
  assert.equal(r.missing, 0);
});

test('a migration marked breaks: the rolled-back release refuses with EGW_STORE_NEWER and writes nothing', async (t) => {
  const s = await scenario(t, { sql: 'CREATE TABLE outbox_v3 (seq INTEGER PRIMARY KEY)', breaks: true });
  // Nothing is delivered from here on: the readings acknowledged so far must all still be in the outbox.
  await s.cloud.stop();
  for (const p of s.pubs) p.stop();
  await s.running;
  await s.sup.waitFor('the unit failed', () => s.sup.events.some((e) => e.ev === 'condition-skip'), 60000);
  // Refused before the store is used (main prints the EGW_STORE_NEWER message on stderr, logs it as a coded fatal and exits with the start-failure status).
  const refused = s.sup.runs.filter(
    (r) => r.release === '0.1.0' && r.stderr.some((l) => /migrated by a newer release \(outbox#2/.test(l)),
  );
  assert.ok(refused.length >= 1, JSON.stringify(s.sup.runs.map((r) => [r.release, r.stderr.slice(0, 2)])));
  t.diagnostic(refused[0]!.stderr.find((l) => /newer release/.test(l))!);
  const ev = s.sup.events.map((e) => e.ev);
  assert.ok(ev.includes('start-limit-hit'), ev.join(' '));
  assert.equal(ev.at(-1), 'condition-skip', 'the rollback unit is skipped: no trial, the gateway stays down');
  assert.equal(s.sup.current!.ended !== null, true);
  // The documented remedy: run the release that migrated the data again. It delivers every reading
  // either release acknowledged — the refusal lost nothing.
  await s.sup.stop();
  pointAt(s.root, 'current', '0.2.0');
  await s.cloud.start();
  const again = new Supervisor({ ...s.supOpts, socket: join(s.dir, 'notify2.sock') });
  t.after(() => again.stop());
  await again.start();
  await again.readyRun('0.2.0', 30000);
  await again
    .waitFor('delivery', () => compare(s.pubs, s.sub).missing === 0 || undefined, 30000)
    .catch(() => undefined);
  const r = compare(s.pubs, s.sub);
  t.diagnostic(`${r.acked} acknowledged, ${r.missing} missing after running 0.2.0 again`);
  assert.equal(r.missing, 0);
});
