import { Type, type Static } from '@sinclair/typebox';
import { section, Secret } from '../config/sections.js';

export const MgmtConfigSchema = section(
  {
    read_token: Type.Optional(Secret('Token that may GET and observe /mgmt resources.')),
    admin_token: Type.Optional(Secret('Token that may also PUT/POST /mgmt resources.')),
  },
  'Management over CoAP (/mgmt/...).',
);
export type MgmtConfig = Static<typeof MgmtConfigSchema>;
