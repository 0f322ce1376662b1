import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

const Num = (description: string) => Type.Number({ description });
const Seconds = (description: string, def?: number) =>
  Type.Number({ minimum: 0, maximum: 31_536_000, description, ...(def === undefined ? {} : { default: def }) });

/** Window a rule's statistics (z-score, rate of change) are computed over (docs/analytics.md). */
export const WindowConfig = Type.Union(
  [
    Type.Object(
      {
        kind: Type.Literal('sliding'),
        count: Type.Optional(Type.Integer({ minimum: 2, maximum: 10000, description: 'Last N samples.' })),
        duration_s: Type.Optional(Seconds('Samples of the last T seconds.')),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        kind: Type.Literal('tumbling'),
        count: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
        duration_s: Type.Optional(Seconds('Consecutive windows of T seconds.')),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        kind: Type.Literal('hopping'),
        duration_s: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
        hop_s: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
      },
      { additionalProperties: false },
    ),
  ],
  { description: 'sliding (count and/or duration_s), tumbling (count or duration_s) or hopping (duration_s, hop_s).' },
);

const Scalar = Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean()]);

/**
 * One condition. Exactly one key: a comparison, a z-score, a rate of change, string equality or
 * silence. `clear` takes the same shape (hysteresis: raise above 80, clear below 75).
 */
export const ConditionConfig = Type.Union(
  [
    Type.Object({ above: Num('value > N') }, { additionalProperties: false }),
    Type.Object({ at_least: Num('value ≥ N') }, { additionalProperties: false }),
    Type.Object({ below: Num('value < N') }, { additionalProperties: false }),
    Type.Object({ at_most: Num('value ≤ N') }, { additionalProperties: false }),
    Type.Object({ equals: Scalar }, { additionalProperties: false }),
    Type.Object({ not_equals: Scalar }, { additionalProperties: false }),
    Type.Object(
      { zscore_above: Type.Number({ exclusiveMinimum: 0, description: '|x − mean| / σ of the window > N' }) },
      { additionalProperties: false },
    ),
    Type.Object(
      { rate_above: Num('rate of change over the window, per second, > N') },
      { additionalProperties: false },
    ),
    Type.Object(
      { rate_below: Num('rate of change over the window, per second, < N') },
      { additionalProperties: false },
    ),
    Type.Object(
      { no_data_s: Type.Number({ exclusiveMinimum: 0, maximum: 31_536_000, description: 'no reading for T seconds' }) },
      { additionalProperties: false },
    ),
  ],
  {
    description:
      'One of: above, at_least, below, at_most, equals, not_equals, zscore_above, rate_above, rate_below, no_data_s.',
  },
);

/** A device command sent on `commands/{device}` (local MQTT: devices and driver-owned devices alike). */
export const CommandConfig = Type.Object(
  {
    device: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$',
        description: 'Target device id (default: the device that raised the alert).',
      }),
    ),
    payload: Type.Unknown({ description: 'JSON payload of the command, e.g. { write: { setpoint: 60 } }.' }),
  },
  { additionalProperties: false },
);

export const RuleConfig = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$', description: 'Unique rule name.' }),
    devices: Type.String({
      minLength: 1,
      maxLength: 128,
      default: '*',
      description: 'Device id or glob (* any run of characters, ? one character).',
    }),
    value: Type.String({ minLength: 1, maxLength: 128, description: 'Value name in the reading (dotted for nested).' }),
    when: ConditionConfig,
    clear: Type.Optional(ConditionConfig),
    for_s: Seconds('The condition must hold this long before the alert is raised.', 0),
    repeat: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 1,
      description: 'And for this many consecutive readings.',
    }),
    clear_for_s: Seconds('The clear condition must hold this long before the alert clears.', 0),
    clear_after_silence_s: Type.Optional(Seconds('An active alert clears after this long without readings.')),
    cooldown_s: Seconds('After a clear, the rule does not raise again for this long.', 0),
    max_per_hour: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 20,
      description: 'Flood limit: raises per device and rule per hour; beyond it raises are suppressed and counted.',
    }),
    window: Type.Optional(WindowConfig),
    warmup: Type.Integer({
      minimum: 0,
      maximum: 10000,
      default: 30,
      description: 'zscore_above: samples in the window before a score is computed.',
    }),
    min_sigma: Type.Number({
      minimum: 0,
      default: 1e-9,
      description: 'zscore_above: σ below this is taken as this (a flat signal does not divide by zero).',
    }),
    severity: Type.Union(
      [Type.Literal('critical'), Type.Literal('major'), Type.Literal('minor'), Type.Literal('info')],
      {
        default: 'critical',
      },
    ),
    priority: Type.Union(
      [Type.Literal('CRITICAL'), Type.Literal('HIGH'), Type.Literal('MEDIUM'), Type.Literal('LOW')],
      { default: 'CRITICAL', description: "Uplink class of this rule's alerts." },
    ),
    message: Type.Optional(Type.String({ maxLength: 256, description: 'Text in the alert; {device} {value} {rule}.' })),
    on_raise: Type.Optional(CommandConfig),
    on_clear: Type.Optional(CommandConfig),
  },
  { additionalProperties: false },
);

export const AnalyticsConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true, description: 'Evaluate the rules below on every accepted reading.' }),
    rules: Type.Array(RuleConfig, {
      default: [],
      maxItems: 1000,
      description: 'Threshold, z-score, rate and silence rules.',
    }),
    max_alerts_per_device_per_hour: Type.Integer({
      minimum: 1,
      maximum: 36000,
      default: 100,
      description: 'Flood limit across all rules of one device.',
    }),
    persist_interval_s: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 30,
      description:
        'Rule state (durations, windows, open alerts) is written to SQLite this often (changed tracks only) and at stop.',
    }),
    max_tracks: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 50000,
      description: '(rule, device) pairs tracked at most; beyond it new devices are not evaluated (counted).',
    }),
  },
  'Stream analytics and rules (docs/analytics.md).',
);

export type AnalyticsConfig = Static<typeof AnalyticsConfigSchema>;
export type RuleSpec = Static<typeof RuleConfig>;
export type ConditionSpec = Static<typeof ConditionConfig>;
export type WindowConfigSpec = Static<typeof WindowConfig>;
