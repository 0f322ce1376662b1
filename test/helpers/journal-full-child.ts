// Child of test/unit/queue/journal.test.ts ("file size limit"): runs under `prlimit --fsize`, so
// the journal's appends fail (EFBIG) once the file reaches the limit, as on a full disk. Enqueues
// numbered 4 KiB messages until several were refused, prints which were acknowledged and how the
// refusals were coded, and exits without closing (as a crash would).
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { binaryReadingCodec } from '../../src/queue/codec.js';
import { Outbox } from '../../src/queue/outbox.js';
import { openDatabase } from '../../src/store/db.js';

const dir = process.argv[2]!;
const config = parseConfig('version: 1\nqueue:\n  outbox:\n    commit_wait_ms: 1\n').queue;
const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
const outbox = new Outbox({
  db,
  log: pino({ level: 'silent' }),
  config,
  codec: binaryReadingCodec,
  journal: { path: join(dir, 'outbox.journal'), fsync: false },
});
const acked: number[] = [];
const codes: string[] = [];
for (let i = 0; i < 1000 && codes.length < 5; i++) {
  const payload = Buffer.alloc(4096, i % 251);
  payload.writeUInt32BE(i, 0);
  try {
    await outbox.enqueue({ topic: `m/${i % 3}`, payload, priority: 'LOW' });
    acked.push(i);
  } catch (err) {
    codes.push((err as { code?: string }).code ?? String(err));
  }
}
process.stdout.write(JSON.stringify({ acked, codes, failing: outbox.failing }) + '\n');
process.exit(0);
