import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { tempDir, type LogLine } from '../helpers/gateway-process.js';
import { readServiceSection, unitEnvironment } from '../helpers/systemd-unit.js';
import { makePki } from './tls-certs.js';

const INSTALL = new URL('../../../scripts/install.sh', import.meta.url).pathname;
const REPO = new URL('../../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
const example = (name: string) => join(REPO, 'config/examples', name);

function install(root: string, ...args: string[]) {
  return spawnSync('bash', [INSTALL, '--root', root, '--no-start', ...args], { encoding: 'utf8', timeout: 180000 });
}

/** Every file below `dir` (relative paths), node_modules left out. */
function files(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.name === 'node_modules'
      ? []
      : e.isDirectory()
        ? files(join(dir, e.name), `${prefix}${e.name}/`)
        : [`${prefix}${e.name}`],
  );
}

test('install.sh stages a runnable release, points current at it and never overwrites the site config', () => {
  const tmp = tempDir('egw-install-');
  // A stray backup in the checkout (config migrations leave *.bak beside the file) must stay behind.
  const stray = join(REPO, `config/stray-${process.pid}.yaml.v0.bak`);
  writeFileSync(stray, 'version: 0\n');
  try {
    const first = install(tmp.dir);
    assert.equal(first.status, 0, first.stderr);
    const opt = join(tmp.dir, 'opt/edge-gateway');
    assert.equal(readlinkSync(join(opt, 'current')), `releases/${pkg.version}`);
    const main = join(opt, 'current/dist/src/main.js');
    const v = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
    assert.equal(v.stdout.trim(), pkg.version);
    assert.ok(!existsSync(join(opt, 'current/node_modules/typescript')), 'dev dependencies are pruned');
    assert.ok(existsSync(join(REPO, 'node_modules/typescript')), 'the checkout keeps its dev dependencies');
    const shipped = files(join(opt, 'current'));
    assert.deepEqual(readdirSync(join(opt, 'current/dist')), ['src'], 'no dist/test, dist/scripts');
    assert.deepEqual(
      shipped.filter((f) => f.endsWith('.bak')),
      [],
      'no *.bak in the release',
    );
    // onnxruntime-node's libraries for other OSes and CPUs are not shipped (they were ~240 MB).
    const ortBin = join(opt, 'current/node_modules/onnxruntime-node/bin');
    const ort = readdirSync(ortBin).flatMap((napi) =>
      readdirSync(join(ortBin, napi)).flatMap((os) => readdirSync(join(ortBin, napi, os)).map((a) => `${os}/${a}`)),
    );
    assert.deepEqual(ort, [`linux/${process.arch}`], 'only this platform of onnxruntime-node');
    assert.ok(!existsSync(join(opt, 'current/node_modules/better-sqlite3/deps')), 'no SQLite sources');
    assert.ok(existsSync(join(opt, 'current/node_modules/better-sqlite3/build/Release/better_sqlite3.node')));
    assert.ok(
      existsSync(join(REPO, `node_modules/onnxruntime-node/bin/napi-v6/win32/x64`)),
      'the checkout is untouched',
    );
    for (const f of [
      'LICENSE',
      'CHANGELOG.md',
      'README.md',
      'config/gateway.schema.json',
      'systemd/edge-gateway.service',
    ])
      assert.ok(shipped.includes(f), `${f} is shipped`);
    assert.ok(existsSync(join(tmp.dir, 'etc/systemd/system/edge-gateway.service')));
    // OTA: the rollback unit and the trial script at its fixed path, outside every release.
    assert.ok(existsSync(join(tmp.dir, 'etc/systemd/system/edge-gateway-rollback.service')));
    assert.equal(statSync(join(tmp.dir, 'usr/local/lib/edge-gateway/edge-gateway-trial')).mode & 0o777, 0o755);
    assert.equal(
      readlinkSync(join(tmp.dir, 'usr/local/bin/edge-gateway')),
      '/opt/edge-gateway/current/dist/src/main.js',
    );
    assert.ok(statSync(main).mode & 0o100, 'the CLI is executable');
    for (const t of ['read-token', 'admin-token']) {
      const st = statSync(join(tmp.dir, 'etc/edge-gateway', t));
      assert.equal(st.mode & 0o077, 0o040, `${t} is not readable by others`);
      assert.ok(readFileSync(join(tmp.dir, 'etc/edge-gateway', t), 'utf8').trim().length >= 32);
    }
    const cfg = join(tmp.dir, 'etc/edge-gateway/gateway.yaml');
    // The editor modeline points at the installed schema.
    assert.match(
      readFileSync(cfg, 'utf8'),
      /^# yaml-language-server: \$schema=\/opt\/edge-gateway\/current\/config\/gateway\.schema\.json$/m,
    );
    // The secrets file: root-only, naming what the config reads with !env.
    const secrets = join(tmp.dir, 'etc/edge-gateway/secrets.env');
    assert.equal(statSync(secrets).mode & 0o777, 0o600);
    assert.match(readFileSync(secrets, 'utf8'), /^# EGW_UPLINK_PASSWORD=$/m);
    // The validation errors are shown, not hidden (here: the secrets are not provisioned yet).
    assert.match(first.stderr, /environment variable EGW_UPLINK_PASSWORD is not set/);

    writeFileSync(cfg, '# edited on site\nversion: 1\n');
    writeFileSync(secrets, 'EGW_KEEP=1\n');
    const second = install(tmp.dir);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(cfg, 'utf8'), '# edited on site\nversion: 1\n', 'the site config survives a reinstall');
    assert.equal(readFileSync(secrets, 'utf8'), 'EGW_KEEP=1\n', 'and so do the secrets');
  } finally {
    rmSync(stray, { force: true });
    tmp.cleanup();
  }
});

test('install.sh shows every error of an invalid config and installs nothing', () => {
  const tmp = tempDir('egw-install-');
  try {
    const bad = tmp.file('bad.yaml', 'version: 1\ngateway:\n  idd: typo\nmetrics:\n  port: 99999\n');
    const r = install(join(tmp.dir, 'root'), '--config', bad);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /gateway\.idd: unknown key "idd".*\(line 3\)/);
    assert.match(r.stderr, /metrics\.port: must be <= 65535 \(line 5\)/);
    assert.match(r.stderr, /not valid; fix it/);
    assert.equal(existsSync(join(tmp.dir, 'root/opt/edge-gateway')), false, 'no release was installed');
  } finally {
    tmp.cleanup();
  }
});

/** A gateway started from a staged image the way its unit would start it (see runAsUnit). */
interface UnitRun {
  logs: LogLine[];
  stderr: string[];
  waitForLog(pred: (l: LogLine) => boolean, ms?: number): Promise<LogLine>;
  stop(): Promise<number | string>;
  exit: Promise<[number | null, string | null]>;
}

const NOBODY = 65534;

/** Starting "as the unit" needs root (chroot, chown, setpriv) and mount/network namespaces. */
const NAMESPACES_SKIP = (() => {
  if (process.getuid?.() !== 0) return 'needs root (chroot, setpriv) to start the installed release as the unit';
  const r = spawnSync('unshare', ['--mount', '--net', 'true'], { timeout: 10000 });
  return r.status === 0 ? false : 'needs mount and network namespaces (unshare --mount --net)';
})();

/**
 * Starts the installed release as systemd would from the installed unit: ExecStart=,
 * WorkingDirectory=, Environment=/EnvironmentFile= (read as root, as systemd does), as an
 * unprivileged user with no new privileges, with the staged image as `/` (chroot, with the host's
 * /usr, /dev and a fresh /proc) in private mount and network namespaces: the example configs'
 * absolute paths and fixed ports (1883, 5683, 9464) are the real ones, and clash with nothing.
 */
function runAsUnit(root: string): UnitRun {
  const unit = readServiceSection(join(root, 'etc/systemd/system/edge-gateway.service'));
  const execStart = unit.get('ExecStart')!.at(-1)!.split(/\s+/);
  const workDir = unit.get('WorkingDirectory')!.at(-1)!;
  const env = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin',
    HOME: '/var/lib/edge-gateway',
    ...unitEnvironment(unit, root),
  };
  for (const d of ['dev', 'proc', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  for (const l of ['bin', 'lib', 'lib64', 'sbin']) {
    try {
      symlinkSync(`usr/${l}`, join(root, l)); // merged /usr, as on Debian 12
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  // StateDirectory=edge-gateway, StateDirectoryMode=0750, owned by User=.
  const state = join(root, 'var/lib/edge-gateway');
  mkdirSync(state, { recursive: true });
  chownSync(state, NOBODY, NOBODY);
  chmodSync(state, 0o750);
  const script = `set -e
R="$1"; shift
ip link set lo up
mount --rbind /usr "$R/usr"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
exec chroot "$R" setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups --no-new-privs \\
  sh -c 'cd "$0" && exec "$@"' ${workDir} "$@"`;
  const child = spawn('unshare', ['--mount', '--net', 'sh', '-c', script, 'sh', root, ...execStart], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let l: LogLine;
    try {
      l = JSON.parse(line) as LogLine;
    } catch {
      l = { level: 'raw', msg: line };
    }
    logs.push(l);
    for (const w of [...waiters]) {
      if (!w.pred(l)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(l);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exit = once(child, 'exit') as Promise<[number | null, string | null]>;
  return {
    logs,
    stderr,
    exit,
    waitForLog(pred, ms = 20000) {
      const hit = logs.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such log line; stderr: ${stderr.join('\n')}`)), ms);
        void exit.then(([c]) => {
          clearTimeout(timer);
          reject(new Error(`exited ${c}; stderr: ${stderr.join('\n')}; logs: ${JSON.stringify(logs.slice(-5))}`));
        });
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
      const [code, sig] = await exit;
      clearTimeout(timer);
      return code ?? sig!;
    },
  };
}

/** As install.sh does on a board: the config, tokens and certificates readable by the service's group. */
function provision(root: string, files: Record<string, string>): void {
  const etc = join(root, 'etc/edge-gateway');
  for (const [dest, src] of Object.entries(files)) {
    mkdirSync(join(etc, dest, '..'), { recursive: true });
    copyFileSync(src, join(etc, dest));
  }
  const walk = (dir: string): void => {
    chownSync(dir, 0, NOBODY);
    chmodSync(dir, 0o750);
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== 'secrets.env') {
        chownSync(p, 0, NOBODY);
        chmodSync(p, 0o640);
      }
    }
  };
  walk(etc);
}

test(
  'the Raspberry Pi example, installed, starts under the unit with its password from secrets.env',
  { skip: NAMESPACES_SKIP },
  async () => {
    const tmp = tempDir('egw-install-pi-');
    const pki = makePki();
    try {
      const root = join(tmp.dir, 'root');
      const r = install(root, '--config', example('raspberry-pi.yaml'));
      assert.equal(r.status, 0, r.stderr);
      provision(root, { 'cloud-ca.pem': pki.ca });
      const secrets = join(root, 'etc/edge-gateway/secrets.env');

      // Without the secret the gateway refuses to start and says which one is missing.
      const without = runAsUnit(root);
      const [code] = await without.exit;
      assert.equal(code, 1);
      assert.match(without.stderr.join('\n'), /environment variable EGW_UPLINK_PASSWORD is not set/);

      // As the README says: one NAME=value line in the root-only file the unit loads.
      appendFileSync(secrets, 'EGW_UPLINK_PASSWORD="s3cret with spaces"\n');
      assert.equal(statSync(secrets).mode & 0o777, 0o600);
      const gw = runAsUnit(root);
      try {
        const ready = await gw.waitForLog((l) => l.msg.startsWith('gateway ready'));
        assert.match(ready.msg, /broker listening/);
        assert.ok(gw.logs.some((l) => l.msg === 'MQTT broker listening' && l['port'] === 1883));
        assert.ok(!JSON.stringify(gw.logs).includes('s3cret'), 'the password is never logged');
      } finally {
        assert.equal(await gw.stop(), 0);
      }
      assert.ok(existsSync(join(root, 'var/lib/edge-gateway/gateway.db')), 'state in the StateDirectory');
    } finally {
      pki.cleanup();
      tmp.cleanup();
    }
  },
);

test(
  'the Jetson example, installed, starts under the unit once its certificates are provisioned',
  { skip: NAMESPACES_SKIP },
  async () => {
    const tmp = tempDir('egw-install-jetson-');
    const pki = makePki();
    try {
      const root = join(tmp.dir, 'root');
      const r = install(root, '--config', example('jetson.yaml'));
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /missing file \/etc\/edge-gateway\/tls\/server\.pem/, 'install names what to provision');
      provision(root, {
        'tls/server.pem': pki.serverCert,
        'tls/server.key': pki.serverKey,
        'tls/devices-ca.pem': pki.ca,
        'tls/cloud-ca.pem': pki.ca,
        'tls/gateway.pem': pki.clientCert,
        'tls/gateway.key': pki.clientKey,
      });
      const gw = runAsUnit(root);
      try {
        await gw.waitForLog((l) => l.msg.startsWith('gateway ready'));
        assert.ok(gw.logs.some((l) => l.msg === 'MQTT TLS listener listening' && l['port'] === 8883));
      } finally {
        assert.equal(await gw.stop(), 0);
      }
    } finally {
      pki.cleanup();
      tmp.cleanup();
    }
  },
);

test('install.sh reads secrets.env as data: no expansion, no execution, odd lines skipped', () => {
  const tmp = tempDir('egw-install-');
  try {
    const root = join(tmp.dir, 'root');
    const etc = join(root, 'etc/edge-gateway');
    mkdirSync(etc, { recursive: true });
    const marker = join(tmp.dir, 'executed');
    writeFileSync(
      join(etc, 'secrets.env'),
      [
        '# comment',
        '; also a comment',
        'not an assignment',
        '1BAD=x',
        'BAD NAME=x',
        `EGW_UPLINK_PASSWORD=$(touch ${marker})\`touch ${marker}\`;touch ${marker}`,
        '',
      ].join('\n'),
    );
    const r = install(root, '--config', example('raspberry-pi.yaml'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(existsSync(marker), false, 'nothing in secrets.env ran');
    assert.doesNotMatch(r.stderr, /EGW_UPLINK_PASSWORD is not set/, 'the password line was read');
  } finally {
    tmp.cleanup();
  }
});
