// scripts/test-setup.sh (run first by `npm test`): which Debian peers it installs and how, checked
// with --dry-run and stand-ins for dpkg-query/id/sudo on PATH — nothing is installed or removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/gateway-process.js';

const SETUP = new URL('../../../scripts/test-setup.sh', import.meta.url).pathname;
const PEERS = readFileSync(new URL('../../../scripts/test-peers.txt', import.meta.url), 'utf8')
  .split('\n')
  .map((l) => l.replace(/#.*/, '').trim())
  .filter(Boolean);

/** A bin dir with a dpkg-query that reports `missing` as not installed, an `id -u` of `uid`, and maybe sudo. */
function fakeTools(dir: string, missing: string[], uid: number, withSudo: boolean): string {
  const write = (name: string, body: string) => {
    const p = join(dir, name);
    spawnSync('sh', ['-c', `cat > '${p}'`], { input: `#!/bin/sh\n${body}\n` });
    chmodSync(p, 0o755);
  };
  write(
    'dpkg-query',
    `for last; do :; done\ncase " ${missing.join(' ')} " in *" $last "*) echo -n "unknown ok not-installed";; *) echo -n "install ok installed";; esac`,
  );
  write('id', `echo ${uid}`);
  write('apt-get', 'echo "apt-get must not run in a dry run" >&2; exit 99');
  if (withSudo) write('sudo', 'echo "sudo must not run in a dry run" >&2; exit 99');
  return dir;
}

function run(args: string[], path: string) {
  return spawnSync('/bin/bash', [SETUP, ...args], { encoding: 'utf8', env: { ...process.env, PATH: path } });
}

test('the peer list is the one the tests need, in one place', () => {
  for (const p of [
    'mosquitto',
    'mosquitto-clients',
    'socat',
    'libcoap3-bin',
    'python3-pymodbus',
    'python3-serial',
    'systemd',
  ])
    assert.ok(PEERS.includes(p), p);
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.match(pkg.scripts['test']!, /^bash scripts\/test-setup\.sh && /, 'npm test sets up its peers first');
  const ci = readFileSync(new URL('../../../.ci/run', import.meta.url), 'utf8');
  assert.match(ci, /^npm test$/m, '.ci/run runs the README command');
  assert.doesNotMatch(ci, /apt-get/, '.ci/run keeps no second list');
});

test('nothing missing: nothing to do', () => {
  const tmp = tempDir('egw-setup-');
  try {
    const r = run(['--dry-run'], `${fakeTools(tmp.dir, [], 1000, true)}:${process.env['PATH']}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /every test peer is installed/);
    assert.doesNotMatch(r.stdout, /would run/);
  } finally {
    tmp.cleanup();
  }
});

test('missing peers, not root: apt-get update and install of exactly those, through sudo', () => {
  const tmp = tempDir('egw-setup-');
  try {
    const r = run(
      ['--dry-run'],
      `${fakeTools(tmp.dir, ['socat', 'python3-pymodbus'], 1000, true)}:${process.env['PATH']}`,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'would run: sudo apt-get update -qq',
      'would run: sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends socat python3-pymodbus',
    ]);
  } finally {
    tmp.cleanup();
  }
});

test('missing peers as root: no sudo', () => {
  const tmp = tempDir('egw-setup-');
  try {
    const r = run(['--dry-run'], `${fakeTools(tmp.dir, ['mosquitto'], 0, false)}:${process.env['PATH']}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^would run: apt-get update -qq$/m);
    assert.match(r.stdout, /^would run: env DEBIAN_FRONTEND=noninteractive apt-get install .* mosquitto$/m);
  } finally {
    tmp.cleanup();
  }
});

test('missing peers, not root and no sudo: the exact command to run as root, exit 1', () => {
  const tmp = tempDir('egw-setup-');
  try {
    // Only the tools the script needs besides the stand-ins (no sudo anywhere on this PATH).
    const bin = fakeTools(tmp.dir, ['socat'], 1000, false);
    for (const t of ['sed', 'grep', 'dirname']) symlinkSync(`/usr/bin/${t}`, join(bin, t));
    const r = run(['--dry-run'], bin);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing test peers: socat; as root run:/);
    assert.match(
      r.stderr,
      /apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends socat/,
    );
  } finally {
    tmp.cleanup();
  }
});

test('not Debian: names the packages and stops', () => {
  const tmp = tempDir('egw-setup-');
  try {
    for (const t of ['sed', 'grep', 'dirname', 'id']) symlinkSync(`/usr/bin/${t}`, join(tmp.dir, t));
    const r = run([], tmp.dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not a Debian system; .*mosquitto .*python3-pymodbus/);
  } finally {
    tmp.cleanup();
  }
});

test('on this machine the real check finds every peer (the dry run changes nothing)', () => {
  const r = run(['--dry-run'], process.env['PATH']!);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /every test peer is installed|would run/);
});
