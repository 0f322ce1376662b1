import { Type, type Static } from '@sinclair/typebox';
import { section } from './sections.js';
import { BrokerConfigSchema } from '../broker/config.js';
import { CoapConfigSchema } from '../coap/config.js';
import { MgmtConfigSchema } from '../mgmt/config.js';
import { MetricsConfigSchema } from '../metrics/config.js';
import { DriversConfigSchema } from '../drivers/config.js';
import { DeadLettersConfigSchema } from '../deadletters/config.js';
import { QueueConfigSchema } from '../queue/config.js';
import { UplinkConfigSchema } from '../uplink/config.js';
import { AnalyticsConfigSchema } from '../analytics/config.js';
import { HistoryConfigSchema } from '../history/config.js';
import { OtaConfigSchema } from '../ota/config.js';
import { StatusPageConfigSchema } from '../status/config.js';
import { VisionConfigSchema } from '../vision/config.js';
import { PublisherConfigSchema } from '../publisher/config.js';
import { PluginsConfigSchema } from '../plugins/config.js';

/** The config format version this build reads; older files are migrated (see migrate.ts). */
export const CONFIG_VERSION = 1;

const LogLevel = Type.Union(
  [
    Type.Literal('fatal'),
    Type.Literal('error'),
    Type.Literal('warn'),
    Type.Literal('info'),
    Type.Literal('debug'),
    Type.Literal('trace'),
    Type.Literal('silent'),
  ],
  { default: 'info' },
);

/**
 * The single source of the config: TypeScript types (Static), defaults (`default`) and the JSON
 * Schema published as config/gateway.schema.json all come from here. Each module owns its section.
 */
export const ConfigSchema = Type.Object(
  {
    version: Type.Literal(CONFIG_VERSION, { description: 'Config format version.' }),
    gateway: section(
      {
        id: Type.String({
          pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$',
          default: 'gw-1',
          description: 'Gateway id; part of uplink topics (edge/{id}/...).',
        }),
        data_dir: Type.String({ minLength: 1, default: './data', description: 'SQLite database and state files.' }),
        log_level: LogLevel,
        durability: Type.Union([Type.Literal('normal'), Type.Literal('full')], {
          default: 'normal',
          description: 'normal survives a process crash; full also survives power loss (fsync per commit).',
        }),
        shutdown_timeout_ms: Type.Integer({ minimum: 100, maximum: 60000, default: 10000 }),
      },
      'Identity, data directory and logging.',
    ),
    broker: BrokerConfigSchema,
    coap: CoapConfigSchema,
    mgmt: MgmtConfigSchema,
    metrics: MetricsConfigSchema,
    drivers: DriversConfigSchema,
    deadletters: DeadLettersConfigSchema,
    queue: QueueConfigSchema,
    uplink: UplinkConfigSchema,
    history: HistoryConfigSchema,
    analytics: AnalyticsConfigSchema,
    ota: OtaConfigSchema,
    status_page: StatusPageConfigSchema,
    vision: VisionConfigSchema,
    publisher: PublisherConfigSchema,
    plugins: PluginsConfigSchema,
  },
  { additionalProperties: false, $id: 'edge-gateway-config', title: 'edge-gateway config' },
);

export type GatewayConfig = Static<typeof ConfigSchema>;
