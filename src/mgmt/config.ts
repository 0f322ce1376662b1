import { Type, type Static } from '@sinclair/typebox';
import { AllowSources, section, Secret } from '../config/sections.js';

export const MgmtConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true, description: 'Serve /mgmt/... on the CoAP server.' }),
    read_token: Type.Optional(
      Secret(
        'Token that may GET and observe /mgmt resources. If absent, one is generated into {data_dir}/mgmt-tokens.json.',
      ),
    ),
    admin_token: Type.Optional(
      Secret(
        'Token that may also PUT/POST /mgmt resources. If absent, one is generated into {data_dir}/mgmt-tokens.json.',
      ),
    ),
    allow_sources: AllowSources(
      'Source addresses (CIDR) that may use /mgmt (also bounded by coap.allow_sources); others get 4.03 before their token is looked at. Tokens travel in clear UDP: keep this to trusted networks.',
    ),
    auth_failures_per_min: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 10,
      description:
        'Failed authentications allowed per source address per minute; beyond it the source gets 4.29 for a while.',
    }),
    status_min_interval_ms: Type.Integer({
      minimum: 100,
      maximum: 600000,
      default: 1000,
      description: 'Observers of /mgmt/status get at most one notification per this interval (on change).',
    }),
    audit_max_rows: Type.Integer({
      minimum: 100,
      default: 10000,
      description: 'Management writes kept in the audit table; older rows are deleted.',
    }),
  },
  'Management over CoAP (/mgmt/...): tokens, limits, audit.',
);
export type MgmtConfig = Static<typeof MgmtConfigSchema>;
