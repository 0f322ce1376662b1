import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

export const DeadLettersConfigSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Keep payloads that were acknowledged but could not be accepted (table dead_letters in gateway.db).',
    }),
    max_rows: Type.Integer({
      minimum: 10,
      maximum: 1000000,
      default: 10000,
      description: 'Most dead letters kept; beyond it the oldest are deleted.',
    }),
    max_bytes: Type.Integer({
      minimum: 65536,
      default: 16 * 1024 * 1024,
      description: 'Most payload bytes kept in all; beyond it the oldest are deleted.',
    }),
    max_age_s: Type.Integer({
      minimum: 60,
      default: 7 * 86400,
      description: 'Dead letters older than this (wall clock) are deleted.',
    }),
    max_payload_bytes: Type.Integer({
      minimum: 256,
      maximum: 1048576,
      default: 65536,
      description: 'Longest payload kept per dead letter; longer ones are cut (marked truncated).',
    }),
    uplink: Type.Boolean({
      default: false,
      description: 'Also send each dead letter to the cloud at LOW priority (topic deadletters/{deviceId}).',
    }),
  },
  'Dead letters: refused payloads kept for inspection (/mgmt/deadletters, edge-gateway ctl deadletters).',
);
export type DeadLettersConfig = Static<typeof DeadLettersConfigSchema>;
