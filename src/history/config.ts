import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

export const HistoryConfigSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description:
        'Keep recent readings per device in SQLite (GET /sensors/{id}/history, rules backtest, status page).',
    }),
    min_interval_s: Type.Number({
      minimum: 0,
      maximum: 86400,
      default: 10,
      description:
        'Keep at most one reading per device per this many seconds (the latest of each interval); 0 keeps every reading (more SD-card writes).',
    }),
    max_rows_per_device: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 8640,
      description: 'Oldest rows of a device go first beyond this (8640 = one day at 10 s).',
    }),
    max_age_s: Type.Integer({
      minimum: 60,
      maximum: 31_536_000,
      default: 604_800,
      description: 'Rows older than this go.',
    }),
    max_devices: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 2000,
      description: 'Devices kept at most; readings of further devices are not kept (counted).',
    }),
    flush_interval_ms: Type.Integer({
      minimum: 100,
      maximum: 600_000,
      default: 5000,
      description: 'Kept readings are written in one transaction this often.',
    }),
  },
  'Bounded local history of readings (docs/history.md).',
);

export type HistoryConfig = Static<typeof HistoryConfigSchema>;
