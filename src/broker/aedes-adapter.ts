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
export type PublishNow = (client: Client, packet: PublishPacket, waitForCommit: boolean, cb: Done) => void;

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
 * The returned `publishNow(client, packet, waitForCommit, cb)` is called from authorizePublish
 * (which runs before the PUBACK) and starts that same broker.publish at once. With
 * `waitForCommit` it calls back only after the publish completed — the SqlitePersistence settles
 * writes after COMMIT — so the PUBACK follows the commit; without, it calls back at once (nothing
 * to keep: no retain flag, no persistent subscriber) and the PUBACK is not delayed by delivery.
 * The broker.publish that aedes issues after the PUBACK with that same packet object (runSeries
 * passes one object through authorizePublish and enqueuePublish) is not run again: it completes
 * when the early one has, so aedes' flow control (the client's next read waits for it) is kept.
 * Every QoS 1 message starts publishing in authorizePublish order, so the order per topic is
 * kept whichever path a message takes, and live subscribers may get a message before its
 * publisher gets the PUBACK — the order aedes already uses for QoS 2 (store, publish, PUBREC).
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
  return (client, packet, waitForCommit, cb) => {
    const e = { finished: false, err: null as Error | null, then: undefined as Done | undefined };
    early.set(packet, e);
    original(packet, client, (err) => {
      e.finished = true;
      e.err = err ?? null;
      if (waitForCommit) {
        // No PUBACK follows a failure, so aedes will not call publish for this packet again.
        if (e.err) early.delete(packet);
        cb(e.err);
      }
      e.then?.(e.err);
    });
    if (!waitForCommit) cb(null);
  };
}
