import { migrate, type Db } from '../store/db.js';

export type Transport = 'mqtt' | 'coap' | 'serial' | 'coap-poll' | 'vision' | 'simulated';

export interface DeviceRecord {
  id: string;
  transport: Transport;
  firstSeen: number;
  lastSeen: number;
  online: boolean;
  /** Why the device went offline: "disconnect", "will", "timeout", "port closed"... */
  reason: string | null;
  messagesIn: number;
  bytesIn: number;
  errors: number;
  /** Payloads (or parts of payloads) refused at the boundary; each is kept as a dead letter. */
  refused: number;
  /** Why the last one was refused, and when (wall-clock ms). */
  lastError: string | null;
  lastErrorAt: number | null;
}

const MIGRATIONS = [
  `CREATE TABLE devices (
     id TEXT PRIMARY KEY,
     transport TEXT NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     online INTEGER NOT NULL DEFAULT 0,
     reason TEXT,
     messages_in INTEGER NOT NULL DEFAULT 0,
     bytes_in INTEGER NOT NULL DEFAULT 0,
     errors INTEGER NOT NULL DEFAULT 0
   )`,
  `ALTER TABLE devices ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE devices ADD COLUMN last_error TEXT;
   ALTER TABLE devices ADD COLUMN last_error_at INTEGER`,
];

/** Longest last-error text kept per device. */
const MAX_ERROR_TEXT = 300;

/**
 * Every device the gateway has heard from, whatever the transport. Counters are kept in memory
 * and written in one transaction per flush interval: a per-message UPDATE would cost an SD-card
 * write per reading. Online/offline transitions are written at once (they are rare and matter).
 */
export class DeviceRegistry {
  private readonly cache = new Map<string, DeviceRecord>();
  private readonly dirty = new Set<string>();
  private readonly upsert;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {
    migrate(db, 'devices', MIGRATIONS);
    this.upsert =
      db.prepare(`INSERT INTO devices (id, transport, first_seen, last_seen, online, reason, messages_in, bytes_in, errors,
        refused, last_error, last_error_at)
      VALUES (@id, @transport, @firstSeen, @lastSeen, @online, @reason, @messagesIn, @bytesIn, @errors,
        @refused, @lastError, @lastErrorAt)
      ON CONFLICT(id) DO UPDATE SET transport=excluded.transport, last_seen=excluded.last_seen, online=excluded.online,
        reason=excluded.reason, messages_in=excluded.messages_in, bytes_in=excluded.bytes_in, errors=excluded.errors,
        refused=excluded.refused, last_error=excluded.last_error, last_error_at=excluded.last_error_at`);
    const rows = db.prepare('SELECT * FROM devices').all() as Record<string, unknown>[];
    for (const r of rows) {
      this.cache.set(String(r['id']), {
        id: String(r['id']),
        transport: r['transport'] as Transport,
        firstSeen: Number(r['first_seen']),
        lastSeen: Number(r['last_seen']),
        // Nothing is connected right after a restart; sources report again as they reconnect.
        online: false,
        reason: r['online'] ? 'restart' : (r['reason'] as string | null),
        messagesIn: Number(r['messages_in']),
        bytesIn: Number(r['bytes_in']),
        errors: Number(r['errors']),
        refused: Number(r['refused'] ?? 0),
        lastError: (r['last_error'] as string | null) ?? null,
        lastErrorAt: r['last_error_at'] == null ? null : Number(r['last_error_at']),
      });
    }
  }

  /** Starts the periodic flush of counters. */
  startFlushing(everyMs = 5000): void {
    this.timer = setInterval(() => this.flush(), everyMs);
    this.timer.unref();
  }

  private touch(id: string, transport: Transport): DeviceRecord {
    let d = this.cache.get(id);
    const t = this.now();
    if (!d) {
      d = {
        id,
        transport,
        firstSeen: t,
        lastSeen: t,
        online: false,
        reason: null,
        messagesIn: 0,
        bytesIn: 0,
        errors: 0,
        refused: 0,
        lastError: null,
        lastErrorAt: null,
      };
      this.cache.set(id, d);
    }
    d.transport = transport;
    d.lastSeen = t;
    this.dirty.add(id);
    return d;
  }

  /** A message of `bytes` bytes arrived from the device. */
  message(id: string, transport: Transport, bytes: number): void {
    const d = this.touch(id, transport);
    d.messagesIn++;
    d.bytesIn += bytes;
  }

  /** Bytes that arrived from the device without (yet) making a message, e.g. a serial stream. */
  received(id: string, transport: Transport, bytes: number): void {
    this.touch(id, transport).bytesIn += bytes;
  }

  error(id: string, transport: Transport): void {
    this.touch(id, transport).errors++;
  }

  /** A payload from the device was refused at the boundary (or accepted with parts left out). */
  refused(id: string, transport: Transport, reason: string, wallMs: number): void {
    const d = this.touch(id, transport);
    d.refused++;
    d.lastError = reason.length > MAX_ERROR_TEXT ? `${reason.slice(0, MAX_ERROR_TEXT - 1)}…` : reason;
    d.lastErrorAt = wallMs;
  }

  /** Records an online/offline transition; returns true if the state changed. */
  setOnline(id: string, transport: Transport, online: boolean, reason: string | null = null): boolean {
    const d = this.touch(id, transport);
    const changed = d.online !== online;
    d.online = online;
    d.reason = online ? null : reason;
    if (changed) this.flush();
    return changed;
  }

  get(id: string): DeviceRecord | undefined {
    const d = this.cache.get(id);
    return d ? { ...d } : undefined;
  }

  list(): DeviceRecord[] {
    return [...this.cache.values()].map((d) => ({ ...d }));
  }

  flush(): void {
    if (this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    this.db.transaction(() => {
      for (const id of ids) {
        const d = this.cache.get(id)!;
        this.upsert.run({ ...d, online: d.online ? 1 : 0 });
      }
    })();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
