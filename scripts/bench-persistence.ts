/**
 * Broker persistence benchmark: SqlitePersistence (real SQLite file, WAL, synchronous=NORMAL) vs
 * aedes-persistence's in-memory backend (asyncPersistence.js, the class aedes' default wraps), one
 * run, same operations through the same async interface. 10,000 retained messages and 10,000
 * outgoing QoS 1 messages, 100-byte payloads.
 *
 *   npx tsc -p . && node dist/scripts/bench-persistence.js [count]
 *
 * Writes run with 100 in flight (about what 100 publishing clients give aedes; group commit
 * shares one transaction between them) and, for the store, also one at a time (the worst case:
 * one commit per message).
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { openDatabase } from '../src/store/db.js';
import { SqlitePersistence } from '../src/broker/persistence/index.js';

interface P {
  setup(broker: { id: string }): Promise<void>;
  storeRetained(packet: object): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
  outgoingUpdate(client: { id: string }, packet: object): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown>;
  outgoingStream(client: { id: string }): Readable;
  destroy(): Promise<void>;
}

const require = createRequire(import.meta.url);
const AsyncMemory = require('aedes-persistence/asyncPersistence.js') as new () => P;

const N = Number(process.argv[2] ?? 10_000);
const PAYLOAD = Buffer.alloc(100, 0x61);
const broker = { id: 'bench', counter: 0 };

async function inFlight(n: number, width: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function run(make: () => P): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  const retainedPacket = (i: number): object => ({
    cmd: 'publish',
    topic: `sensors/dev${i}/status`,
    payload: PAYLOAD,
    qos: 1,
    retain: true,
  });
  let p = make();
  await p.setup(broker);
  r['store retained, 1 in flight'] = await time(() => inFlight(N, 1, (i) => p.storeRetained(retainedPacket(i))));
  await p.destroy();
  p = make();
  await p.setup(broker);
  r['store retained, 100 in flight'] = await time(() => inFlight(N, 100, (i) => p.storeRetained(retainedPacket(i))));
  r['read retained, sensors/+/status'] = await time(async () => {
    const n = (await p.createRetainedStreamCombi(['sensors/+/status']).toArray()).length;
    if (n !== N) throw new Error(`read ${n} retained, expected ${N}`);
  });
  r['read retained, 1 topic per stream'] = await time(() =>
    inFlight(N, 1, async (i) => {
      await p.createRetainedStreamCombi([`sensors/dev${i}/status`]).toArray();
    }),
  );

  // Outgoing QoS 1 for a persistent client that was offline: enqueue, then the reconnect drain
  // aedes runs (stream the queue, assign a packet id, PUBACK clears it).
  const client = { id: 'dev-offline' };
  r['enqueue QoS 1, 100 in flight'] = await time(() =>
    inFlight(N, 100, (i) =>
      p.outgoingEnqueueCombi([{ clientId: client.id }], {
        cmd: 'publish',
        topic: `commands/${client.id}`,
        payload: PAYLOAD,
        qos: 1,
        retain: false,
        brokerId: broker.id,
        brokerCounter: i + 1,
      }),
    ),
  );
  r['drain QoS 1 (stream+update+ack)'] = await time(async () => {
    let id = 0;
    const acks: Array<Promise<unknown>> = [];
    for await (const pkt of p.outgoingStream(client)) {
      const packet = pkt as Record<string, unknown>;
      packet.messageId = (id++ % 65535) + 1;
      await p.outgoingUpdate(client, packet);
      acks.push(p.outgoingClearMessageId(client, { cmd: 'puback', messageId: packet.messageId }));
      if (acks.length >= 100) await Promise.all(acks.splice(0));
    }
    await Promise.all(acks);
    if (id !== N) throw new Error(`drained ${id}, expected ${N}`);
  });
  await p.destroy();
  return r;
}

const dir = mkdtempSync(join(tmpdir(), 'egw-bench-persist-'));
try {
  let k = 0;
  const memory = await run(() => new AsyncMemory());
  const sqlite = await run(
    () => new SqlitePersistence({ db: openDatabase({ path: join(dir, `b${++k}.sqlite`), durability: 'normal' }) }),
  );
  console.log(`broker persistence, ${N} messages of ${PAYLOAD.length} B — node ${process.version}, ${process.arch}`);
  console.log(
    'operation'.padEnd(36),
    'memory msg/s'.padStart(14),
    'sqlite msg/s'.padStart(14),
    'sqlite/memory'.padStart(14),
  );
  for (const name of Object.keys(memory)) {
    const m = N / (memory[name]! / 1000);
    const s = N / (sqlite[name]! / 1000);
    console.log(
      name.padEnd(36),
      m.toFixed(0).padStart(14),
      s.toFixed(0).padStart(14),
      `${((s / m) * 100).toFixed(1)} %`.padStart(14),
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
