import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../../log/logger.js';
import type { FrameSink, FrameSource } from '../types.js';

/**
 * Splits a byte stream of concatenated JPEGs (ffmpeg `-f image2pipe -c:v mjpeg`) at SOI (FFD8)
 * … EOI (FFD9) markers. Entropy-coded data never contains FFD9 (0xFF is stuffed as FF00,
 * ITU-T T.81 §F.1.2.3), so the first EOI after an SOI ends the image. Bounded: a buffer that
 * grows past `max` without an EOI is discarded.
 */
export class JpegSplitter {
  private buf: Buffer = Buffer.alloc(0);
  /** Images discarded for growing past `max` without an EOI. */
  oversize = 0;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const soi = this.buf.indexOf(SOI);
      if (soi < 0) {
        // Keep a trailing 0xFF: it may be the first byte of an SOI split across chunks.
        this.buf =
          this.buf.length > 0 && this.buf[this.buf.length - 1] === 0xff ? this.buf.subarray(-1) : Buffer.alloc(0);
        break;
      }
      const eoi = this.buf.indexOf(EOI, soi + 2);
      if (eoi < 0) {
        this.buf = this.buf.subarray(soi);
        if (this.buf.length > this.max) {
          this.oversize++;
          this.buf = Buffer.alloc(0);
        }
        break;
      }
      out.push(Buffer.from(this.buf.subarray(soi, eoi + 2)));
      this.buf = this.buf.subarray(eoi + 2);
    }
    return out;
  }
}
const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);

export interface FfmpegOptions {
  input: string;
  inputArgs: string[];
  fps: number;
  /** Frames wider than this are scaled down by ffmpeg (aspect kept, never up). */
  maxWidth?: number;
  /** First restart delay; doubled after each start that gave no frame, up to reconnectMaxMs. */
  reconnectMs: number;
  reconnectMaxMs: number;
  ffmpeg: string;
}

/**
 * A stream through Debian's ffmpeg: RTSP, a V4L2 USB camera (/dev/video0), HTTP MJPEG or a file,
 * re-encoded to JPEG at `fps` on stdout. When ffmpeg exits (camera gone, network down, a stream
 * it cannot parse) it is restarted with capped exponential backoff: `reconnect_ms`, doubled after
 * every start that delivered no frame, at most `reconnect_max_ms`; a frame resets it. Every
 * error line ffmpeg prints (a corrupt JPEG in an MJPEG stream, a lost RTP packet) is counted.
 * stop() sends SIGTERM and SIGKILL after 2 s, and the child is always reaped (no leaked
 * processes).
 */
export class FfmpegSource implements FrameSource {
  readonly kind = 'ffmpeg';
  private child: ChildProcess | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private seq = 0;
  private failedStarts = 0;
  private readonly counts = {
    frames: 0,
    starts: 0,
    exits: 0,
    /** Error lines on ffmpeg's stderr (it runs with -loglevel error). */
    errors: 0,
    /** Output images over max_image_bytes, discarded. */
    oversize: 0,
    /** The delay before the pending or last restart. */
    backoffMs: 0,
    lastExit: null as string | null,
    lastError: null as string | null,
  };

  constructor(
    readonly cameraId: string,
    private readonly opts: FfmpegOptions,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  /** Arguments; exported for the docs and tests. */
  args(): string[] {
    const { input, inputArgs, fps, maxWidth } = this.opts;
    // A camera streaming 1080p to a 224×224 model: scaling in ffmpeg, before its JPEG encode, saves
    // most of the encode, the pipe and sharp's decode (which, below a shrink of 3, decodes every
    // pixel). `\,` escapes the comma inside the filter expression (ffmpeg-filters §4.1).
    const vf = maxWidth === undefined ? `fps=${fps}` : `fps=${fps},scale=w=min(iw\\,${maxWidth}):h=-2`;
    const pre = input.startsWith('/dev/video')
      ? ['-f', 'v4l2']
      : input.startsWith('rtsp://') || input.startsWith('rtsps://')
        ? // TCP interleaved (RFC 2326 §10.12): no UDP ports to open, no loss reordering on Wi-Fi.
          ['-rtsp_transport', 'tcp']
        : /^https?:\/\//.test(input)
          ? // multipart/x-mixed-replace MJPEG carries no timestamps (ffmpeg would assume 25 fps and
            // the fps filter would keep the wrong frames): stamp each part when it arrives.
            ['-use_wallclock_as_timestamps', '1']
          : [];
    return [
      '-hide_banner',
      '-loglevel',
      'error',
      '-nostdin',
      // No single allocation above the largest image the pipeline accepts: an oversize part in
      // an MJPEG stream (or a hostile header) makes ffmpeg fail and restart, not grow. At least
      // 16 MiB: ffmpeg's own frame buffers (a 4K yuv420p frame is 12 MiB) must still fit.
      '-max_alloc',
      String(Math.max(this.maxBytes, 16 * 1024 * 1024)),
      ...pre,
      ...inputArgs,
      '-i',
      input,
      '-vf',
      vf,
      '-f',
      'image2pipe',
      '-c:v',
      'mjpeg',
      '-q:v',
      '3',
      'pipe:1',
    ];
  }

  start(sink: FrameSink): Promise<void> {
    this.spawn(sink);
    return Promise.resolve();
  }

  private spawn(sink: FrameSink): void {
    if (this.stopped) return;
    this.counts.starts++;
    const child = spawn(this.opts.ffmpeg, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const split = new JpegSplitter(this.maxBytes);
    let gotFrame = false;
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const images = split.push(chunk);
      this.counts.oversize += split.oversize;
      split.oversize = 0;
      for (const image of images) {
        const captureTs = Date.now();
        this.seq++;
        this.counts.frames++;
        gotFrame = true;
        sink({
          cameraId: this.cameraId,
          frameId: `${this.cameraId}-${captureTs}-${this.seq}`,
          partId: null,
          captureTs,
          image,
        });
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
      // Complete lines only; a line split across chunks is counted once, when its end arrives.
      const lines = stderr.split('\n');
      stderr = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        this.counts.errors++;
        this.counts.lastError = line.trim().slice(0, 300);
      }
    });
    child.on('error', (e) => {
      this.counts.lastExit = e.message;
    });
    child.on('close', (code, signal) => {
      this.child = null;
      this.counts.exits++;
      if (stderr.trim() !== '') {
        this.counts.errors++;
        this.counts.lastError = stderr.trim().slice(0, 300);
      }
      this.counts.lastExit = `${code ?? signal}: ${this.counts.lastError ?? ''}`;
      if (this.stopped) return;
      this.failedStarts = gotFrame ? 0 : this.failedStarts + 1;
      const doublings = Math.min(Math.max(this.failedStarts - 1, 0), 20);
      const delay = Math.min(this.opts.reconnectMs * 2 ** doublings, this.opts.reconnectMaxMs);
      this.counts.backoffMs = delay;
      this.log.warn(
        { camera: this.cameraId, exit: this.counts.lastExit, retryMs: delay },
        'vision: ffmpeg stream ended; reconnecting',
      );
      this.timer = setTimeout(() => this.spawn(sink), delay);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.kill('SIGTERM');
    const k = setTimeout(() => c.kill('SIGKILL'), 2000);
    await closed;
    clearTimeout(k);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  view(): Record<string, unknown> {
    return {
      kind: this.kind,
      input: this.opts.input.replace(/\/\/[^@/]*@/, '//[redacted]@'),
      running: this.child !== null,
      ...this.counts,
    };
  }
}
