import type { Socket } from 'node:net';
import type { Aedes, Client, PublishPacket } from 'aedes';

/**
 * Everything the broker relies on in aedes beyond its typed, documented API, in one file.
 * Read from aedes 1.2.0 and re-read for 2.0.0-beta.1 (node_modules/aedes: aedes.js, lib/client.js,
 * lib/handlers/publish.js, lib/handlers/pubrel.js, lib/handlers/index.js, lib/handlers/connect.js).
 * Re-read those files when upgrading aedes; `test/integration/broker-ack-commit.test.ts`,
 * `broker-mqtt5.test.ts` and `broker-paho.test.ts` fail if a change breaks what is assumed here.
 *
 * aedes 2.0.0-beta.1 (the only MQTT 5 release on npm) was branched before 1.1.x–1.2.0 and lacks
 * their fixes; `restoreAedes12Fixes` and `hardenClient` put them back (docs/broker.md, "MQTT 5").
 */

type Done = (err?: Error | null) => void;
/** aedes.js `publish(packet, client, done)`: the 3-argument form the handlers use (typed: 2 arguments). */
type InternalPublish = (packet: PublishPacket, client: Client | null, done: Done) => void;

/** The aedes persistence call used for QoS 2 duplicate detection (`aedes.persistence`, untyped). */
export interface IncomingLookup {
  incomingGetPacket(client: Client, packet: { messageId?: number }): Promise<unknown>;
}

export function brokerPersistence(aedes: Aedes): IncomingLookup {
  return (aedes as unknown as { persistence: IncomingLookup }).persistence;
}

/** aedes sets `client._disconnected` when the client sent DISCONNECT (lib/handlers/index.js). */
export function sentDisconnect(client: Client): boolean {
  return (client as unknown as { _disconnected?: boolean })._disconnected === true;
}

/** 'error' is missing from aedes' typed events; without a listener it would crash the process. */
export function onBrokerError(aedes: Aedes, handler: (err: Error) => void): void {
  (aedes as unknown as NodeJS.EventEmitter).on('error', handler);
}

/** Publishes a QoS 1 packet from authorizePublish; see `commitBeforePuback`. */
/**
 * `commits`: how many commits aedes' publish of this packet waits for — 0 (nothing to keep), 1 (a
 * retained message, or queued copies), 2 (both: stored, then queued).
 */
export type PublishNow = (client: Client, packet: PublishPacket, commits: number, cb: Done) => void;

/**
 * Makes a QoS 1 PUBACK wait for the persistence commit of what the broker must keep.
 *
 * aedes 1.2 lib/handlers/publish.js handles a QoS 1 PUBLISH as
 *   authorizePublish(client, packet) → write PUBACK → broker.publish(packet, client, done)
 * and broker.publish (aedes.js) runs storeRetained → enqueueOffline (outgoingEnqueueCombi for every
 * persistent session, online or not) → emit to live subscribers → `published`. So the PUBACK
 * leaves before the retained message and the persistent sessions' queued copies are committed,
 * and a `kill -9` in between loses a message the publisher was told is safe.
 *
 * The returned `publishNow(client, packet, commits, cb)` is called from authorizePublish
 * (which runs before the PUBACK) and starts that same broker.publish at once. With
 * `commits > 0` it calls back only after the publish completed — the SqlitePersistence settles
 * writes after COMMIT — so the PUBACK follows the commit; without, it calls back at once (nothing
 * to keep: no retain flag, no persistent subscriber) and the PUBACK is not delayed by delivery.
 * The broker.publish that aedes issues after the PUBACK with that same packet object (runSeries
 * passes one object through authorizePublish and enqueuePublish) is not run again: it completes
 * when the early one has, so aedes' flow control (the client's next read waits for it) is kept.
 * Live subscribers may get a message before its publisher gets the PUBACK — the order aedes
 * already uses for QoS 2 (store, publish, PUBREC).
 *
 * Order ([MQTT-4.6.0-6] topics are ordered): a publish reaches subscribers after its commits, so
 * one with fewer commits would overtake a client's earlier message with more. A client's message
 * therefore starts only once its previous one has completed when their commit counts differ, or
 * once it has started when they are equal (the same FIFO group commits keep them in order, and a
 * burst of them still shares commits). A client with nothing pending is not held up.
 * If a waited-for publish fails, the error goes to authorizePublish's callback: aedes closes the
 * connection without PUBACK and the client retransmits.
 */
export function commitBeforePuback(aedes: Aedes): PublishNow {
  const broker = aedes as unknown as { publish: InternalPublish };
  const original = broker.publish.bind(aedes) as InternalPublish;
  const early = new WeakMap<PublishPacket, { finished: boolean; err: Error | null; then: Done | undefined }>();
  broker.publish = function publish(packet: PublishPacket, client: Client | null, done: Done): void {
    // Only the 3-argument call of publish.js can carry a packet published early; the gateway's
    // own and aedes' will/$SYS publishes pass through untouched.
    const e = typeof done === 'function' ? early.get(packet) : undefined;
    if (e === undefined) return original(packet, client, done);
    early.delete(packet);
    if (e.finished) done(e.err);
    else e.then = done;
  };
  /** Per publishing client: its last publish while one may still be overtaken (see Order above). */
  const last = new WeakMap<Client, Step>();
  return (client, packet, commits, cb) => {
    const waitForCommit = commits > 0;
    const e = { finished: false, err: null as Error | null, then: undefined as Done | undefined };
    early.set(packet, e);
    const start = (completed: () => void) =>
      original(packet, client, (err) => {
        e.finished = true;
        e.err = err ?? null;
        if (waitForCommit) {
          // No PUBACK follows a failure, so aedes will not call publish for this packet again.
          if (e.err) early.delete(packet);
          cb(e.err);
        }
        e.then?.(e.err);
        completed();
      });
    // The previous message of this client: one with the same commit count may run alongside once
    // it has started; otherwise this one waits until the previous completed.
    const prev = last.get(client);
    const gate =
      prev === undefined || prev.completed
        ? undefined
        : prev.commits === commits
          ? prev.started
            ? undefined
            : prev.startedP
          : prev.doneP;
    if (gate === undefined && !waitForCommit) {
      start(() => {}); // fast path: nothing pending, nothing to keep
      cb(null);
      return;
    }
    let markStarted = () => {};
    let markDone = () => {};
    const step: Step = {
      commits,
      started: false,
      completed: false,
      startedP: new Promise<void>((r) => (markStarted = r)),
      doneP: new Promise<void>((r) => (markDone = r)),
    };
    last.set(client, step);
    const run = () => {
      step.started = true;
      markStarted();
      start(() => {
        step.completed = true;
        markDone();
        if (last.get(client) === step) last.delete(client);
      });
    };
    if (gate === undefined) run();
    else void gate.then(run);
    if (!waitForCommit) cb(null);
  };
}

interface Step {
  commits: number;
  started: boolean;
  completed: boolean;
  startedP: Promise<void>;
  doneP: Promise<void>;
}

type Deliver = (packet: { brokerId?: string; brokerCounter?: number; qos?: number }, cb: () => void) => void;
/** Deliveries remembered per client for duplicate suppression (overlapping subscriptions deliver within one emit). */
const DEDUPE_WINDOW = 1024;

/**
 * Exact duplicate suppression for one client, installed at preConnect (before aedes registers the
 * client's deliver functions with its subscriptions).
 *
 * aedes 1.2 (lib/client.js `dedupe`) drops a message for a client when its brokerCounter is not
 * above the highest counter already delivered to that client — meant for one message matching
 * several of the client's subscriptions. It assumes messages reach subscribers in counter order,
 * but the counter is taken when a publish starts, and a retained message or one queued for a
 * persistent session reaches subscribers only after its commit: a later plain message overtakes
 * it and the earlier one is then dropped as a "duplicate" (for a persistent session aedes also
 * clears a queued message by an id it does not have yet). Here each (brokerId, counter) is let
 * through the first time and dropped after, whatever the order, by steering aedes' own counter
 * before its check.
 */
export function exactDedupe(client: Client): void {
  const c = client as unknown as { duplicates: Record<string, number>; deliver0: Deliver; deliverQoS: Deliver };
  const seen = new Map<string, Set<number>>();
  const steer = (packet: Parameters<Deliver>[0]): void => {
    const id = packet.brokerId;
    const n = packet.brokerCounter;
    if (!id || typeof n !== 'number') return; // aedes does not dedupe these either
    let s = seen.get(id);
    if (s === undefined) seen.set(id, (s = new Set()));
    if (s.has(n)) {
      c.duplicates[id] = Math.max(c.duplicates[id] ?? 0, n); // aedes drops it
      return;
    }
    s.add(n);
    if (s.size > DEDUPE_WINDOW) s.delete(s.values().next().value!);
    c.duplicates[id] = n - 1; // first delivery: aedes' check passes and records n
  };
  const deliver0 = c.deliver0;
  const deliverQoS = c.deliverQoS;
  c.deliver0 = (packet, cb) => {
    steer(packet);
    deliver0(packet, cb);
  };
  c.deliverQoS = (packet, cb) => {
    // A QoS 0 packet goes on to `that.deliver0`, i.e. the wrapper above, which steers it.
    if (packet.qos !== 0) steer(packet);
    deliverQoS(packet, cb);
  };
}

/** MQTT 5 reason codes the gateway sends itself (MQTT 5.0 §2.4). */
export const ReasonCode = {
  UNSPECIFIED_ERROR: 0x80,
  NOT_AUTHORIZED: 0x87,
  SERVER_BUSY: 0x89,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
} as const;

interface ClientInternals {
  version: number | null;
  /** aedes 2: true when the session does not outlive the connection (Session Expiry 0). */
  clean: boolean;
  /** Set by aedes from CONNECT (lib/handlers/connect.js init); read by setKeepAlive and doConnack. */
  _serverKeepAlive?: number;
  /** MQTT 5 Clean Start / 3.1.1 CleanSession of the CONNECT (connect.js init). */
  _cleanStart?: boolean;
  subscriptions: Record<string, unknown>;
  duplicates: Record<string, number>;
  disconnect(opts: { reasonCode: number }, done: () => void): void;
  /** mqtt-packet parser of the connection; aedes listens to its 'packet' event (lib/client.js). */
  _parser: NodeJS.EventEmitter;
}

function internals(client: Client): ClientInternals {
  return client as unknown as ClientInternals;
}

/**
 * MQTT 5 Server Keep Alive: aedes' own `keepaliveLimit` also refuses every 3.1.1 client with
 * keepalive 0 (connect.js init, return code 6), which would undo `allow_keepalive_zero`, so the
 * value is set per client instead. Called from `authenticate`, which aedes runs before
 * `setKeepAlive` (the timer) and `doConnack` (which announces it).
 */
export function setServerKeepAlive(client: Client, seconds: number): void {
  internals(client)._serverKeepAlive = seconds;
}

/**
 * Sends an MQTT 5 DISCONNECT with `reasonCode` and closes; `done` runs once the connection is
 * closed, so an acknowledgement aedes writes afterwards is not sent (write.js: connection closed).
 * A 3.1.1 client has no server DISCONNECT: it is just closed.
 */
export function disconnectWith(client: Client, reasonCode: number, done: () => void): void {
  internals(client).disconnect({ reasonCode }, done);
}

/**
 * GHSA-52qw-whmv-87c5 (fixed in aedes 1.1.2, absent from 2.0.0-beta.1): maps keyed by client ids,
 * topic filters and broker ids from the wire were plain objects, so an id such as `__proto__` or
 * `constructor` read an inherited value. Called at preConnect, before aedes fills either map.
 */
export function hardenClient(client: Client): void {
  const c = internals(client);
  c.subscriptions = Object.create(null) as Record<string, unknown>;
  c.duplicates = Object.create(null) as Record<string, number>;
  // lib/handlers/subscribe.js `_dedupe` (SUBSCRIBE with several filters, and the restore of a
  // persistent session's subscriptions) collects filters in `{}`: a `__proto__` filter replaces that
  // object's prototype, the loop then yields strings instead of subscriptions and aedes throws from a
  // callback — the process ends (measured: one SUBSCRIBE ["a", "__proto__"] from any client).
  // Such a filter is renamed before aedes sees it to one authorizeSubscribe always refuses, so the
  // client gets a failure code for it in its SUBACK and it is never stored.
  c._parser.prependListener('packet', (packet: { cmd?: string; subscriptions?: { topic: string }[] }) => {
    if (packet.cmd !== 'subscribe' || !Array.isArray(packet.subscriptions)) return;
    for (const sub of packet.subscriptions) if (sub.topic === '__proto__') sub.topic = REFUSED_FILTER;
  });
}

/** Stands in for a topic filter aedes cannot hold (see hardenClient); always refused. */
export const REFUSED_FILTER = '$SYS/edge-gateway/refused-filter';

interface IncomingStore {
  incomingStorePacket(client: Client, packet: { messageId?: number }): Promise<void>;
  incomingDelPacket(client: Client, packet: { messageId?: number }): Promise<void>;
  cleanIncoming?(client: Client): Promise<void>;
}

export interface Aedes12Fixes {
  /** Inbound QoS 2 messages awaiting PUBREL per client (aedes 1.2 maxInflightInbound; MQTT 5 Receive Maximum). */
  maxInboundQoS2: number;
  /** Did this client's CONNECT ask for a clean start / clean session? */
  cleanStart(client: Client): boolean;
  /** A client went over `maxInboundQoS2` (it is disconnected). */
  onExceeded(client: Client): void;
}

/**
 * Restores what aedes 1.1.x–1.2.0 fixed and 2.0.0-beta.1 does not have:
 * - GHSA-52qw-whmv-87c5: `aedes.clients` / `aedes.brokers` without a prototype (see hardenClient).
 * - The inbound QoS 2 window (1.2 `maxInflightInbound`, default 1000): a client that keeps sending
 *   new QoS 2 messages without PUBREL grew its stored set without bound. The count is kept here
 *   around the persistence's incoming store, keyed by packet id (a DUP retransmission reuses its
 *   slot). Over the bound an MQTT 5 client gets DISCONNECT 0x93 (Receive Maximum exceeded,
 *   [MQTT-3.3.4-9]; the bound is announced in CONNACK), a 3.1.1 client is closed, as in 1.2.
 * - pubrel.js calls `incomingDelPacket(...).finally(...)`: a rejection (e.g. a concurrent duplicate
 *   PUBREL) escaped as an unhandled rejection and ended the process; here it never rejects.
 * - GHSA-p8r9-qf8w-p73r [MQTT-3.1.2-6]/[MQTT-3.1.2-4]: the inbound QoS 2 dedup state is session
 *   state; a clean start must discard it (else a reconnecting client's first colliding packet id is
 *   acknowledged and dropped), and a session that ends with its connection must not leave it behind.
 *   Done on the `client` event (right after registerClient, as 1.2 does; the persistence is FIFO,
 *   so the client's own later QoS 2 stores come after it) and on `clientDisconnect`.
 */
export function restoreAedes12Fixes(aedes: Aedes, o: Aedes12Fixes): void {
  const a = aedes as unknown as { clients: object; brokers: object; persistence: IncomingStore };
  a.clients = Object.assign(Object.create(null) as object, a.clients);
  a.brokers = Object.assign(Object.create(null) as object, a.brokers);
  const p = a.persistence;
  const store = p.incomingStorePacket.bind(p);
  const del = p.incomingDelPacket.bind(p);
  const inflight = new WeakMap<Client, Set<number>>();
  p.incomingStorePacket = (client, packet) => {
    const id = packet.messageId ?? 0;
    let set = inflight.get(client);
    if (set === undefined) inflight.set(client, (set = new Set()));
    if (!set.has(id) && set.size >= o.maxInboundQoS2) {
      o.onExceeded(client);
      const err = new Error(`more than ${o.maxInboundQoS2} inbound QoS 2 messages awaiting PUBREL`);
      lingerOnClose(client);
      // Rejected only once the connection is closed: aedes then neither routes nor PUBRECs it.
      return new Promise<void>((_, reject) =>
        disconnectWith(client, ReasonCode.RECEIVE_MAXIMUM_EXCEEDED, () => reject(err)),
      );
    }
    set.add(id);
    return store(client, packet).catch((err: unknown) => {
      set.delete(id);
      throw err;
    });
  };
  p.incomingDelPacket = (client, packet) =>
    del(client, packet).then(
      () => void inflight.get(client)?.delete(packet.messageId ?? 0),
      () => undefined,
    );
  const clean = (client: Client) => {
    if (typeof p.cleanIncoming === 'function') p.cleanIncoming(client).catch(() => undefined);
  };
  aedes.on('client', (client) => {
    if (o.cleanStart(client)) clean(client);
  });
  aedes.on('clientDisconnect', (client) => {
    inflight.delete(client);
    // client.clean: the session ends with this connection (3.1.1 CleanSession, MQTT 5 expiry 0).
    if (client.clean) clean(client);
  });
}

/**
 * Keeps a resumed MQTT 5 session's queued messages when the new connection asks for Session Expiry 0.
 *
 * aedes 2.0.0-beta.1 sets `client.clean` from the new CONNECT's Session Expiry (0 → clean) and
 * connect.js `emptyQueueFilter` discards the queued messages of every `clean` client — also when
 * Clean Start is 0 and the session is resumed, where [MQTT-3.1.2-5]/§4.1 require them to be
 * delivered (expiry 0 only ends the session when this connection closes). Paho's
 * test_offline_message_queueing and test_publication_expiry fail on exactly this; Mosquitto
 * delivers. The returned `mark(client)` (called from authenticate, before fetchSubs/emptyQueue)
 * lets such a client count as not clean until its connect completed (`clientReady`): the queue is
 * then delivered, and the session still ends with the connection (scheduleSessionExpiry reads the
 * interval, not `clean`). Upstream fix: test `client._cleanStart`, not `client.clean`, there.
 */
export function keepQueueOnResume(aedes: Aedes): (client: Client) => void {
  const marked = new WeakSet<Client>();
  const restore = (client: Client) => {
    if (marked.delete(client)) internals(client).clean = true;
  };
  const events = aedes as unknown as NodeJS.EventEmitter;
  events.on('clientReady', restore);
  events.on('clientDisconnect', restore);
  return (client) => {
    const c = internals(client);
    if (c.version === 5 && c._cleanStart === false && c.clean) {
      c.clean = false;
      marked.add(client);
    }
  };
}

/** How long a connection closed after a DISCONNECT keeps reading before it is destroyed. */
const LINGER_MS = 2000;

/**
 * The next `destroy()` aedes makes of this client's socket (client.close) becomes a half-close:
 * FIN after what was written, unread input drained, destroyed on the peer's FIN or after LINGER_MS.
 * A client flooding the broker still has data in flight when it is disconnected; destroying the
 * socket with unread input sends a TCP RST, and the peer's stack may then drop the DISCONNECT
 * (0x93) before the client reads it (Paho's test_flow_control2 saw ECONNRESET instead).
 */
function lingerOnClose(client: Client): void {
  const conn = client.conn as unknown as Socket;
  if (typeof conn.end !== 'function') return;
  const destroy = conn.destroy.bind(conn);
  let lingering = false;
  // Later calls (aedes' error path after the close: client._onError) must not cut the linger short.
  conn.destroy = ((): Socket => {
    if (lingering) return conn;
    lingering = true;
    const timer = setTimeout(() => destroy(), LINGER_MS);
    timer.unref();
    conn.once('close', () => clearTimeout(timer));
    conn.on('data', () => {});
    conn.once('end', () => destroy());
    conn.end();
    conn.resume();
    return conn;
  }) as typeof conn.destroy;
}
