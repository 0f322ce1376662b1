import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

/**
 * `status_page:` — the read-only local web page (docs/status-page.md). It is served by the metrics
 * HTTP server (same host/port as /metrics and /health), so it has no listener settings of its own.
 */
export const StatusPageConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true, description: 'Serve the status page at /status/ on the metrics port.' }),
    update_interval_ms: Type.Integer({
      minimum: 250,
      maximum: 60000,
      default: 2000,
      description: 'How often open pages get fresh figures (Server-Sent Events).',
    }),
    quiet_after_s: Type.Integer({
      minimum: 1,
      maximum: 86400,
      default: 300,
      description: 'An online device not heard from for this long is shown as quiet.',
    }),
    max_clients: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 8,
      description: 'Open pages (event streams) at once; more are refused with 503.',
    }),
    require_token: Type.Union([Type.Literal('auto'), Type.Literal('always')], {
      default: 'auto',
      description:
        'auto: ask for the management read token when the metrics listener is bound beyond loopback; always: ask even on loopback (a reverse proxy or SSH tunnel in front).',
    }),
    session_hours: Type.Integer({
      minimum: 1,
      maximum: 720,
      default: 12,
      description: 'How long the login cookie lasts (only used when the page is bound beyond loopback).',
    }),
  },
  'Read-only status page on the metrics HTTP server.',
);
export type StatusPageConfig = Static<typeof StatusPageConfigSchema>;
