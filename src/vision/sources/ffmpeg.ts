import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../../log/logger.js';
import type { ModelContract } from '../contract.js';
import type { FrameSink, FrameSource, RawFormat } from '../types.js';

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
/**
 * Cuts ffmpeg's rawvideo output (frames of exactly `size` bytes back to back, no header) into
 * frames. Each frame gets its own buffer; a partial frame at the end of a stream is dropped with
 * the splitter (a restarted ffmpeg starts on a frame boundary again).
 */
export class RawSplitter {
  private cur: Buffer;
  private fill = 0;
  constructor(private readonly size: number) {
    // A size of 0 would never complete a frame and spin on every chunk.
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`raw frame size ${size} is not a positive integer`);
    this.cur = Buffer.allocUnsafe(size);
  }
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(this.size - this.fill, chunk.length - off);
      chunk.copy(this.cur, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === this.size) {
        out.push(this.cur);
        this.cur = Buffer.allocUnsafe(this.size);
        this.fill = 0;
      }
    }
    return out;
  }
  /** Bytes of an unfinished frame. */
  get pending(): number {
    return this.fill;
  }
}

const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);

/** What a `raw` stream is scaled to: the serving model's input (read at every ffmpeg start). */
export type RawTarget = Pick<ModelContract, 'width' | 'height' | 'channels' | 'fit' | 'background'>;

export interface FfmpegOptions {
  input: string;
  /**
   * `raw`: ffmpeg decodes, scales to the model's input (`target`) and writes raw RGB pixels:
   * the gateway neither decodes nor resizes (docs/vision.md "Streams through ffmpeg"). `jpeg`: ffmpeg
   * re-encodes each frame to JPEG (what the review folder keeps as is; the gateway decodes it).
   */
  format: 'raw' | 'jpeg';
  target?: () => RawTarget;
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
 * at `fps` on stdout: raw pixels at the model's input size (`format: raw`, the default) or JPEG. When ffmpeg exits (camera gone, network down, a stream
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
  /** The raw format the running ffmpeg writes (undefined for jpeg). */
  private current: RawFormat | undefined;
  /** The scale filter the running ffmpeg was started with (size, fit, pad colour). */
  private currentFilter: string | undefined;
  /** The model input the running ffmpeg scales to. */
  private currentTarget: RawTarget | undefined;
  /** Set by retarget(): the next exit is a planned restart, without backoff. */
  private restartNow = false;
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

  /**
   * The raw frame format of the next start (`format: raw`), from the serving model. Always RGB:
   * a grey model's frames are converted by decodeForModel, as encoded frames are (rawScaleFilter).
   */
  private rawFormat(): (RawFormat & { target: RawTarget }) | undefined {
    if (this.opts.format !== 'raw') return undefined;
    let t = this.opts.target?.();
    if (!t) throw new Error('raw ffmpeg output needs the model input size');
    // A swapped-in model whose raw frame would exceed max_image_bytes: ffmpeg keeps the size it
    // runs at (the gateway resizes those frames), rather than sending frames every one of which the
    // pipeline would refuse. At the first start the limit is a start error (start()).
    const running = this.currentTarget;
    if (running && t.width * t.height * 3 > this.maxBytes) {
      this.counts.lastError = `model input ${t.width}×${t.height} exceeds max_image_bytes ${this.maxBytes} as raw RGB; ffmpeg stays at ${running.width}×${running.height}`;
      t = running;
    }
    return { width: t.width, height: t.height, channels: 3, target: t };
  }

  /** Arguments; exported for the docs and tests. */
  args(): string[] {
    const { input, inputArgs, fps, maxWidth } = this.opts;
    const raw = this.rawFormat();
    let vf: string;
    let out: string[];
    if (raw) {
      vf = `fps=${fps},${rawScaleFilter(raw.target)}`;
      out = ['-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
    } else {
      // A camera streaming 1080p to a 224×224 model: scaling in ffmpeg, before its JPEG encode,
      // saves most of the encode, the pipe and sharp's decode (which, below a shrink of 3, decodes
      // every pixel). `\,` escapes the comma inside the filter expression (ffmpeg-filters §4.1).
      vf = maxWidth === undefined ? `fps=${fps}` : `fps=${fps},scale=w=min(iw\\,${maxWidth}):h=-2`;
      out = ['-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '3', 'pipe:1'];
    }
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
      ...out,
    ];
  }

  start(sink: FrameSink): Promise<void> {
    const raw = this.rawFormat();
    if (raw && raw.width * raw.height * raw.channels > this.maxBytes)
      return Promise.reject(
        new Error(`a raw ${raw.width}×${raw.height}×${raw.channels} frame exceeds max_image_bytes ${this.maxBytes}`),
      );
    this.spawn(sink);
    return Promise.resolve();
  }

  private spawn(sink: FrameSink): void {
    if (this.stopped) return;
    this.counts.starts++;
    const raw = this.rawFormat();
    const child = spawn(this.opts.ffmpeg, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const format: RawFormat | undefined = raw && { width: raw.width, height: raw.height, channels: raw.channels };
    this.current = format;
    this.currentFilter = raw && rawScaleFilter(raw.target);
    this.currentTarget = raw?.target;
    const split = raw ? new RawSplitter(raw.width * raw.height * raw.channels) : new JpegSplitter(this.maxBytes);
    let gotFrame = false;
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const images = split.push(chunk);
      if (split instanceof JpegSplitter) {
        this.counts.oversize += split.oversize;
        split.oversize = 0;
      }
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
          ...(format ? { raw: format } : {}),
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
      if (this.restartNow) {
        this.restartNow = false;
        this.spawn(sink);
        return;
      }
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

  /**
   * A swapped-in model with another input size, fit or background (a grey model pads with another
   * colour): ffmpeg is restarted at once with the new scale filter. Frames already out at the old size are resized by the gateway
   * (decodeForModel), so no part is lost or misjudged meanwhile.
   */
  retarget(): void {
    const next = this.rawFormat();
    const cur = this.current;
    if (!next || !cur || this.stopped || !this.child) return;
    if (rawScaleFilter(next.target) === this.currentFilter) return;
    this.log.info(
      {
        camera: this.cameraId,
        from: `${cur.width}x${cur.height}`,
        to: `${next.width}x${next.height} ${next.target.fit}`,
      },
      'vision: model input changed; restarting ffmpeg at the new size',
    );
    this.restartNow = true;
    this.child.kill('SIGTERM');
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
      format: this.opts.format,
      ...(this.current ? { rawSize: `${this.current.width}x${this.current.height}x${this.current.channels}` } : {}),
      input: this.opts.input.replace(/\/\/[^@/]*@/, '//[redacted]@'),
      running: this.child !== null,
      ...this.counts,
    };
  }
}

/**
 * ffmpeg filters that scale a frame to the model's input with the model's fit (the geometry
 * decode.ts gives with libvips): `fill` stretches; `cover` scales to cover and crops the centre;
 * `contain` scales to fit and pads with the background, centred (the odd pixel to the
 * bottom/right: pad's x/y round down). Lanczos, as libvips; accurate_rnd and full_chroma_int
 * convert colour at full chroma resolution with exact rounding, full_chroma_inp reads RGB input
 * at full chroma (without it an odd-width RGB source gets a wrong last column and colour bleeding
 * at edges) (ffmpeg-scaler "sws_flags").
 * - cover: sharp crops the odd pixel of an odd margin on the left/top ((in − out + 1) / 2, sharp
 *   CalculateCrop); with crop's default x/y the crop sat one pixel left/up of sharp's.
 * - The output is always rgb24. A grey model gets its grey from decodeForModel (libvips'
 *   sRGB → b-w, as encoded frames get): ffmpeg's `gray` is Rec. 601 luma of the gamma values,
 *   tens of levels away from it on saturated colours. Its pad is the grey sharp gives a 1-band
 *   image for the background (greyBackground), so the border converts to exactly that grey.
 */
export function rawScaleFilter(t: RawTarget): string {
  const { width: w, height: h } = t;
  const flags = 'flags=lanczos+accurate_rnd+full_chroma_int+full_chroma_inp';
  const fmt = 'format=rgb24';
  if (t.fit === 'fill') return `scale=${w}:${h}:${flags},${fmt}`;
  if (t.fit === 'cover')
    return `scale=${w}:${h}:force_original_aspect_ratio=increase:${flags},crop=${w}:${h}:floor((iw-ow+1)/2):floor((ih-oh+1)/2),${fmt}`;
  const bg = t.channels === 1 ? greyBackground(t.background) : t.background;
  const hex = bg.map((v) => v.toString(16).padStart(2, '0')).join('');
  return `scale=${w}:${h}:force_original_aspect_ratio=decrease:${flags},pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:color=0x${hex},${fmt}`;
}

/**
 * The grey sharp fills a 1-band image's contain border with: Rec. 709 weights on the background
 * (sharp ApplyAlpha), stored through a float and truncated to 8 bits by libvips (checked against
 * sharp for every grey and 300 random colours). As R = G = B it stays that grey through b-w.
 */
function greyBackground([r, g, b]: [number, number, number]): [number, number, number] {
  const v = Math.floor(Math.fround(0.2126 * r + 0.7152 * g + 0.0722 * b));
  return [v, v, v];
}
