import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  activate,
  linkedVersion,
  pointAt,
  readRollback,
  readTrial,
  rollBack,
  writeTrial,
} from '../../../src/ota/releases.js';
import { checkArchive, entryProblem, unpackRelease } from '../../../src/ota/unpack.js';

const TRIAL = 'systemd/edge-gateway-trial';

function layout(t: { after(fn: () => void): void }, versions = ['0.1.0', '0.2.0']) {
  const root = mkdtempSync(join(tmpdir(), 'egw-ab-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const v of versions) mkdirSync(join(root, 'releases', v, 'dist', 'src'), { recursive: true });
  pointAt(root, 'current', versions[0]!);
  return root;
}
const trialScript = (root: string, ...args: string[]) => spawnSync('sh', [TRIAL, root, ...args], { encoding: 'utf8' });

/** Builds a tarball with Python's tarfile, so hostile entries can be made exactly. */
function pyTar(file: string, spec: string): void {
  const res = spawnSync('python3', ['-c', spec, file], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
}
const GOOD = `
import sys, tarfile, io
with tarfile.open(sys.argv[1], 'w:gz') as t:
  def add(name, data):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
  add('package.json', b'{"version":"0.3.0"}')
  add('dist/src/main.js', b'console.log(1)')
  i = tarfile.TarInfo('node_modules/.bin/x'); i.type = tarfile.SYMTYPE; i.linkname = '../x/cli.js'; t.addfile(i)
`;
const hostile = (entry: string) => `
import sys, tarfile, io
with tarfile.open(sys.argv[1], 'w:gz') as t:
  i = tarfile.TarInfo('package.json'); d = b'{"version":"0.3.0"}'; i.size = len(d); t.addfile(i, io.BytesIO(d))
  ${entry}
`;

test('entry rules: absolute paths, .., escaping or absolute links, hard links and devices are refused', () => {
  assert.equal(entryProblem('dist/a.js', 'File', undefined), null);
  assert.equal(entryProblem('node_modules/.bin/x', 'SymbolicLink', '../x/cli.js'), null);
  assert.match(entryProblem('/etc/passwd', 'File', undefined)!, /absolute/);
  assert.match(entryProblem('a/../../x', 'File', undefined)!, /\.\./);
  assert.match(entryProblem('a/link', 'SymbolicLink', '../../etc')!, /leaves/);
  assert.match(entryProblem('link', 'SymbolicLink', '/etc')!, /leaves/);
  assert.match(entryProblem('h', 'Link', 'package.json')!, /hard link/);
  assert.match(entryProblem('dev', 'CharacterDevice', undefined)!, /CharacterDevice/);
  assert.match(entryProblem('x\0y', 'File', undefined)!, /NUL/);
});

test('a good bundle unpacks into releases/<version>; a hostile one is refused whole and leaves nothing', async (t) => {
  const root = layout(t);
  const good = join(root, 'good.tgz');
  pyTar(good, GOOD);
  await unpackRelease(good, join(root, 'releases', '0.3.0'), '0.3.0');
  assert.equal(readFileSync(join(root, 'releases/0.3.0/dist/src/main.js'), 'utf8'), 'console.log(1)');
  assert.equal(readlinkSync(join(root, 'releases/0.3.0/node_modules/.bin/x')), '../x/cli.js');

  for (const [entry, re] of [
    ["i = tarfile.TarInfo('../evil'); i.size = 1; t.addfile(i, io.BytesIO(b'x'))", /\.\./],
    ["i = tarfile.TarInfo('/tmp/evil'); i.size = 1; t.addfile(i, io.BytesIO(b'x'))", /absolute|\.\./],
    ["i = tarfile.TarInfo('esc'); i.type = tarfile.SYMTYPE; i.linkname = '../../../../etc'; t.addfile(i)", /leaves/],
    ["i = tarfile.TarInfo('hard'); i.type = tarfile.LNKTYPE; i.linkname = 'package.json'; t.addfile(i)", /hard link/],
    ["i = tarfile.TarInfo('fifo'); i.type = tarfile.FIFOTYPE; t.addfile(i)", /FIFO/],
  ] as const) {
    const f = join(root, 'bad.tgz');
    pyTar(f, hostile(entry));
    await assert.rejects(unpackRelease(f, join(root, 'releases', '0.4.0'), '0.3.0'), re);
    assert.equal(existsSync(join(root, 'releases', '0.4.0')), false);
    assert.equal(existsSync(join(root, 'releases', '0.4.0.tmp')), false);
    assert.equal(existsSync(join(root, 'evil')), false);
  }
  // Truncated or not a tarball at all; a version that does not match the manifest.
  writeFileSync(join(root, 'junk.tgz'), readFileSync(good).subarray(0, 40));
  await assert.rejects(checkArchive(join(root, 'junk.tgz')), /not a valid tarball|empty/);
  await assert.rejects(unpackRelease(good, join(root, 'releases', '9.9.9'), '9.9.9'), /package.json says 0.3.0/);
  await assert.rejects(checkArchive(good, { maxEntries: 1, maxBytes: 1e9 }), /more than 1 entries/);
});

test('activate writes the trial file then swaps current; the trial script counts starts and rolls back past max', (t) => {
  const root = layout(t);
  activate(root, '0.2.0', 2);
  assert.equal(linkedVersion(root, 'current'), '0.2.0');
  assert.equal(linkedVersion(root, 'previous'), '0.1.0');
  assert.deepEqual(readTrial(root), { version: '0.2.0', previous: '0.1.0', starts: 0, max: 2 });
  assert.equal(trialScript(root).status, 0);
  assert.equal(readTrial(root)!.starts, 1);
  assert.equal(trialScript(root).status, 0);
  assert.equal(linkedVersion(root, 'current'), '0.2.0', 'two starts allowed');
  const third = trialScript(root);
  assert.equal(third.status, 0);
  assert.match(third.stderr, /rolled back to 0\.1\.0/);
  assert.equal(linkedVersion(root, 'current'), '0.1.0');
  assert.equal(readTrial(root), null);
  assert.deepEqual(readRollback(root), { version: '0.2.0', previous: '0.1.0', reason: 'trial_starts', starts: 3 });
});

test('a committed release is never counted: ten restarts without a trial file change nothing', (t) => {
  const root = layout(t);
  for (let i = 0; i < 10; i++) assert.equal(trialScript(root).status, 0);
  assert.equal(linkedVersion(root, 'current'), '0.1.0');
  assert.equal(existsSync(join(root, 'trial')), false);
  assert.equal(existsSync(join(root, 'rollback')), false);
});

test('a kill between the trial file and the swap leaves a stale trial file, which the script removes', (t) => {
  const root = layout(t);
  writeTrial(root, { version: '0.2.0', previous: '0.1.0', starts: 0, max: 3 }); // then killed before the swap
  trialScript(root);
  assert.equal(existsSync(join(root, 'trial')), false);
  assert.equal(linkedVersion(root, 'current'), '0.1.0');
  assert.equal(readRollback(root), null);
});

test("OnFailure backstop (--force) and the gateway's own rollback both return to previous with a reason", (t) => {
  const root = layout(t);
  activate(root, '0.2.0', 5);
  trialScript(root, '--force');
  assert.equal(linkedVersion(root, 'current'), '0.1.0');
  assert.equal(readRollback(root)!.reason, 'unit_failed');

  const root2 = layout(t);
  activate(root2, '0.2.0', 5);
  const m = rollBack(root2, 'health_check');
  assert.equal(m!.reason, 'health_check');
  assert.equal(linkedVersion(root2, 'current'), '0.1.0');
  assert.equal(readTrial(root2), null);
  // A hostile trial file cannot make the script run anything: values are filtered to release names.
  writeFileSync(join(root2, 'trial'), 'version=$(touch pwned)\nprevious=0.1.0\nstarts=x\nmax=y\n');
  assert.equal(trialScript(root2).status, 0);
  assert.equal(existsSync('pwned'), false);
  assert.equal(existsSync(join(root2, 'trial')), false);
});

test('--on-trial (the rollback unit ExecCondition=): 0 only while a release is on trial, and it changes nothing', (t) => {
  const root = layout(t);
  assert.equal(trialScript(root, '--on-trial').status, 1, 'committed: the rollback unit is skipped');
  writeTrial(root, { version: '0.2.0', previous: '0.1.0', starts: 0, max: 3 });
  assert.equal(trialScript(root, '--on-trial').status, 1, 'stale trial file (current not swapped): skipped');
  assert.ok(existsSync(join(root, 'trial')), 'left for ExecStartPre to clean');
  pointAt(root, 'previous', '0.1.0');
  pointAt(root, 'current', '0.2.0');
  assert.equal(trialScript(root, '--on-trial').status, 0, 'on trial: the rollback runs');
  assert.equal(readTrial(root)!.starts, 0, 'not counted');
  assert.equal(linkedVersion(root, 'current'), '0.2.0');
});
