/**
 * Broker persistence on the gateway's SQLite database. Entry point for the broker:
 *
 *   import { SqlitePersistence } from './persistence/index.js';
 *   const persistence = new SqlitePersistence({ db, log });
 *   const broker = await Aedes.createBroker({ persistence, ... });
 *   // shutdown: close the broker, then `await persistence.destroy()`, then close the DB.
 *
 * `sqliteCallbackPersistence` is the same store behind aedes-persistence's callback layer, for
 * callers of the pre-1.0 aedes callback API (and the abstract suite's callback mode).
 */
import { createRequire } from 'node:module';
import { SqlitePersistence, type SqlitePersistenceOptions } from './sqlite-persistence.js';

export { SqlitePersistence };
export type { SqlitePersistenceOptions, PersistenceStats } from './sqlite-persistence.js';

type CallBackPersistenceCtor = new (factory: (opts: unknown) => SqlitePersistence, opts?: unknown) => object;
const require = createRequire(import.meta.url);
const { CallBackPersistence } = require('aedes-persistence/callBackPersistence.js') as {
  CallBackPersistence: CallBackPersistenceCtor;
};

export function sqliteCallbackPersistence(opts: SqlitePersistenceOptions): object {
  return new CallBackPersistence(() => new SqlitePersistence(opts));
}
