/**
 * aedes persistence on the gateway's SQLite database: retained messages, subscriptions,
 * persistent sessions (clean=false), queued QoS 1/2 messages with their packet ids, incoming
 * QoS 2 packets and wills survive a restart.
 *
 * Use (the broker owns the order; the DB is opened and closed by the composition root):
 *
 *   const persistence = new SqlitePersistence({ db, log });   // migrates + loads, synchronous
 *   const broker = await Aedes.createBroker({ persistence });  // aedes 1.x calls setup(broker)
 *   ...
 *   broker.close(); await persistence.destroy();               // flushes; the DB stays open
 *   db.close();
 *
 * It implements the async persistence interface aedes 1.x calls (the shape of aedes-persistence's
 * `asyncPersistence.js`); `sqliteCallbackPersistence()` in index.ts wraps it for callback callers.
 * It passes aedes-persistence@11's abstract suite (test/unit/broker/persistence-abstract.test.ts).
 *
 * Design: what is matched or searched lives in memory — the subscription trie and per-client
 * maps (the memory backend's structures), the set of retained topics, the index of each client's
 * outgoing queue (seq, brokerId, brokerCounter, messageId), the keys of incoming packets and will
 * owners — so no read scans SQLite. Packet bodies live only in SQLite and are read by primary key
 * when streamed. Every write goes through a WriteBatch (one transaction per event-loop turn); the
 * returned promise settles after COMMIT. If a commit fails, the memory side is reloaded from the
 * (rolled back) database so the two never disagree.
 */
import { Readable } from 'node:stream';
import type { Db } from '../../store/db.js';
import { migrate } from '../../store/db.js';
import type { Logger } from '../../log/logger.js';
import { encodePacket, decodePacket, type PacketObject } from './codec.js';
import { MIGRATIONS } from './schema.js';
import { WriteBatch } from './write-batch.js';
import { newSubscriptionTrie, topicsMatching, Packet, type QlobberSub, type TopicSubscription } from './matching.js';
import { prepareStatements, sqlValue, sqlBool, type PacketRow, type Statements } from './statements.js';
import { OutgoingQueues } from './outgoing-queue.js';

export interface SqlitePersistenceOptions {
  db: Db;
  log?: Logger;
  /** Writes queued before a commit is forced without waiting for the next turn. */
  maxBatchOps?: number;
  /**
   * Bound of one client's outgoing queue (0 = unbounded). When full, the oldest message not yet
   * in flight (no packet id assigned) is dropped — devices care most about recent data — and
   * counted in `stats().droppedOutgoing`; if every queued message is in flight the new one is.
   */
  maxQueuedPerClient?: number;
}

export interface AedesClientLike {
  id: string;
}

export interface SubscriptionInput {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  subscriptionIdentifier?: number;
}

interface SubRecord {
  qos: number;
  rh: number | undefined;
  rap: boolean | undefined;
  nl: boolean | undefined;
  subscriptionIdentifier?: number;
}

export interface PersistenceStats {
  retained: number;
  subscriptions: number;
  clients: number;
  outgoing: number;
  droppedOutgoing: number;
  commits: number;
  committedOps: number;
  failedCommits: number;
}

function messageIdOf(packet: unknown): unknown {
  return packet !== null && typeof packet === 'object' ? (packet as { messageId?: unknown }).messageId : undefined;
}

export class SqlitePersistence {
  private readonly db: Db;
  private readonly log: Logger | undefined;
  private readonly st: Statements;
  private readonly batch: WriteBatch;
  private readonly outgoing: OutgoingQueues;
  private broker: { id: string } | undefined;
  private destroyed = false;

  // In-memory indexes (rebuilt from SQLite by load()).
  private retained = new Set<string>();
  private subscriptions = new Map<string, Map<string, SubRecord>>();
  private trie: QlobberSub = newSubscriptionTrie();
  private clientsCount = 0;
  private incoming = new Map<string, Set<number>>();
  private willBrokers = new Map<string, unknown>();

  constructor(opts: SqlitePersistenceOptions) {
    this.db = opts.db;
    this.log = opts.log?.child({ mod: 'broker-persistence' });
    migrate(this.db, 'broker-persistence', MIGRATIONS);
    this.st = prepareStatements(this.db);
    this.batch = new WriteBatch(this.db, opts.maxBatchOps ?? 4096, (err) => this.onCommitFailure(err));
    this.outgoing = new OutgoingQueues(this.st, this.batch, opts.maxQueuedPerClient ?? 100_000, this.log);
    this.load();
  }

  /** aedes 1.x awaits this (it checks that it is an AsyncFunction). */
  async setup(broker: { id: string }): Promise<void> {
    this.broker = broker;
  }

  // ---- retained ---------------------------------------------------------------------------

  async storeRetained(packet: PacketObject): Promise<void> {
    const topic = packet.topic as string;
    const payload = packet.payload as { length: number } | undefined;
    // An empty payload clears the retained message [MQTT-3.3.1-10].
    if (payload !== undefined && payload !== null && payload.length === 0) {
      if (!this.retained.delete(topic)) return;
      return this.batch.add(() => this.st.retainedDel.run(topic));
    }
    this.retained.add(topic);
    const e = encodePacket(packet); // encoded now: later changes to `packet` are not stored
    return this.batch.add(() => this.st.retainedPut.run(topic, e.head, e.payload, e.extra));
  }

  createRetainedStream(pattern: string): Readable {
    return Readable.from(this.retainedFor([pattern]));
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(this.retainedFor(patterns));
  }

  private *retainedFor(patterns: string[]): Generator<PacketObject> {
    // One pass per pattern, like the memory backend (a topic matching two patterns comes twice).
    for (const pattern of patterns) {
      for (const topic of topicsMatching(this.retained, pattern)) {
        this.batch.flush();
        const row = this.st.retainedGet.get(topic) as PacketRow | undefined;
        if (row !== undefined) yield decodePacket(row.head, row.payload, row.extra);
      }
    }
  }

  // ---- subscriptions (the memory backend's algorithm, mirrored to mqtt_subscriptions) -------

  async addSubscriptions(client: AedesClientLike, subs: SubscriptionInput[]): Promise<void> {
    let stored = this.subscriptions.get(client.id);
    if (stored === undefined) {
      stored = new Map();
      this.subscriptions.set(client.id, stored);
      this.clientsCount++;
    }
    for (const sub of subs) {
      const prev = stored.get(sub.topic);
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      // MQTT 5 Subscription Identifier: kept only when present, and not in the trie (as memory).
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      if (sub.qos > 0) {
        this.trie.add(sub.topic, {
          clientId: client.id,
          topic: sub.topic,
          qos: sub.qos,
          rh: sub.rh,
          rap: sub.rap,
          nl: sub.nl,
        });
      } else if (prev !== undefined && prev.qos > 0) {
        this.trie.remove(sub.topic, { clientId: client.id, topic: sub.topic });
      }
      stored.set(sub.topic, record);
      const args = [
        client.id,
        sub.topic,
        sub.qos,
        sqlValue(sub.rh),
        sqlBool(sub.rap),
        sqlBool(sub.nl),
        sqlValue(sub.subscriptionIdentifier),
      ];
      this.batch.queue(() => this.st.subPut.run(args));
    }
    return this.batch.current();
  }

  async removeSubscriptions(client: AedesClientLike, topics: string[]): Promise<void> {
    const stored = this.subscriptions.get(client.id);
    if (stored === undefined) return;
    for (const topic of topics) {
      const prev = stored.get(topic);
      if (prev === undefined) continue;
      if (prev.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
      stored.delete(topic);
      this.batch.queue(() => this.st.subDel.run(client.id, topic));
    }
    if (stored.size === 0) {
      this.clientsCount--;
      this.subscriptions.delete(client.id);
    }
    return this.batch.current();
  }

  async subscriptionsByClient(client: AedesClientLike): Promise<Array<SubRecord & { topic: string }>> {
    const subs: Array<SubRecord & { topic: string }> = [];
    const stored = this.subscriptions.get(client.id);
    if (stored !== undefined) for (const [topic, rec] of stored) subs.push({ topic, ...rec });
    return subs;
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.clientsCount };
  }

  async subscriptionsByTopic(topic: string): Promise<TopicSubscription[]> {
    return this.trie.match(topic);
  }

  /** Synchronous: would `subscriptionsByTopic(topic)` queue the message for any session? */
  hasPersistentSubscriber(topic: string): boolean {
    return this.trie.subscriptionsCount > 0 && this.trie.match(topic).length > 0;
  }

  async cleanSubscriptions(client: AedesClientLike): Promise<void> {
    const stored = this.subscriptions.get(client.id);
    if (stored === undefined) return;
    for (const [topic, rec] of stored) if (rec.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
    this.clientsCount--;
    this.subscriptions.delete(client.id);
    return this.batch.add(() => this.st.subDelClient.run(client.id));
  }

  getClientList(topic: string): Readable {
    const subscriptions = this.subscriptions;
    return Readable.from(
      (function* () {
        for (const [clientId, topics] of subscriptions) if (topics.has(topic)) yield clientId;
      })(),
    );
  }

  // ---- outgoing queue ---------------------------------------------------------------------

  async outgoingEnqueue(sub: { clientId: string }, packet: object): Promise<void> {
    return this.outgoing.enqueueCombi([sub], packet);
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void> {
    return this.outgoing.enqueueCombi(subs, packet);
  }

  async outgoingUpdate(client: AedesClientLike, packet: PacketObject): Promise<void> {
    return this.outgoing.update(client, packet);
  }

  async outgoingClearMessageId(client: AedesClientLike, packet: unknown): Promise<PacketObject | undefined> {
    return this.outgoing.clear(client, packet);
  }

  outgoingStream(client: AedesClientLike): Readable {
    return this.outgoing.stream(client);
  }

  // ---- incoming QoS 2 packets ---------------------------------------------------------------

  async incomingStorePacket(client: AedesClientLike, packet: PacketObject): Promise<void> {
    const mid = packet.messageId;
    if (typeof mid !== 'number') throw new Error('incoming packet without a messageId');
    const p = new Packet(packet);
    p.messageId = mid;
    let keys = this.incoming.get(client.id);
    if (keys === undefined) this.incoming.set(client.id, (keys = new Set()));
    keys.add(mid);
    const e = encodePacket(p);
    return this.batch.add(() => this.st.inPut.run(client.id, mid, e.head, e.payload, e.extra));
  }

  async incomingGetPacket(client: AedesClientLike, packet: unknown): Promise<PacketObject> {
    const mid = messageIdOf(packet);
    if (typeof mid !== 'number' || this.incoming.get(client.id)?.has(mid) !== true) throw new Error('no such packet');
    this.batch.flush();
    const row = this.st.inGet.get(client.id, mid) as PacketRow | undefined;
    if (row === undefined) throw new Error('no such packet');
    return decodePacket(row.head, row.payload, row.extra);
  }

  async incomingDelPacket(client: AedesClientLike, packet: unknown): Promise<void> {
    const mid = messageIdOf(packet);
    const keys = this.incoming.get(client.id);
    if (typeof mid !== 'number' || keys?.delete(mid) !== true) throw new Error('no such packet');
    if (keys.size === 0) this.incoming.delete(client.id);
    return this.batch.add(() => this.st.inDel.run(client.id, mid));
  }

  /** [MQTT-3.1.2-6]: a clean session discards the QoS 2 dedup state of the old one. */
  async cleanIncoming(client: AedesClientLike): Promise<void> {
    if (!this.incoming.delete(client.id)) return;
    return this.batch.add(() => this.st.inDelClient.run(client.id));
  }

  // ---- wills ------------------------------------------------------------------------------

  async putWill(client: AedesClientLike, packet: PacketObject): Promise<void> {
    // As the memory backend: the will is tagged with the broker and client it belongs to.
    packet.brokerId = this.broker?.id;
    packet.clientId = client.id;
    this.willBrokers.set(client.id, packet.brokerId);
    const e = encodePacket(packet);
    const brokerId = sqlValue(packet.brokerId);
    return this.batch.add(() => this.st.willPut.run(client.id, brokerId, e.head, e.payload, e.extra));
  }

  async getWill(client: AedesClientLike): Promise<PacketObject | undefined> {
    return this.readWill(client.id);
  }

  async delWill(client: AedesClientLike): Promise<PacketObject | undefined> {
    const will = this.readWill(client.id);
    if (this.willBrokers.delete(client.id)) await this.batch.add(() => this.st.willDel.run(client.id));
    return will;
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return Readable.from(this.willsNotOf(brokers, [...this.willBrokers]));
  }

  private *willsNotOf(brokers: Record<string, unknown>, owners: Array<[string, unknown]>): Generator<PacketObject> {
    for (const [clientId, brokerId] of owners) {
      if (brokers[String(brokerId)]) continue;
      const will = this.readWill(clientId);
      if (will !== undefined) yield will;
    }
  }

  private readWill(clientId: string): PacketObject | undefined {
    if (!this.willBrokers.has(clientId)) return undefined;
    this.batch.flush();
    const row = this.st.willGet.get(clientId) as PacketRow | undefined;
    return row === undefined ? undefined : decodePacket(row.head, row.payload, row.extra);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Commits pending writes. Does not close the shared database (its owner does). */
  // ---- MQTT 5 session expiry (gateway extension, not part of aedes' persistence interface) ----

  /** Records when the session of `clientId` expires (wall-clock ms), or forgets it (null). */
  async setSessionExpiry(clientId: string, expiresAt: number | null): Promise<void> {
    return this.batch.add(() =>
      expiresAt === null ? this.st.expiryDel.run(clientId) : this.st.expiryPut.run(clientId, Math.round(expiresAt)),
    );
  }

  /** Every recorded deadline (read at start, before clients connect). */
  sessionExpiries(): { clientId: string; expiresAt: number }[] {
    return this.st.expiryAll.all() as { clientId: string; expiresAt: number }[];
  }

  /**
   * Ends the session of a client that is not connected: its subscriptions, queued messages, inbound
   * QoS 2 state and deadline — what aedes' `_wipeSession` removes for a connected-then-gone client,
   * for one known only from the database. A will still stored is left to aedes' sweep of wills of
   * stopped brokers, which publishes it ([MQTT-3.1.3-9]: at the latest when the session ends).
   */
  async endSession(clientId: string): Promise<void> {
    const client = { id: clientId };
    await this.cleanSubscriptions(client);
    const queued: unknown[] = [];
    for await (const packet of this.outgoingStream(client)) queued.push(packet);
    for (const packet of queued) await this.outgoingClearMessageId(client, packet);
    await this.cleanIncoming(client);
    await this.setSessionExpiry(clientId, null);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) throw new Error('destroyed called twice!');
    this.destroyed = true;
    this.batch.flush();
  }

  /** Figures for metrics and /mgmt (the broker registers the gauges). */
  stats(): PersistenceStats {
    return {
      retained: this.retained.size,
      subscriptions: this.trie.subscriptionsCount,
      clients: this.clientsCount,
      outgoing: this.outgoing.size,
      droppedOutgoing: this.outgoing.dropped,
      commits: this.batch.commits,
      committedOps: this.batch.committedOps,
      failedCommits: this.batch.failedCommits,
    };
  }

  private onCommitFailure(err: unknown): void {
    this.log?.error({ err }, 'broker persistence commit failed; reloading state from the database');
    if (this.db.open) this.load();
  }

  /** (Re)builds every in-memory index from SQLite. */
  private load(): void {
    const st = this.st;
    this.retained = new Set(st.retainedTopics.pluck().all() as string[]);

    this.subscriptions = new Map();
    this.trie = newSubscriptionTrie();
    for (const r of st.subAll.all() as SubRow[]) {
      let stored = this.subscriptions.get(r.client_id);
      if (stored === undefined) this.subscriptions.set(r.client_id, (stored = new Map()));
      const record: SubRecord = { qos: r.qos, rh: r.rh ?? undefined, rap: bool(r.rap), nl: bool(r.nl) };
      if (r.sub_id !== null) record.subscriptionIdentifier = r.sub_id;
      stored.set(r.topic, record);
      if (r.qos > 0)
        this.trie.add(r.topic, {
          clientId: r.client_id,
          topic: r.topic,
          qos: r.qos,
          rh: record.rh,
          rap: record.rap,
          nl: record.nl,
        });
    }
    this.clientsCount = this.subscriptions.size;

    this.outgoing.load();

    this.incoming = new Map();
    for (const r of st.inKeys.all() as Array<{ client_id: string; message_id: number }>) {
      let keys = this.incoming.get(r.client_id);
      if (keys === undefined) this.incoming.set(r.client_id, (keys = new Set()));
      keys.add(r.message_id);
    }

    this.willBrokers = new Map();
    for (const r of st.willKeys.all() as Array<{ client_id: string; broker_id: string | null }>) {
      this.willBrokers.set(r.client_id, r.broker_id ?? undefined);
    }
  }
}

interface SubRow {
  client_id: string;
  topic: string;
  qos: number;
  rh: number | null;
  rap: number | null;
  nl: number | null;
  sub_id: number | null;
}
function bool(v: number | null): boolean | undefined {
  return v === null ? undefined : v !== 0;
}
