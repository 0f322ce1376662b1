/**
 * aedes-persistence@11's own conformance suite (node_modules/aedes-persistence/abstract.js, the one
 * aedes-persistence-redis/-mongodb run) against SqlitePersistence on real SQLite files.
 * abstract.js takes node:test's `test` directly; each test builds a fresh instance on its own file.
 * It runs twice, as aedes-persistence runs its memory backend: through the async interface aedes
 * 1.x calls (test-directAsync.js) and through its callback layer (test-sync.js).
 */
import { describe, it, after } from 'node:test';
import { createRequire } from 'node:module';
import { SqlitePersistence, sqliteCallbackPersistence } from '../../../src/broker/persistence/index.js';
import { TempDbs } from './persistence-helpers.js';

interface AbstractOptions {
  test: typeof it;
  persistence: () => object;
  testAsync?: boolean;
  waitForReady?: boolean;
}
const require = createRequire(import.meta.url);
const abstractSuite = require('aedes-persistence/abstract.js') as (opts: AbstractOptions) => void;

const dbs = new TempDbs();
after(() => dbs.cleanup());

describe('aedes-persistence abstract suite, async interface (aedes 1.x)', () => {
  abstractSuite({ test: it, persistence: () => new SqlitePersistence({ db: dbs.openDb() }), testAsync: true });
});

describe('aedes-persistence abstract suite, callback interface', () => {
  abstractSuite({ test: it, persistence: () => sqliteCallbackPersistence({ db: dbs.openDb() }) });
});
