/**
 * Child process for broker-ack-commit.test.ts: the gateway's real BrokerService (policy,
 * aedes, SqlitePersistence on a WAL SQLite file) without the other capabilities, so that 100
 * kill -9 / restart rounds fit in a CI time budget (the full gateway takes ~1 s to start here).
 * Usage: node broker-crash-child.js DB_PATH  → prints `{"port":N}` once listening.
 */
import { Value } from '@sinclair/typebox/value';
import { Registry } from 'prom-client';
import { BrokerService } from '../../src/broker/broker.js';
import { BrokerConfigSchema, type BrokerConfig } from '../../src/broker/config.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { createLogger } from '../../src/log/logger.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { openDatabase } from '../../src/store/db.js';

const path = process.argv[2];
if (!path) throw new Error('usage: broker-crash-child.js DB_PATH');
const log = createLogger({ level: 'warn' });
const db = openDatabase({ path, durability: 'normal' });
const config = Value.Default(BrokerConfigSchema, { port: 0 }) as BrokerConfig;
const broker = new BrokerService({
  config,
  log,
  pipeline: new Pipeline({ log, maxPending: 100000 }),
  devices: new DeviceRegistry(db),
  registry: new Registry(),
  db,
});
await broker.start();
process.stdout.write(`${JSON.stringify({ port: broker.port })}\n`);
