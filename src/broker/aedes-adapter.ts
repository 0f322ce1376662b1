import type { Aedes, Client, PublishPacket } from 'aedes';

/**
 * Everything the broker relies on in aedes beyond its typed, documented API, in one file.
 * Read from aedes 1.2.0 (node_modules/aedes: aedes.js, lib/handlers/publish.js,
 * lib/handlers/index.js, lib/handlers/connect.js). Re-read those files when upgrading aedes;
 * `test/integration/broker-ack-commit.test.ts` and `broker-paho.test.ts` fail if a change breaks
 * what is assumed here.
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
