import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

export const OtaConfigSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'OTA client on. It does nothing until channel_url and trusted_keys are set.',
    }),
    channel_url: Type.String({
      default: '',
      maxLength: 2048,
      description: 'http(s) URL of the signed manifest (docs/ota.md); empty: no update checks.',
    }),
    trusted_keys: Type.Array(Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$' }), {
      default: [],
      maxItems: 16,
      description: 'ed25519 public keys (raw 32 bytes, base64) a manifest must be signed by; several for key rotation.',
    }),
    check_interval_s: Type.Integer({
      minimum: 60,
      maximum: 604800,
      default: 21600,
      description: 'Check the channel this often (±20 % jitter so a fleet does not check at once).',
    }),
    auto_apply: Type.Boolean({
      default: true,
      description:
        'Install an applicable release found by a periodic check; false: only report it (ctl ota apply installs).',
    }),
    install_root: Type.String({
      default: '',
      description:
        'A/B install root (releases/, current, previous); empty: derived from where the gateway runs (/opt/edge-gateway/releases/<v>/...).',
    }),
    health_window_s: Type.Integer({
      minimum: 10,
      maximum: 3600,
      default: 120,
      description: 'A new release must stay healthy this long after start before it is committed.',
    }),
    max_trial_starts: Type.Integer({
      minimum: 1,
      maximum: 10,
      default: 3,
      description: 'Starts a release on trial gets (counted by systemd/edge-gateway-trial) before it is rolled back.',
    }),
    read_timeout_ms: Type.Integer({
      minimum: 1000,
      maximum: 600000,
      default: 30000,
      description: 'A download that receives nothing for this long is retried (resuming).',
    }),
  },
  'Over-the-air updates: signed manifest, resumable download, A/B releases, trial and rollback (docs/ota.md).',
);

export type OtaConfig = Static<typeof OtaConfigSchema>;
