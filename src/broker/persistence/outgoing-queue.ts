import { Readable } from 'node:stream';
import type { Logger } from '../../log/logger.js';
import { encodePacket, decodePacket, type PacketObject } from './codec.js';
import { Packet } from './matching.js';
import { sqlValue, type PacketRow, type Statements } from './statements.js';
import type { WriteBatch } from './write-batch.js';

/** Index entry of one queued packet; the packet body is the mqtt_outgoing row `seq`. */
interface OutEntry {
  seq: number;
  brokerId: unknown;
  brokerCounter: unknown;
  messageId: unknown;
}

interface OutRow {
  seq: number;
  client_id: string;
  broker_id: string | null;
  broker_counter: number | null;
  message_id: number | null;
}

function messageIdOf(packet: unknown): unknown {
  return packet !== null && typeof packet === 'object' ? (packet as { messageId?: unknown }).messageId : undefined;
}

/**
 * Outgoing queues of persistent sessions (queued and in-flight QoS 1/2 packets, PUBRELs): the
 * memory backend's per-client arrays and search rules, with only (seq, brokerId, brokerCounter,
 * messageId) kept in memory and the packet bodies in mqtt_outgoing.
 */
export class OutgoingQueues {
  private queues = new Map<string, OutEntry[]>();
  private nextSeq = 1;
  dropped = 0;

  constructor(
    private readonly st: Statements,
    private readonly batch: WriteBatch,
    private readonly maxQueued: number,
    private readonly log: Logger | undefined,
  ) {}

  get size(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  load(): void {
    this.queues = new Map();
    let maxSeq = 0;
    for (const r of this.st.outIndex.all() as OutRow[]) {
      let queue = this.queues.get(r.client_id);
      if (queue === undefined) this.queues.set(r.client_id, (queue = []));
      queue.push({
        seq: r.seq,
        brokerId: r.broker_id ?? undefined,
        brokerCounter: r.broker_counter ?? undefined,
        messageId: r.message_id ?? undefined,
      });
      maxSeq = r.seq;
    }
    this.nextSeq = maxSeq + 1;
  }

  async enqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void> {
    if (subs.length === 0) return;
    // The memory backend queues `new Packet(packet)` per subscriber; it is the same value for all.
    const p = new Packet(packet);
    const e = encodePacket(p);
    for (const sub of subs) {
      const id = sub.clientId;
      let queue = this.queues.get(id);
      if (queue === undefined) this.queues.set(id, (queue = []));
      if (this.maxQueued > 0 && queue.length >= this.maxQueued && !this.dropOldest(id, queue)) continue;
      const entry: OutEntry = {
        seq: this.nextSeq++,
        brokerId: p.brokerId,
        brokerCounter: p.brokerCounter,
        messageId: p.messageId,
      };
      queue.push(entry);
      const args = [
        entry.seq,
        id,
        sqlValue(entry.brokerId),
        sqlValue(entry.brokerCounter),
        sqlValue(entry.messageId),
        e.head,
        e.payload,
        e.extra,
      ];
      this.batch.queue(() => this.st.outInsert.run(args));
    }
    return this.batch.current();
  }

  /** Makes room in a full queue; false when every entry is in flight (the new one is dropped). */
  private dropOldest(clientId: string, queue: OutEntry[]): boolean {
    this.dropped++;
    if (this.dropped === 1 || this.dropped % 1000 === 0) {
      this.log?.warn(
        { clientId, limit: this.maxQueued, dropped: this.dropped },
        'outgoing queue full, dropping oldest queued message',
      );
    }
    const i = queue.findIndex((en) => en.messageId === undefined);
    if (i < 0) return false;
    const [victim] = queue.splice(i, 1);
    this.batch.queue(() => this.st.outDelete.run(victim!.seq));
    return true;
  }

  async update(client: { id: string }, packet: PacketObject): Promise<void> {
    const queue = this.queues.get(client.id) ?? [];
    for (const entry of queue) {
      if (entry.brokerId === packet.brokerId) {
        if (entry.brokerCounter === packet.brokerCounter) {
          entry.messageId = packet.messageId;
          const mid = sqlValue(packet.messageId);
          return this.batch.add(() => this.st.outSetMessageId.run(mid, entry.seq));
        }
        // Packet ids wrap at 65535; brokerCounter tells apart two packets with the same id.
      } else if (entry.messageId === packet.messageId) {
        // A PUBREL (or a packet from another broker) takes the place of the queued packet.
        entry.brokerId = packet.brokerId;
        entry.brokerCounter = packet.brokerCounter;
        const e = encodePacket(packet);
        const args = [
          sqlValue(packet.brokerId),
          sqlValue(packet.brokerCounter),
          sqlValue(packet.messageId),
          e.head,
          e.payload,
          e.extra,
          entry.seq,
        ];
        return this.batch.add(() => this.st.outReplace.run(args));
      }
    }
    throw new Error('no such packet');
  }

  async clear(client: { id: string }, packet: unknown): Promise<PacketObject | undefined> {
    const queue = this.queues.get(client.id);
    if (queue === undefined) return undefined;
    const mid = messageIdOf(packet);
    // aedes 1.2 clears a packet it will not deliver (a second match of overlapping subscriptions,
    // or one authorizeForward refused) before that packet has an id (lib/client.js deliverQoS).
    // Matching "no id" would remove the first queued packet of any message still without one —
    // another message, lost, whose later outgoingUpdate then fails and drops the session. Without
    // an id, only the copy of that very packet (same broker id and counter) is removed.
    const identity = packet as { brokerId?: unknown; brokerCounter?: unknown };
    const i =
      mid === undefined
        ? queue.findIndex(
            (en) =>
              en.messageId === undefined &&
              en.brokerId === identity.brokerId &&
              en.brokerCounter === identity.brokerCounter,
          )
        : queue.findIndex((en) => en.messageId === mid);
    if (i < 0) return undefined;
    const [entry] = queue.splice(i, 1) as [OutEntry];
    if (queue.length === 0) this.queues.delete(client.id);
    const stored = this.read(entry);
    await this.batch.add(() => this.st.outDelete.run(entry.seq));
    return stored;
  }

  stream(client: { id: string }): Readable {
    // A snapshot of the queue, as the memory backend's shallow copy; entries cleared meanwhile
    // are skipped rather than re-sent.
    const snapshot = (this.queues.get(client.id) ?? []).slice();
    return Readable.from(this.entries(snapshot));
  }

  private *entries(snapshot: OutEntry[]): Generator<PacketObject> {
    for (const entry of snapshot) {
      const p = this.read(entry);
      if (p !== undefined) yield p;
    }
  }

  private read(entry: OutEntry): PacketObject | undefined {
    this.batch.flush();
    const row = this.st.outGet.get(entry.seq) as PacketRow | undefined;
    if (row === undefined) return undefined;
    const p = decodePacket(row.head, row.payload, row.extra);
    if (entry.messageId !== undefined) p.messageId = entry.messageId;
    return p;
  }
}
