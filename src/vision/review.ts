import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export interface ReviewEntry {
  file: string;
  bytes: number;
  ts: number;
}

export interface ReviewStats {
  files: number;
  bytes: number;
  /** Files written since start (SD-card wear: each is one file create + write + rename). */
  writes: number;
  bytesWritten: number;
  evicted: number;
  writeErrors: number;
}

/**
 * A bounded folder of review images (defective, uncertain, sampled good). Names start with a
 * zero-padded capture time so name order is age order; the oldest files go first when the byte
 * or count quota would be exceeded. Writes go to a temp name and are renamed, so a listed file is
 * always whole.
 */
export class ReviewStore {
  private entries: ReviewEntry[] = [];
  private total = 0;
  readonly stats: ReviewStats = { files: 0, bytes: 0, writes: 0, bytesWritten: 0, evicted: 0, writeErrors: 0 };

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly maxFiles: number,
  ) {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir).sort()) {
      if (f.startsWith('.')) continue;
      try {
        const st = statSync(join(dir, f));
        if (st.isFile()) this.entries.push({ file: f, bytes: st.size, ts: st.mtimeMs });
      } catch {
        // vanished between readdir and stat
      }
    }
    this.total = this.entries.reduce((a, e) => a + e.bytes, 0);
    this.evict(0, 0);
    this.sync();
  }

  private sync(): void {
    this.stats.files = this.entries.length;
    this.stats.bytes = this.total;
  }

  /** Removes the oldest files until `bytes` more and `files` more fit. */
  private evict(bytes: number, files: number): void {
    while (
      this.entries.length > 0 &&
      (this.total + bytes > this.maxBytes || this.entries.length + files > this.maxFiles)
    ) {
      const e = this.entries.shift()!;
      this.total -= e.bytes;
      this.stats.evicted++;
      try {
        unlinkSync(join(this.dir, e.file));
      } catch {
        // already gone
      }
    }
  }

  /** Keeps one image; false when it cannot fit at all or the write failed (counted). */
  save(captureTs: number, cameraId: string, frameId: string, verdict: string, image: Uint8Array, ext: string): boolean {
    if (image.length > this.maxBytes || this.maxFiles === 0) return false;
    const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80);
    const file = `${String(Math.floor(captureTs)).padStart(14, '0')}-${safe(cameraId)}-${verdict}-${safe(frameId)}${frameId.endsWith(ext) ? '' : ext}`;
    this.evict(image.length, 1);
    try {
      const tmp = join(this.dir, `.${file}.tmp`);
      writeFileSync(tmp, image);
      renameSync(tmp, join(this.dir, file));
    } catch {
      this.stats.writeErrors++;
      return false;
    }
    this.entries.push({ file, bytes: image.length, ts: captureTs });
    this.total += image.length;
    this.stats.writes++;
    this.stats.bytesWritten += image.length;
    this.sync();
    return true;
  }

  /** The bytes of a kept image, by its file name; only names this store lists (no path from outside). */
  read(file: string): Buffer | undefined {
    if (!this.entries.some((e) => e.file === file)) return undefined;
    try {
      return readFileSync(join(this.dir, file));
    } catch {
      return undefined;
    }
  }

  /** Newest first. */
  list(limit = 50): ReviewEntry[] {
    return this.entries.slice(-limit).reverse();
  }
}

/** A file extension for an image by its magic bytes. */
export function imageExt(b: Uint8Array): string {
  if (b[0] === 0xff && b[1] === 0xd8) return '.jpg';
  if (b[0] === 0x89 && b[1] === 0x50) return '.png';
  if (b[0] === 0x52 && b[1] === 0x49) return '.webp';
  return '.bin';
}
