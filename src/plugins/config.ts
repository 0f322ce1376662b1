import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

const Ms = (def: number, description: string, max = 600_000) =>
  Type.Integer({ minimum: 1, maximum: max, default: def, description });

/** One enabled plugin; list order is load order and the order of its reading hooks in the pipeline. */
export const PluginEntrySchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[a-z][a-z0-9-]{0,31}$',
      description: 'Plugin name; must equal the name the plugin declares (CoAP /plugins/{name}, metric prefix).',
    }),
    path: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: 'Folder or module file; relative paths are resolved against plugins.dir. Default: {dir}/{name}.',
      }),
    ),
    enabled: Type.Boolean({ default: true }),
    isolation: Type.Union([Type.Literal('inline'), Type.Literal('worker')], {
      default: 'inline',
      description: 'inline: in the gateway thread (fast, guarded); worker: own worker thread with a heap limit.',
    }),
    config: Type.Record(Type.String(), Type.Unknown(), {
      default: {},
      description: "The plugin's own config, validated against its configSchema and frozen.",
    }),
    driver_types: Type.Array(Type.String({ pattern: '^x-[a-z0-9][a-z0-9-]{0,47}$' }), {
      maxItems: 16,
      default: [],
      description: 'Driver types (x-...) this plugin provides; drivers: entries may use them.',
    }),
    hook_budget_ms: Type.Optional(Ms(100, 'Override of plugins.hook_budget_ms for this plugin.', 60_000)),
    max_heap_mb: Type.Optional(Type.Integer({ minimum: 8, maximum: 4096, description: 'Worker heap limit override.' })),
  },
  { additionalProperties: false },
);

export const PluginsConfigSchema = section(
  {
    enabled: Type.Boolean({ default: false }),
    dir: Type.String({ minLength: 1, default: './plugins', description: 'Folder of plugin folders.' }),
    plugins: Type.Array(PluginEntrySchema, { maxItems: 64, default: [] }),
    setup_timeout_ms: Ms(10_000, 'setup(ctx) must resolve within this; otherwise the plugin is failed.'),
    shutdown_timeout_ms: Ms(3_000, 'onClose callbacks and the worker get this long when a plugin stops.'),
    hook_budget_ms: Ms(
      100,
      'A hook slower than this is reported; an async hook not settled by then counts as a failure; a worker hook not answering within it gets the worker terminated.',
      60_000,
    ),
    max_inflight: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 1000,
      description: 'Async hook calls of one plugin not settled yet; beyond it calls are skipped and counted.',
    }),
    quarantine_after: Type.Integer({
      minimum: 1,
      maximum: 1_000_000_000,
      default: 100,
      description: 'Failures (throws, timeouts) within quarantine_window_s that quarantine a plugin.',
    }),
    quarantine_window_s: Type.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
    worker_restarts: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 3,
      description: 'A worker killed (budget, heap, crash) is restarted this many times with backoff, then quarantined.',
    }),
    worker_heap_mb: Type.Integer({
      minimum: 8,
      maximum: 4096,
      default: 64,
      description: 'resourceLimits.maxOldGenerationSizeMb of a worker.',
    }),
    retry: Type.Object(
      {
        min_ms: Ms(1_000, 'First retry of a plugin whose setup said "not ready".'),
        max_ms: Ms(300_000, 'Backoff ceiling.', 3_600_000),
      },
      { additionalProperties: false, default: {} },
    ),
    safe_mode: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        crash_starts: Type.Integer({
          minimum: 2,
          maximum: 100,
          default: 3,
          description: 'Starts in a row that did not run healthy_after_s: the next one loads no plugin.',
        }),
        healthy_after_s: Type.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  'Site plugins (docs/plugins.md).',
);

export type PluginsConfig = Static<typeof PluginsConfigSchema>;
export type PluginEntry = Static<typeof PluginEntrySchema>;
