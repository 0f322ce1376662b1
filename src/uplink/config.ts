import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

export const UplinkConfigSchema = section(
  {
    enabled: Type.Boolean({ default: false, description: 'Off by default so the default config runs with no cloud.' }),
    url: Type.String({ default: 'mqtt://127.0.0.1:1884' }),
  },
  'Uplink to the cloud MQTT broker.',
);
export type UplinkConfig = Static<typeof UplinkConfigSchema>;
