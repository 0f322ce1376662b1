/**
 * Builds, packs, hashes and signs an OTA release (docs/ota.md §Publishing):
 *   node dist/scripts/ota-pack.js --key NAME.key [--key OTHER.key] --out CHANNEL_DIR
 *        [--from DIR] [--rollout 100] [--min-version X] [--allow-downgrade] [--notes TEXT]
 * --from   a release directory to pack (default: this checkout: package.json, dist/src, production
 *          node_modules, config, systemd, docs); it must hold package.json and dist/src/main.js
 * Writes CHANNEL_DIR/edge-gateway-<version>-<platform>-<arch>-node<abi>.tar.gz and
 * CHANNEL_DIR/manifest.json (the signed envelope). Serve CHANNEL_DIR from any static HTTP server and
 * set ota.channel_url to .../manifest.json. The bundle targets the machine it is packed on (native
 * modules are built for it): pack ARM64 releases on an ARM64 machine.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tar from 'tar';
import { checkManifest, currentTarget, type Manifest } from '../src/ota/manifest.js';
import { signManifest } from '../src/ota/sign.js';

const { values } = parseArgs({
  options: {
    key: { type: 'string', multiple: true },
    out: { type: 'string' },
    from: { type: 'string' },
    rollout: { type: 'string', default: '100' },
    'min-version': { type: 'string' },
    'allow-downgrade': { type: 'boolean', default: false },
    notes: { type: 'string' },
  },
});
if (!values.key?.length || !values.out) {
  process.stderr.write(
    'usage: ota-pack --key NAME.key --out CHANNEL_DIR [--from DIR] [--rollout N] [--min-version X] [--allow-downgrade] [--notes T]\n',
  );
  process.exit(2);
}
const keys = values.key.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { privateKey: string; publicKey: string });

let from = values.from ? resolve(values.from) : '';
let staged: string | null = null;
if (!from) {
  // This checkout: what runs, with production dependencies only (as scripts/install.sh installs it).
  const here = resolve(new URL('../..', import.meta.url).pathname);
  staged = mkdtempSync(join(tmpdir(), 'egw-pack-'));
  for (const p of [
    'package.json',
    'package-lock.json',
    'README.md',
    'LICENSE',
    'config',
    'systemd',
    'docs',
    'vendor',
    'node_modules',
  ])
    if (existsSync(join(here, p))) cpSync(join(here, p), join(staged, p), { recursive: true, verbatimSymlinks: true });
  cpSync(join(here, 'dist', 'src'), join(staged, 'dist', 'src'), { recursive: true });
  const prune = spawnSync('npm', ['prune', '--omit=dev', '--no-audit', '--no-fund'], { cwd: staged, stdio: 'inherit' });
  if (prune.status !== 0) {
    process.stderr.write('ota-pack: npm prune failed\n');
    process.exit(1);
  }
  pruneForeignBinaries(staged);
  from = staged;
}
if (!existsSync(join(from, 'package.json')) || !existsSync(join(from, 'dist', 'src', 'main.js'))) {
  process.stderr.write(`ota-pack: ${from} has no package.json or dist/src/main.js\n`);
  process.exit(1);
}
const version = (JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as { version: string }).version;
const target = currentTarget();
mkdirSync(values.out, { recursive: true });
const bundleName = `edge-gateway-${version}-${target.platform}-${target.arch}-node${target.node_abi}.tar.gz`;
const bundle = join(values.out, bundleName);
await tar.c({ gzip: { level: 9 }, file: bundle, cwd: from, portable: true, noMtime: false }, ['.']);
if (staged) rmSync(staged, { recursive: true, force: true });

const bytes = readFileSync(bundle);
const manifest: Manifest = {
  format: 1,
  version,
  url: basename(bundle),
  size: statSync(bundle).size,
  sha256: createHash('sha256').update(bytes).digest('hex'),
  target,
  rollout: Number(values.rollout),
};
if (values['min-version']) manifest.min_version = values['min-version'];
if (values['allow-downgrade']) manifest.allow_downgrade = true;
if (values.notes) manifest.notes = values.notes;
checkManifest(manifest);
const envelope = signManifest(manifest, keys);
writeFileSync(join(values.out, 'manifest.json'), JSON.stringify(envelope, null, 2) + '\n');
process.stdout.write(
  `${bundle}: ${manifest.size} bytes, sha256 ${manifest.sha256}\n${join(values.out, 'manifest.json')}: version ${version}, signed by ${envelope.signatures.map((s) => s.key_id).join(', ')}\n`,
);

/**
 * onnxruntime-node ships prebuilt libraries for every OS and CPU (~290 MB); a bundle runs on one.
 * Build leftovers go too. Keeps only `bin/napi-v*\/<platform>/<arch>` of the machine packing it (the bundle is per target).
 */
function pruneForeignBinaries(dir: string): void {
  // better-sqlite3 compiled from source leaves its build intermediates and the SQLite sources
  // (~30 MB); only build/Release/better_sqlite3.node is loaded.
  const bs = join(dir, 'node_modules', 'better-sqlite3');
  for (const p of ['deps', 'build/Release/obj', 'build/Release/obj.target', 'build/Release/.deps'])
    rmSync(join(bs, p), { recursive: true, force: true });
  rmSync(join(bs, 'build', 'Release', 'sqlite3.a'), { force: true });
  rmSync(join(bs, 'build', 'Release', 'test_extension.node'), { force: true });
  const bin = join(dir, 'node_modules', 'onnxruntime-node', 'bin');
  if (!existsSync(bin)) return;
  for (const napi of readdirSync(bin)) {
    for (const os of readdirSync(join(bin, napi))) {
      for (const arch of readdirSync(join(bin, napi, os))) {
        if (os !== process.platform || arch !== process.arch)
          rmSync(join(bin, napi, os, arch), { recursive: true, force: true });
      }
    }
  }
}
