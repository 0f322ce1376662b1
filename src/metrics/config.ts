import { Type, type Static } from '@sinclair/typebox';
import { section, Port, Host } from '../config/sections.js';

export const MetricsConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true }),
    host: Host('127.0.0.1', 'Address the Prometheus endpoint binds to.'),
    port: Port(9464, 'Prometheus metrics port; served at /metrics.'),
  },
  'Prometheus metrics.',
);
export type MetricsConfig = Static<typeof MetricsConfigSchema>;
