import type { Logger } from '../../log/logger.js';
import type { FrameSink, FrameSource } from '../types.js';

/**
 * An HTTP snapshot URL polled every `interval_ms` (IP cameras' /snapshot.jpg). One request at a
 * time; each bounded by `timeout_ms` and `max_bytes`. A part id may come in `X-Part-Id`.
 * Failures are counted and logged once per state change, not per poll.
 */
export class HttpSnapshotSource implements FrameSource {
  readonly kind = 'http';
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private failing = false;
  private seq = 0;
  private readonly ac = new AbortController();
  private readonly counts = { frames: 0, errors: 0, lastError: null as string | null };
  private readonly target: string;
  private readonly headers: Record<string, string> = {};

  constructor(
    readonly cameraId: string,
    private readonly url: string,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {
    // fetch refuses URLs with credentials (Fetch standard: "includes credentials" → TypeError);
    // IP cameras are usually configured as http://user:pass@host/snapshot.jpg, so send Basic auth.
    const u = new URL(url);
    if (u.username !== '' || u.password !== '') {
      const cred = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
      this.headers.authorization = `Basic ${Buffer.from(cred).toString('base64')}`;
      u.username = '';
      u.password = '';
    }
    this.target = u.toString();
  }

  start(sink: FrameSink): Promise<void> {
    this.timer = setInterval(() => void this.poll(sink), this.intervalMs);
    void this.poll(sink);
    return Promise.resolve();
  }

  private async poll(sink: FrameSink): Promise<void> {
    if (this.busy || this.ac.signal.aborted) return;
    this.busy = true;
    const captureTs = Date.now();
    try {
      const res = await fetch(this.target, {
        headers: this.headers,
        signal: AbortSignal.any([this.ac.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const len = Number(res.headers.get('content-length') ?? '0');
      if (len > this.maxBytes) throw new Error(`snapshot of ${len} bytes exceeds max_image_bytes`);
      // Read at most max_image_bytes: a body without Content-Length is cut off, not buffered whole.
      const chunks: Uint8Array[] = [];
      let size = 0;
      if (res.body) {
        for await (const chunk of res.body) {
          size += chunk.length;
          if (size > this.maxBytes) {
            await res.body.cancel().catch(() => undefined);
            throw new Error(`snapshot exceeds max_image_bytes (${this.maxBytes})`);
          }
          chunks.push(chunk);
        }
      }
      const image = Buffer.concat(chunks);
      const pid = res.headers.get('x-part-id');
      this.seq++;
      this.counts.frames++;
      if (this.failing) this.log.info({ camera: this.cameraId }, 'vision: snapshot URL answers again');
      this.failing = false;
      sink({
        cameraId: this.cameraId,
        frameId: pid ?? `${this.cameraId}-${captureTs}-${this.seq}`,
        partId: pid,
        captureTs,
        image,
      });
    } catch (e) {
      if (this.ac.signal.aborted) return;
      this.counts.errors++;
      this.counts.lastError = (e as Error).message;
      if (!this.failing)
        this.log.warn({ camera: this.cameraId, err: this.counts.lastError }, 'vision: snapshot failed');
      this.failing = true;
    } finally {
      this.busy = false;
    }
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.ac.abort();
    return Promise.resolve();
  }

  view(): Record<string, unknown> {
    return { kind: this.kind, url: this.url.replace(/\/\/[^@/]*@/, '//[redacted]@'), ...this.counts };
  }
}
