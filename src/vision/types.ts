import type { Provider } from './config.js';
import type { Verdict } from './decision.js';

/**
 * Uncompressed interleaved 8-bit pixels (row-major, no padding: width × height × channels bytes;
 * 3 = R,G,B, 1 = grey). Industrial cameras and ffmpeg's rawvideo deliver these: no JPEG decode.
 */
export interface RawFormat {
  width: number;
  height: number;
  channels: 1 | 3;
}

/** One image from a camera source. */
export interface Frame {
  cameraId: string;
  /** Traces a verdict back to its image (the file name for a directory drop). */
  frameId: string;
  /** From a trigger (topic suffix, user property, header); null when the source has none. */
  partId: string | null;
  /** Wall-clock capture time (ms); the per-part deadline counts from here. */
  captureTs: number;
  /** An encoded image (JPEG, PNG, …), or raw pixels when `raw` is set. */
  image: Buffer;
  raw?: RawFormat;
  /** The source got this part's frame but could not make an image of it (why): fail-safe, counted. */
  invalid?: string;
  /** Called once the part is decided (verdict or fail-safe), e.g. to delete a dropped file. */
  done?: () => void;
}

export type FrameSink = (frame: Frame) => void;

/** A camera: pushes frames until stopped. */
export interface FrameSource {
  readonly cameraId: string;
  readonly kind: string;
  start(sink: FrameSink): Promise<void>;
  stop(): Promise<void>;
  /** Another model now serves: a source producing the model's input size follows it. */
  retarget?(): void;
  /** Counters and state for /mgmt/inspection. */
  view(): Record<string, unknown>;
}

/** The JSON published on `inspection/{cameraId}/result` (docs/vision.md). */
export interface InspectionResult {
  cameraId: string;
  frameId: string;
  partId: string | null;
  /** The decided label, or null for a fail-safe without a verdict. */
  label: string | null;
  /** `failsafe` when the part had no verdict in time (dropped, failed, late). */
  verdict: Verdict | 'failsafe';
  confidence: number | null;
  scores: Record<string, number>;
  latencyMs: { decode: number; preprocess: number; inference: number; total: number };
  model: string;
  provider: Provider | null;
  captureTs: string;
  /** Why the fail-safe action ran (dropped, frame_error, inference_error, deadline, stopped). */
  failSafe?: { reason: string; action: 'reject' | 'pass' };
  /** A verdict that came after the deadline already triggered the fail-safe. */
  late?: boolean;
  error?: string;
}
