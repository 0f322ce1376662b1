/**
 * OTA figures (docs/ota.md §Measured):
 *   node dist/scripts/bench-ota.js [--app-only] [--rounds 3]
 * 1. Bundle size of a real release: ota-pack of this checkout (package.json, dist/src, production
 *    node_modules with native modules, config, systemd, docs), and of the app alone (dist/src).
 * 2. Resume overhead: the bundle downloaded by the client's own download() from a local HTTP channel,
 *    (a) whole, (b) with the connection cut at 50 % and resumed (Range + If-Range), (c) cut at 50 %
 *    from a server without a validator (no ETag: the client must start over). Bytes served ÷ size.
 * 3. Apply → committed: a board (A/B root, release 0.0.1 = this build) under the shipped unit's
 *    semantics (test/helpers/supervisor.ts, real durations: RestartSec=2s), `ctl ota apply` of the
 *    real bundle, until the new release logs its commit (ota.health_window_s = 10, the minimum).
 *    Split: apply → exit 75 (download, verify, unpack, activate), restart → READY, READY → commit.
 * --app-only packs only dist/src (seconds instead of minutes; node_modules from outside the releases).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { download } from '../src/ota/download.js';
import {
  Channel,
  REPO,
  ctl,
  installBoard,
  keygen,
  makeRelease,
  otaYaml,
  pack,
  tempBase,
  boardUnits,
} from '../test/helpers/ota-rig.js';
import { Supervisor } from '../test/helpers/supervisor.js';

const { values } = parseArgs({
  options: { 'app-only': { type: 'boolean', default: false }, rounds: { type: 'string', default: '3' } },
});
const rounds = Math.max(1, Number(values.rounds));
const MB = (n: number) => (n / 1e6).toFixed(2);
const tmp = tempBase('egw-bench-ota-');
const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  process.stdout.write(`${s}\n`);
};

try {
  const key = keygen(tmp.dir);
  const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

  // 1. Bundle sizes.
  const appDir = join(tmp.dir, 'app');
  mkdirSync(appDir);
  const app = pack(appDir, key.keyFile, makeRelease(join(tmp.dir, 'src-app'), version));
  say(`bundle, app only (package.json + dist/src): ${MB(app.size)} MB`);
  const channelDir = join(tmp.dir, 'channel');
  mkdirSync(channelDir);
  let bundle = app;
  if (values['app-only']) {
    pack(channelDir, key.keyFile, makeRelease(join(tmp.dir, 'src-real'), version));
  } else {
    const t0 = performance.now();
    bundle = pack(channelDir, key.keyFile, null);
    const listed = spawnSync('tar', ['-tzf', bundle.bundle], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const entries = listed.stdout.split('\n').filter(Boolean).length;
    const unpacked = spawnSync('sh', ['-c', `gzip -dc '${bundle.bundle}' | wc -c`], { encoding: 'utf8' });
    say(
      `bundle, real release (ota-pack of this checkout, production node_modules): ${MB(bundle.size)} MB ` +
        `(${entries} entries, ${MB(Number(unpacked.stdout.trim()))} MB as tar), packed in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  const env = JSON.parse(readFileSync(join(channelDir, 'manifest.json'), 'utf8')) as { manifest: string };
  const m = JSON.parse(env.manifest) as { url: string; size: number; sha256: string };
  const channel = new Channel(channelDir);
  await channel.listen();
  const bundleUrl = new URL(m.url, channel.url).toString();

  // 2. Resume overhead.
  const fetchOnce = async (label: string, cut: number | null, etags: boolean) => {
    const ratios: number[] = [];
    const times: number[] = [];
    const fetched: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const dest = join(tmp.dir, `dl-${label}-${r}.tgz`);
      channel.served.length = 0;
      channel.cutAt = cut;
      channel.etags = etags;
      const t0 = performance.now();
      const res = await download({
        url: bundleUrl,
        dest,
        size: m.size,
        sha256: m.sha256,
        readTimeoutMs: 5000,
        backoffMs: 10,
        freeBytes: () => Number.MAX_SAFE_INTEGER,
      });
      times.push(performance.now() - t0);
      ratios.push(channel.bundleBytes / m.size);
      fetched.push(res.fetched / m.size);
      rmSync(dest, { force: true });
    }
    const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    // Served (server side) and fetched (what the client wrote) agree unless bytes were lost in flight.
    return { ratio: avg(ratios), client: avg(fetched), ms: avg(times) };
  };
  const whole = await fetchOnce('whole', null, true);
  const resumed = await fetchOnce('resumed', Math.floor(m.size / 2), true);
  const restarted = await fetchOnce('restarted', Math.floor(m.size / 2), false);
  channel.etags = true;
  say(
    `download of ${MB(m.size)} MB, bytes served ÷ bundle size (mean of ${rounds}): whole ${whole.ratio.toFixed(3)} ` +
      `(${whole.ms.toFixed(0)} ms); cut at 50 % and resumed ${resumed.ratio.toFixed(3)} (${resumed.ms.toFixed(0)} ms); ` +
      `cut at 50 % without a validator (start over) ${restarted.ratio.toFixed(3)} (${restarted.ms.toFixed(0)} ms)`,
  );
  say(
    `resume overhead: ${((resumed.ratio - 1) * 100).toFixed(2)} % re-downloaded vs ${((restarted.ratio - 1) * 100).toFixed(1)} % when starting over`,
  );

  // 3. Apply → committed, under the unit's semantics with real durations.
  const base = join(tmp.dir, 'board');
  mkdirSync(base);
  const root = installBoard(base, '0.0.1');
  const cfg = join(base, 'gateway.yaml');
  writeFileSync(cfg, otaYaml({ data: join(base, 'data'), channelUrl: channel.url, publicKey: key.publicKey }));
  const sup = new Supervisor({
    ...boardUnits(root, cfg, join(base, 'notify.sock')),
    scale: 1,
  });
  try {
    await sup.start();
    const old = await sup.readyRun('0.0.1', 60000);
    const port = (await sup.waitFor('CoAP port', () => old.log((l) => l.msg === 'CoAP listening'), 20000))[
      'port'
    ] as number;
    const t0 = performance.now();
    const n = sup.events.length;
    // The answer comes once the release is activated (download, verify, unpack); a big bundle takes
    // longer than ctl's default 10 s.
    const applied = await ctl(port, ['--timeout', '600000', 'ota', 'apply'], 600000);
    if (applied.code !== 0) say(`(ctl ota apply: ${applied.out.trim()})`);
    const tAnswer = performance.now();
    await sup.waitFor('exit 75', () => sup.events.slice(n).find((e) => e.ev === 'exit'), 600000);
    const tExit = performance.now();
    const fresh = await sup.readyRun(version, 120000, n);
    const tReady = performance.now();
    await sup.waitFor('commit', () => fresh.log((l) => l.msg === 'update committed after its health window'), 120000);
    const tCommit = performance.now();
    const s = (a: number, b: number) => ((b - a) / 1000).toFixed(1);
    say(
      `apply → committed: ${s(t0, tCommit)} s = apply → answer ${s(t0, tAnswer)} s (download, verify, unpack, activate) ` +
        `+ answer → exit 75 ${s(tAnswer, tExit)} s + restart (RestartSec=2s, ExecStartPre) → READY ${s(tExit, tReady)} s ` +
        `+ READY → commit ${s(tReady, tCommit)} s (ota.health_window_s 10)`,
    );
  } finally {
    await sup.stop();
    await channel.close();
  }
} finally {
  tmp.cleanup();
}
