import { Type, type Static } from '@sinclair/typebox';
import { discriminated, section } from '../config/sections.js';

/** Execution providers onnxruntime can be asked for, tried in the configured order (docs/vision.md). */
export const ProviderName = Type.Union([Type.Literal('tensorrt'), Type.Literal('cuda'), Type.Literal('cpu')]);

const Triple = (description: string) =>
  Type.Optional(Type.Array(Type.Number(), { minItems: 1, maxItems: 4, description }));

export const ModelConfig = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'The .onnx file (a single-input image classifier).' }),
    labels: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
        minItems: 1,
        maxItems: 10000,
        description: 'Class names in output order; absent: labels_file, then the model metadata key "labels".',
      }),
    ),
    labels_file: Type.Optional(Type.String({ minLength: 1, description: 'One label per line.' })),
    good_labels: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description: 'Labels that mean a good part; absent: metadata "good_labels", else ["good"].',
      }),
    ),
    layout: Type.Optional(
      Type.Union([Type.Literal('NCHW'), Type.Literal('NHWC')], {
        description: 'Input layout; absent: metadata "layout", else inferred from the input shape (3 = channels).',
      }),
    ),
    width: Type.Optional(Type.Integer({ minimum: 1, maximum: 8192, description: 'For a dynamic width dimension.' })),
    height: Type.Optional(Type.Integer({ minimum: 1, maximum: 8192, description: 'For a dynamic height dimension.' })),
    mean: Triple('Per-channel mean subtracted after scaling; absent: metadata "mean", else 0.'),
    std: Triple('Per-channel divisor after the mean; absent: metadata "std", else 1.'),
    scale: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Pixel scale applied first (1/255 maps 0..255 to 0..1); absent: metadata "scale", else 1/255.',
      }),
    ),
    fit: Type.Union([Type.Literal('fill'), Type.Literal('cover'), Type.Literal('contain')], {
      default: 'fill',
      description:
        'Resize fit: fill stretches (no border, aspect not kept), cover crops the centre, contain letterboxes with `background`.',
    }),
    background: Type.Array(Type.Integer({ minimum: 0, maximum: 255 }), {
      minItems: 3,
      maxItems: 3,
      default: [0, 0, 0],
      description: 'RGB of the letterbox border for fit: contain.',
    }),
  },
  { additionalProperties: false },
);

export const CameraSourceConfig = discriminated('kind', [
  Type.Object(
    {
      id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
      kind: Type.Literal('directory'),
      path: Type.String({ minLength: 1, description: 'Folder the camera drops images into (FTP/SMB).' }),
      settle_ms: Type.Integer({
        minimum: 0,
        maximum: 60000,
        default: 200,
        description: 'A file is read only once its size and mtime are unchanged for this long (never half-written).',
      }),
      delete_after: Type.Boolean({ default: true, description: 'Remove the file once its verdict is out.' }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
      kind: Type.Literal('mqtt'),
    },
    { additionalProperties: false, description: 'Frames published on camera/{id}/image[/{partId}].' },
  ),
  Type.Object(
    {
      id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
      kind: Type.Literal('http'),
      url: Type.String({ pattern: '^https?://', description: 'Snapshot URL returning one image.' }),
      interval_ms: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 1000 }),
      timeout_ms: Type.Integer({ minimum: 10, maximum: 60000, default: 2000 }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
      kind: Type.Literal('ffmpeg'),
      input: Type.String({ minLength: 1, description: 'rtsp://…, /dev/video0, http://…mjpeg, or a file.' }),
      input_args: Type.Array(Type.String(), { default: [], description: 'Extra ffmpeg arguments before -i.' }),
      fps: Type.Number({ exclusiveMinimum: 0, maximum: 120, default: 5 }),
      format: Type.Union([Type.Literal('raw'), Type.Literal('jpeg')], {
        default: 'raw',
        description:
          'raw: ffmpeg scales to the model input and sends raw pixels (no JPEG encode or decode); jpeg: JPEG frames (max_width applies).',
      }),
      max_width: Type.Optional(
        Type.Integer({
          minimum: 16,
          maximum: 8192,
          description:
            'format jpeg: ffmpeg scales wider frames down to this width (aspect kept) before encoding: less to encode, pipe and decode.',
        }),
      ),
      reconnect_ms: Type.Integer({
        minimum: 100,
        maximum: 600000,
        default: 2000,
        description: 'First restart delay after ffmpeg exits; doubled after each start without a frame.',
      }),
      reconnect_max_ms: Type.Integer({
        minimum: 100,
        maximum: 3_600_000,
        default: 60000,
        description: 'Cap of the restart backoff.',
      }),
      ffmpeg: Type.String({ default: 'ffmpeg', description: 'The ffmpeg binary (Debian package ffmpeg).' }),
    },
    { additionalProperties: false },
  ),
]);

export const RejectActionConfig = discriminated('kind', [
  Type.Object(
    {
      kind: Type.Literal('command'),
      device_id: Type.String({ minLength: 1, description: 'Published on commands/{device_id} (local only).' }),
      command: Type.Record(Type.String(), Type.Unknown(), {
        default: { reject: true },
        description: 'Command body; "part_id" and "camera_id" are added.',
      }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('serial'),
      port: Type.String({ minLength: 1 }),
      baud: Type.Integer({ minimum: 50, maximum: 4_000_000, default: 9600 }),
      line: Type.String({
        default: 'REJECT {partId}',
        description: 'Written + "\\n"; {partId} and {cameraId} replaced.',
      }),
    },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Literal('none') }, { additionalProperties: false }),
]);

export const VisionConfigSchema = section(
  {
    enabled: Type.Boolean({ default: false, description: 'Run camera inspection (docs/vision.md).' }),
    model: Type.Optional(ModelConfig),
    providers: Type.Array(ProviderName, {
      minItems: 1,
      default: ['cpu'],
      description: 'Preference order; the first that loads is used and reported, never a silent fallback.',
    }),
    binding: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'A user-built onnxruntime-node package directory (e.g. with TensorRT on a Jetson).',
      }),
    ),
    tensorrt: Type.Object(
      {
        fp16: Type.Boolean({ default: true }),
        engine_cache_dir: Type.Optional(Type.String({ minLength: 1 })),
        workspace_bytes: Type.Optional(Type.Integer({ minimum: 1 })),
      },
      { additionalProperties: false, default: {} },
    ),
    cuda_device_id: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
    intra_op_threads: Type.Integer({ minimum: 0, maximum: 64, default: 1, description: '0 = onnxruntime decides.' }),
    spinning: Type.Boolean({
      default: false,
      description: 'Let idle intra-op threads spin (lower latency, burns CPU).',
    }),
    warmup_runs: Type.Integer({ minimum: 0, maximum: 100, default: 2 }),
    cameras: Type.Array(CameraSourceConfig, { default: [], maxItems: 64 }),
    queue_per_camera: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 4,
      description: 'Frames waiting per camera; when full the OLDEST is dropped and its part rejected (counted).',
    }),
    max_image_bytes: Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024, default: 16 * 1024 * 1024 }),
    max_image_pixels: Type.Integer({
      minimum: 1,
      maximum: 1_000_000_000,
      default: 50_000_000,
      description: 'Decoded width × height above this is refused (a 30000×30000 header is an error, not OOM).',
    }),
    deadline_ms: Type.Integer({
      minimum: 1,
      maximum: 600000,
      default: 500,
      description: 'A part without a verdict this long after capture gets the fail-safe action.',
    }),
    uncertain_below: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.6,
      description: 'A good top label below this confidence is uncertain.',
    }),
    defect_thresholds: Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 1 }), {
      default: {},
      description: 'Per defect label: confidence needed for "defective"; others use default_defect_threshold.',
    }),
    default_defect_threshold: Type.Number({ minimum: 0, maximum: 1, default: 0.5 }),
    result_scores: Type.Integer({
      minimum: 0,
      maximum: 100000,
      default: 10,
      description: 'Scores in a published result: the N most probable labels, highest first (0 = every label).',
    }),
    reject: Type.Array(RejectActionConfig, { default: [], description: 'Actions for defective parts.' }),
    reject_uncertain: Type.Boolean({
      default: true,
      description: 'An uncertain part also gets the reject actions (a line cannot pass a part it could not judge).',
    }),
    fail_safe: Type.Union([Type.Literal('reject'), Type.Literal('pass')], {
      default: 'reject',
      description: 'What a dropped, failed or late part gets; reject runs the reject actions.',
    }),
    publish_good: Type.Union([Type.Literal('all'), Type.Literal('none'), Type.Number({ minimum: 0, maximum: 1 })], {
      default: 'all',
      description: 'Good results published: all, none, or a sampled fraction (defective/uncertain always).',
    }),
    review: Type.Object(
      {
        dir: Type.Optional(Type.String({ minLength: 1, description: 'Absent: review images are not kept.' })),
        max_bytes: Type.Integer({ minimum: 0, default: 200 * 1024 * 1024 }),
        max_files: Type.Integer({ minimum: 0, default: 1000 }),
        keep: Type.Array(Type.Union([Type.Literal('defective'), Type.Literal('uncertain'), Type.Literal('good')]), {
          default: ['defective', 'uncertain'],
        }),
        sample_good: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Fraction of good frames kept.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    sharp_concurrency: Type.Integer({
      minimum: 0,
      maximum: 64,
      default: 1,
      description: 'libvips threads per image (sharp issue 2607: keep low on glibc for long-running processes).',
    }),
    shadow_frames: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 5,
      description: 'A new model answers this many live frames in shadow before it takes over.',
    }),
  },
  'Camera inspection: frames → sharp → onnxruntime → verdict → reject (docs/vision.md).',
);

export type VisionConfig = Static<typeof VisionConfigSchema>;
export type VisionModelConfig = Static<typeof ModelConfig>;
export type CameraSource = Static<typeof CameraSourceConfig>;
export type RejectAction = Static<typeof RejectActionConfig>;
export type Provider = Static<typeof ProviderName>;
