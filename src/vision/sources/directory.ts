import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log/logger.js';
import type { FrameSink, FrameSource } from '../types.js';

interface Seen {
  size: number;
  mtimeMs: number;
  since: number;
}

/**
 * A folder a camera drops images into (FTP/SMB). A file is read only after its size and mtime
 * stayed the same for `settle_ms` (an FTP upload in progress grows; never read half a file);
 * names starting with `.` or ending in `.tmp`/`.part`/`.filepart` are uploads in progress and
 * skipped. The frame id is the file name, the capture time its mtime. fs.watch wakes the scan;
 * a poll every settle/2 catches what inotify misses (SMB/NFS mounts send no events). Files are
 * handed over only while the camera's queue has room: a backlog waits on disk (in name order)
 * rather than being dropped, and each still counts its deadline from its mtime.
 */
export class DirectorySource implements FrameSource {
  readonly kind = 'directory';
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly seen = new Map<string, Seen>();
  /** Handed to the pipeline, not yet done. */
  private readonly inFlight = new Set<string>();
  private scanning = false;
  private again = false;
  private stopped = false;
  private readonly counts = { frames: 0, readErrors: 0, scans: 0 };

  constructor(
    readonly cameraId: string,
    private readonly dir: string,
    private readonly settleMs: number,
    private readonly deleteAfter: boolean,
    private readonly log: Logger,
    /** Free places in this camera's queue: files wait on disk instead of being dropped. */
    private readonly room: () => number = () => Infinity,
  ) {}

  async start(sink: FrameSink): Promise<void> {
    await stat(this.dir); // a missing folder is a start error, not a silent idle camera
    const tick = Math.max(20, Math.floor(this.settleMs / 2));
    this.timer = setInterval(() => void this.scan(sink), tick);
    try {
      this.watcher = watch(this.dir, () => void this.scan(sink));
      this.watcher.on('error', () => undefined);
    } catch {
      // polling alone
    }
    void this.scan(sink);
  }

  private async scan(sink: FrameSink): Promise<void> {
    if (this.stopped) return;
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = true;
    this.counts.scans++;
    try {
      const names = (await readdir(this.dir)).sort();
      const now = performance.now();
      const present = new Set(names);
      for (const k of this.seen.keys()) if (!present.has(k)) this.seen.delete(k);
      for (const name of names) {
        if (this.room() <= 0) break;
        if (name.startsWith('.') || /\.(tmp|part|filepart)$/i.test(name) || this.inFlight.has(name)) continue;
        const path = join(this.dir, name);
        let st;
        try {
          st = await stat(path);
        } catch {
          continue;
        }
        if (!st.isFile()) continue;
        const prev = this.seen.get(name);
        if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
          this.seen.set(name, { size: st.size, mtimeMs: st.mtimeMs, since: now });
          if (this.settleMs > 0) continue;
        } else if (now - prev.since < this.settleMs) continue;
        let image: Buffer;
        try {
          image = await readFile(path);
        } catch (e) {
          this.counts.readErrors++;
          this.log.warn(
            { camera: this.cameraId, file: name, err: (e as Error).message },
            'vision: cannot read dropped file',
          );
          continue;
        }
        this.inFlight.add(name);
        this.seen.delete(name);
        this.counts.frames++;
        sink({
          cameraId: this.cameraId,
          frameId: name,
          partId: null,
          captureTs: st.mtimeMs,
          image,
          done: () => {
            if (this.deleteAfter)
              unlink(path).then(
                () => this.inFlight.delete(name),
                () => this.inFlight.delete(name),
              );
            // Kept files stay in inFlight: each is inspected once per run.
          },
        });
      }
    } catch (e) {
      this.log.warn({ camera: this.cameraId, err: (e as Error).message }, 'vision: directory scan failed');
    } finally {
      this.scanning = false;
      if (this.again) {
        this.again = false;
        void this.scan(sink);
      }
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    return Promise.resolve();
  }

  view(): Record<string, unknown> {
    return { kind: this.kind, dir: this.dir, ...this.counts, pending: this.seen.size };
  }
}
