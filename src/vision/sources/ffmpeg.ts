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
        if (this.buf.length > this.max) this.buf = Buffer.alloc(0);
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

/**
 * A stream through Debian's ffmpeg: RTSP, a V4L2 USB camera (/dev/video0), HTTP MJPEG or a file,
 * re-encoded to JPEG at `fps` on stdout. When ffmpeg exits (camera gone, network down) it is
 * restarted after `reconnect_ms`; stop() sends SIGTERM and SIGKILL after 2 s, and the child is
 * always reaped (no leaked processes).
 */
export class FfmpegSource implements FrameSource {
  readonly kind = 'ffmpeg';
  private child: ChildProcess | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private seq = 0;
  private readonly counts = { frames: 0, starts: 0, exits: 0, lastExit: null as string | null };

  constructor(
    readonly cameraId: string,
    private readonly opts: { input: string; inputArgs: string[]; fps: number; reconnectMs: number; ffmpeg: string },
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  /** Arguments; exported for the docs and tests. */
  args(): string[] {
    const { input, inputArgs, fps } = this.opts;
    const pre = input.startsWith('/dev/video')
      ? ['-f', 'v4l2']
      : input.startsWith('rtsp://')
        ? ['-rtsp_transport', 'tcp']
        : [];
    return [
      '-hide_banner',
      '-loglevel',
      'error',
      '-nostdin',
      ...pre,
      ...inputArgs,
      '-i',
      input,
      '-vf',
      `fps=${fps}`,
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
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      for (const image of split.push(chunk)) {
        const captureTs = Date.now();
        this.seq++;
        this.counts.frames++;
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
      stderr = (stderr + d.toString()).slice(-500);
    });
    child.on('error', (e) => {
      this.counts.lastExit = e.message;
    });
    child.on('close', (code, signal) => {
      this.child = null;
      this.counts.exits++;
      this.counts.lastExit = `${code ?? signal}: ${stderr.trim().split('\n').pop() ?? ''}`;
      if (this.stopped) return;
      this.log.warn({ camera: this.cameraId, exit: this.counts.lastExit }, 'vision: ffmpeg stream ended; reconnecting');
      this.timer = setTimeout(() => this.spawn(sink), this.opts.reconnectMs);
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
