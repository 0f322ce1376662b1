/**
 * Migrations of the broker persistence (module `broker-persistence`, append-only: never edit a
 * released step). Packet rows use the three-column encoding of codec.ts (head, payload, extra).
 *
 * Ordering relies on rowids: an upsert (`ON CONFLICT DO UPDATE`) keeps a row's rowid, a delete
 * followed by an insert gets a larger one, which reproduces the insertion order of the Maps the
 * memory backend iterates (retained messages, subscriptions per client).
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE mqtt_retained (
     topic   TEXT PRIMARY KEY,
     head    TEXT NOT NULL,
     payload BLOB, -- BLOB affinity stores TEXT as TEXT: a string payload stays a string
     extra   BLOB
   );
   CREATE TABLE mqtt_subscriptions (
     client_id TEXT NOT NULL,
     topic     TEXT NOT NULL,
     qos       INTEGER NOT NULL,
     rh        INTEGER,
     rap       INTEGER,
     nl        INTEGER,
     sub_id    INTEGER,
     PRIMARY KEY (client_id, topic)
   );
   CREATE TABLE mqtt_outgoing (
     seq            INTEGER PRIMARY KEY,
     client_id      TEXT NOT NULL,
     broker_id      TEXT,
     broker_counter INTEGER,
     message_id     INTEGER,
     head           TEXT NOT NULL,
     payload        BLOB,
     extra          BLOB
   );
   CREATE INDEX mqtt_outgoing_client ON mqtt_outgoing (client_id, seq);
   CREATE TABLE mqtt_incoming (
     client_id  TEXT NOT NULL,
     message_id INTEGER NOT NULL,
     head       TEXT NOT NULL,
     payload    BLOB,
     extra      BLOB,
     PRIMARY KEY (client_id, message_id)
   ) WITHOUT ROWID;
   CREATE TABLE mqtt_wills (
     client_id TEXT PRIMARY KEY,
     broker_id TEXT,
     head      TEXT NOT NULL,
     payload   BLOB,
     extra     BLOB
   );`,
  // MQTT 5 sessions waiting to expire (aedes keeps their timers in memory only): wall-clock ms
  // deadline, so a restart can still end them (docs/broker.md, "MQTT 5").
  `CREATE TABLE mqtt_session_expiry (
     client_id  TEXT PRIMARY KEY,
     expires_at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];
