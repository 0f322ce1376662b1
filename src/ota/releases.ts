import { existsSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fsyncDir, writeFileDurable } from './durable.js';
import { faultPoint } from './fault.js';

/**
 * The A/B release layout (scripts/install.sh makes it; docs/ota.md §Layout):
 *   ROOT/releases/<version>/   one directory per release
 *   ROOT/current -> releases/<version>    what systemd starts
 *   ROOT/previous -> releases/<version>   what a rollback returns to
 *   ROOT/trial      present while a new release is on trial (read by systemd/edge-gateway-trial)
 *   ROOT/rollback   left by the trial script when it rolled back (read, then removed, by the gateway)
 * Every change is a new symlink renamed over the old one plus an fsync of ROOT, so after a power
 * cut `current` points at a whole release, old or new, never at nothing.
 */

export interface TrialFile {
  version: string;
  previous: string;
  /** Starts of the new release counted by the ExecStartPre script. */
  starts: number;
  /** Past this many starts the script swaps back to `previous`. */
  max: number;
}

export interface RollbackMarker {
  version: string;
  previous: string;
  reason: string;
  starts: number;
}

const VERSION_RE = /^[0-9A-Za-z.+-]{1,64}$/;

export const releaseDir = (root: string, version: string) => join(root, 'releases', version);

/** The version a link points at (`releases/<v>`), or null when there is none. */
export function linkedVersion(root: string, name: 'current' | 'previous'): string | null {
  try {
    return basename(readlinkSync(join(root, name)));
  } catch {
    return null;
  }
}

/** Points ROOT/name at releases/<version>, atomically and durably. */
export function pointAt(root: string, name: 'current' | 'previous', version: string): void {
  if (!VERSION_RE.test(version)) throw new RangeError(`not a release name: ${version}`);
  const tmp = join(root, `.${name}.new`);
  rmSync(tmp, { force: true });
  symlinkSync(join('releases', version), tmp);
  renameSync(tmp, join(root, name));
  fsyncDir(root);
}

function readKv(path: string): Record<string, string> | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

const kv = (o: Record<string, string | number>) =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n') + '\n';

export function readTrial(root: string): TrialFile | null {
  const o = readKv(join(root, 'trial'));
  if (!o || !o['version'] || !o['previous']) return null;
  return {
    version: o['version'],
    previous: o['previous'],
    starts: Number(o['starts'] ?? 0) || 0,
    max: Number(o['max'] ?? 3) || 3,
  };
}

export function writeTrial(root: string, t: TrialFile): void {
  for (const v of [t.version, t.previous]) if (!VERSION_RE.test(v)) throw new RangeError(`not a release name: ${v}`);
  writeFileDurable(join(root, 'trial'), kv({ version: t.version, previous: t.previous, starts: t.starts, max: t.max }));
}

export function clearTrial(root: string): void {
  rmSync(join(root, 'trial'), { force: true });
  fsyncDir(root);
}

export function readRollback(root: string): RollbackMarker | null {
  const o = readKv(join(root, 'rollback'));
  if (!o || !o['version']) return null;
  return {
    version: o['version'],
    previous: o['previous'] ?? '',
    reason: o['reason'] ?? 'unknown',
    starts: Number(o['starts'] ?? 0) || 0,
  };
}

export function clearRollback(root: string): void {
  if (existsSync(join(root, 'rollback'))) {
    rmSync(join(root, 'rollback'), { force: true });
    fsyncDir(root);
  }
}

/** Written by the gateway itself when it rolls back (same format the trial script writes). */
export function writeRollback(root: string, m: RollbackMarker): void {
  writeFileDurable(
    join(root, 'rollback'),
    kv({ version: m.version, previous: m.previous, reason: m.reason, starts: m.starts }),
  );
}

/**
 * Activation order (each step durable), chosen so a kill at any point converges (docs/ota.md):
 * 1. trial file (version, previous) — a trial file whose version is not `current` is stale and
 *    the trial script removes it, so a kill before step 3 leaves the old release committed;
 * 2. `previous` → the running release; 3. `current` → the new release.
 */
export function activate(root: string, version: string, maxStarts: number): { previous: string } {
  const previous = linkedVersion(root, 'current');
  if (!previous) throw new Error(`${root}/current does not point at a release`);
  if (!existsSync(releaseDir(root, version))) throw new Error(`release ${version} is not unpacked`);
  writeTrial(root, { version, previous, starts: 0, max: maxStarts });
  faultPoint('activate:trial-written');
  pointAt(root, 'previous', previous);
  faultPoint('activate:previous-linked');
  pointAt(root, 'current', version);
  faultPoint('activate:current-linked');
  return { previous };
}

/** Back to `previous` (the gateway's own rollback; the trial script does the same in shell). */
export function rollBack(root: string, reason: string): RollbackMarker | null {
  const trial = readTrial(root);
  const current = linkedVersion(root, 'current');
  const previous = trial?.previous ?? linkedVersion(root, 'previous');
  if (!current || !previous || previous === current) return null;
  const marker = { version: current, previous, reason, starts: trial?.starts ?? 0 };
  writeRollback(root, marker);
  faultPoint('rollback:marker-written');
  pointAt(root, 'current', previous);
  faultPoint('rollback:current-linked');
  clearTrial(root);
  return marker;
}

/** Keeps `current` and `previous`; removes other release directories and stale temp dirs. */
export function pruneReleases(root: string, keep: readonly string[], list: () => string[]): string[] {
  const removed: string[] = [];
  for (const name of list()) {
    if (keep.includes(name)) continue;
    rmSync(join(root, 'releases', name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
