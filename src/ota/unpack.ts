import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { isAbsolute, join, normalize, posix } from 'node:path';
import * as tar from 'tar';
import { fsyncDir } from './durable.js';
import { faultPoint } from './fault.js';

/**
 * Unpacks a verified bundle (a gzip tarball) into `releases/<version>` (docs/ota.md §Bundle). The
 * archive is listed first and refused whole if any entry is unsafe — an absolute path, a `..`
 * segment, a link whose target leaves the release, a hard link, a device or FIFO, or more entries
 * or bytes than the bounds — so nothing of a hostile archive reaches the disk. Then it is extracted
 * into a temp directory and renamed into place, so a power cut never leaves half a release.
 */

export class UnpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpackError';
  }
}

export interface UnpackLimits {
  maxEntries: number;
  maxBytes: number;
}

const DEFAULT_LIMITS: UnpackLimits = { maxEntries: 200_000, maxBytes: 2 * 1024 * 1024 * 1024 };

/** Why an entry is refused, or null when it is safe. Pure; exported for tests. */
export function entryProblem(path: string, type: string, linkpath: string | undefined): string | null {
  if (path.includes('\0')) return 'NUL in a path';
  if (isAbsolute(path) || /^[A-Za-z]:/.test(path)) return `absolute path ${path}`;
  const parts = path.split(/[\\/]+/);
  if (parts.includes('..')) return `path with .. ${path}`;
  switch (type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
    case 'Directory':
      return null;
    case 'SymbolicLink': {
      if (!linkpath || isAbsolute(linkpath)) return `link ${path} → ${linkpath ?? ''} leaves the release`;
      // Resolve relative to the link's directory: it must stay inside the release.
      const target = posix.normalize(posix.join(posix.dirname(path.replace(/\\/g, '/')), linkpath));
      if (target === '..' || target.startsWith('../')) return `link ${path} → ${linkpath} leaves the release`;
      return null;
    }
    case 'Link':
      return `hard link ${path} (not allowed in a bundle)`;
    default:
      return `${type} entry ${path} (only files, directories and links inside the release)`;
  }
}

/** Lists the archive and throws on the first unsafe entry or a bound exceeded. */
export async function checkArchive(
  file: string,
  limits: UnpackLimits = DEFAULT_LIMITS,
): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  let problem: string | null = null;
  await tar
    .t({
      file,
      strict: true,
      onReadEntry: (e) => {
        if (problem) return;
        entries++;
        bytes += e.size ?? 0;
        problem = entryProblem(e.path, e.type, e.linkpath);
        if (!problem && entries > limits.maxEntries) problem = `more than ${limits.maxEntries} entries`;
        if (!problem && bytes > limits.maxBytes) problem = `more than ${limits.maxBytes} bytes unpacked`;
      },
    })
    .catch((err: unknown) => {
      problem ??= `not a valid tarball: ${(err as Error).message}`;
    });
  if (problem) throw new UnpackError(`bundle refused: ${problem}`);
  if (entries === 0) throw new UnpackError('bundle refused: empty archive');
  return { entries, bytes };
}

/**
 * Checks, extracts into `${dest}.tmp`, verifies the release's package.json names `version`, and
 * renames into `dest`. An existing `dest` (a retried install) is replaced.
 */
export async function unpackRelease(
  file: string,
  dest: string,
  version: string,
  limits: UnpackLimits = DEFAULT_LIMITS,
): Promise<void> {
  await checkArchive(file, limits);
  const tmp = `${dest}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await tar.x({
      file,
      cwd: tmp,
      strict: true,
      preservePaths: false,
      // Belt and braces: the listing refused these already; a filter keeps them out regardless.
      filter: (p, e) =>
        entryProblem(p, 'type' in e ? e.type : 'File', 'linkpath' in e ? e.linkpath : undefined) === null,
    });
    const pkgPath = join(tmp, 'package.json');
    if (!existsSync(pkgPath)) throw new UnpackError('bundle refused: no package.json at its root');
    const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { version?: unknown };
    if (pkg.version !== version)
      throw new UnpackError(`bundle refused: its package.json says ${String(pkg.version)}, the manifest ${version}`);
    if (!existsSync(join(tmp, 'dist', 'src', 'main.js'))) throw new UnpackError('bundle refused: no dist/src/main.js');
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err instanceof UnpackError ? err : new UnpackError(`bundle cannot be unpacked: ${(err as Error).message}`);
  }
  faultPoint('unpacking');
  // A retried install over an existing directory (e.g. the `previous` release re-offered with
  // allow_downgrade): moved aside whole, never deleted in place, so a kill leaves a whole release.
  const aside = `${dest}.old`;
  rmSync(aside, { recursive: true, force: true });
  if (existsSync(dest)) renameSync(dest, aside);
  renameSync(tmp, dest);
  fsyncDir(normalize(join(dest, '..')));
  rmSync(aside, { recursive: true, force: true });
}
