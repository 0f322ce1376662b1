import { Type, type Static } from '@sinclair/typebox';
import { commonDriverKeys } from '../common-config.js';

export const SignalSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$', description: 'Value name.' }),
    unit: Type.Optional(Type.String({ maxLength: 32 })),
    base: Type.Number({ default: 20, description: 'Mean value.' }),
    amplitude: Type.Number({ default: 5, description: 'Sine amplitude.' }),
    period_s: Type.Number({ exclusiveMinimum: 0, default: 600, description: 'Sine period in seconds.' }),
    noise: Type.Number({ minimum: 0, default: 0.2, description: 'Standard deviation of Gaussian noise.' }),
    spike_probability: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.01,
      description: 'Chance per sample of a spike.',
    }),
    spike_magnitude: Type.Number({ default: 20, description: 'Size of a spike (sign random).' }),
  },
  { additionalProperties: false },
);
export type SignalConfig = Static<typeof SignalSchema>;

export const SimulatedConfigSchema = Type.Object(
  {
    ...commonDriverKeys('simulated'),
    interval_ms: Type.Integer({
      minimum: 10,
      maximum: 3600000,
      default: 1000,
      description: 'One reading every interval.',
    }),
    dropout_probability: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.01,
      description: 'Chance per sample that the sensor "drops out": values null, quality bad.',
    }),
    seed: Type.Optional(Type.Integer({ description: 'Random seed, for repeatable demos and tests.' })),
    signals: Type.Array(SignalSchema, {
      minItems: 1,
      maxItems: 64,
      default: [
        // Complete entries: ajv does not apply nested defaults inside a default value.
        {
          name: 'temperature',
          unit: '°C',
          base: 21,
          amplitude: 4,
          period_s: 600,
          noise: 0.2,
          spike_probability: 0.01,
          spike_magnitude: 15,
        },
        {
          name: 'humidity',
          unit: '%',
          base: 45,
          amplitude: 10,
          period_s: 900,
          noise: 0.5,
          spike_probability: 0.005,
          spike_magnitude: 30,
        },
      ],
      description: 'Synthetic values: base + amplitude·sin(2πt/period) + noise, with occasional spikes.',
    }),
  },
  { additionalProperties: false },
);
export type SimulatedConfig = Static<typeof SimulatedConfigSchema>;
