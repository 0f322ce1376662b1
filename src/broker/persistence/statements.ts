import type { Statement } from 'better-sqlite3';
import type { Db } from '../../store/db.js';

/** Every statement of the persistence, prepared once when it is constructed. */
export interface Statements {
  retainedPut: Statement;
  retainedDel: Statement;
  retainedGet: Statement;
  retainedTopics: Statement;
  subPut: Statement;
  subDel: Statement;
  subDelClient: Statement;
  subAll: Statement;
  outInsert: Statement;
  outSetMessageId: Statement;
  outReplace: Statement;
  outDelete: Statement;
  outGet: Statement;
  outIndex: Statement;
  inPut: Statement;
  inGet: Statement;
  inDel: Statement;
  inDelClient: Statement;
  inKeys: Statement;
  willPut: Statement;
  willGet: Statement;
  willDel: Statement;
  willKeys: Statement;
  expiryPut: Statement;
  expiryDel: Statement;
  expiryAll: Statement;
}

export function prepareStatements(db: Db): Statements {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    expiryPut: p(`INSERT INTO mqtt_session_expiry (client_id, expires_at) VALUES (?, ?)
      ON CONFLICT (client_id) DO UPDATE SET expires_at = excluded.expires_at`),
    expiryDel: p('DELETE FROM mqtt_session_expiry WHERE client_id = ?'),
    expiryAll: p('SELECT client_id AS clientId, expires_at AS expiresAt FROM mqtt_session_expiry'),
    // Upserts keep the rowid, so iteration order stays the order of first insertion (as a Map).
    retainedPut: p(`INSERT INTO mqtt_retained (topic, head, payload, extra) VALUES (?, ?, ?, ?)
      ON CONFLICT (topic) DO UPDATE SET head = excluded.head, payload = excluded.payload, extra = excluded.extra`),
    retainedDel: p('DELETE FROM mqtt_retained WHERE topic = ?'),
    retainedGet: p('SELECT head, payload, extra FROM mqtt_retained WHERE topic = ?'),
    retainedTopics: p('SELECT topic FROM mqtt_retained ORDER BY rowid'),
    subPut: p(`INSERT INTO mqtt_subscriptions (client_id, topic, qos, rh, rap, nl, sub_id) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (client_id, topic) DO UPDATE SET qos = excluded.qos, rh = excluded.rh, rap = excluded.rap,
      nl = excluded.nl, sub_id = excluded.sub_id`),
    subDel: p('DELETE FROM mqtt_subscriptions WHERE client_id = ? AND topic = ?'),
    subDelClient: p('DELETE FROM mqtt_subscriptions WHERE client_id = ?'),
    subAll: p('SELECT client_id, topic, qos, rh, rap, nl, sub_id FROM mqtt_subscriptions ORDER BY rowid'),
    outInsert:
      p(`INSERT INTO mqtt_outgoing (seq, client_id, broker_id, broker_counter, message_id, head, payload, extra)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    outSetMessageId: p('UPDATE mqtt_outgoing SET message_id = ? WHERE seq = ?'),
    outReplace:
      p(`UPDATE mqtt_outgoing SET broker_id = ?, broker_counter = ?, message_id = ?, head = ?, payload = ?, extra = ?
      WHERE seq = ?`),
    outDelete: p('DELETE FROM mqtt_outgoing WHERE seq = ?'),
    outGet: p('SELECT head, payload, extra FROM mqtt_outgoing WHERE seq = ?'),
    outIndex: p('SELECT seq, client_id, broker_id, broker_counter, message_id FROM mqtt_outgoing ORDER BY seq'),
    inPut: p(
      'INSERT OR REPLACE INTO mqtt_incoming (client_id, message_id, head, payload, extra) VALUES (?, ?, ?, ?, ?)',
    ),
    inGet: p('SELECT head, payload, extra FROM mqtt_incoming WHERE client_id = ? AND message_id = ?'),
    inDel: p('DELETE FROM mqtt_incoming WHERE client_id = ? AND message_id = ?'),
    // Exact key match: a client whose id merely extends this one is untouched.
    inDelClient: p('DELETE FROM mqtt_incoming WHERE client_id = ?'),
    inKeys: p('SELECT client_id, message_id FROM mqtt_incoming'),
    willPut: p(`INSERT INTO mqtt_wills (client_id, broker_id, head, payload, extra) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (client_id) DO UPDATE SET broker_id = excluded.broker_id, head = excluded.head,
      payload = excluded.payload, extra = excluded.extra`),
    willGet: p('SELECT head, payload, extra FROM mqtt_wills WHERE client_id = ?'),
    willDel: p('DELETE FROM mqtt_wills WHERE client_id = ?'),
    willKeys: p('SELECT client_id, broker_id FROM mqtt_wills ORDER BY rowid'),
  };
}

/** Columns of a packet row (codec.ts encoding). */
export interface PacketRow {
  head: string;
  payload: unknown;
  extra: unknown;
}

/** better-sqlite3 binds only numbers, strings, bigints, buffers and null. */
export function sqlValue(v: unknown): string | number | bigint | null {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' ? v : null;
}

export function sqlBool(v: unknown): number | null {
  return typeof v === 'boolean' ? Number(v) : null;
}
