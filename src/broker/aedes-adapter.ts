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

/**
 * Makes QoS 1 PUBACK wait for the persistence commit of what the broker must keep.
 *
 * aedes 1.2 lib/handlers/publish.js handles a QoS 1 PUBLISH as
 *   authorizePublish(client, packet) → write PUBACK → broker.publish(packet, client, done)
 * and broker.publish (aedes.js) runs storeRetained → enqueueOffline (outgoingEnqueueCombi for every
 * persistent session, online or not) → emit to live subscribers → `published`. So the PUBACK
 * leaves before the retained message and the offline sessions' queued copies are committed, and a
 * `kill -9` in between loses a message the publisher was told is safe.
 *
 * The returned `publishNow(client, packet, cb)` is called from authorizePublish (which runs before
 * the PUBACK): it runs that same broker.publish at once and calls back after it completed — the
 * SqlitePersistence settles writes only after COMMIT — and marks the packet object; the
 * broker.publish that aedes then issues after the PUBACK with that same object (runSeries passes
 * one packet through authorizePublish and enqueuePublish) is skipped. The message is thus
 * published once, committed before PUBACK, and reaches subscribers before the publisher's PUBACK —
 * the order aedes already uses for QoS 2 (store, publish, PUBREC). If the publish fails, the
 * error goes to authorizePublish's callback: aedes closes the connection without PUBACK and the
 * client retransmits.
 */
export function commitBeforePuback(aedes: Aedes): (client: Client, packet: PublishPacket, cb: Done) => void {
  const broker = aedes as unknown as { publish: InternalPublish };
  const original = broker.publish.bind(aedes) as InternalPublish;
  const published = new WeakSet<PublishPacket>();
  broker.publish = function publish(packet: PublishPacket, client: Client | null, done: Done): void {
    // Only the 3-argument call of publish.js can carry a marked packet; the gateway's own and
    // aedes' will/$SYS publishes pass through untouched.
    if (typeof done === 'function' && published.delete(packet)) {
      done(null);
      return;
    }
    original(packet, client, done);
  };
  return (client, packet, cb) => {
    original(packet, client, (err) => {
      if (err) return cb(err);
      published.add(packet);
      cb(null);
    });
  };
}
