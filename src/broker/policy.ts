import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type {
  Aedes,
  AedesOptions,
  AedesPublishPacket,
  AuthenticateError,
  Client,
  ConnectPacket,
  PublishPacket,
  Subscription,
} from 'aedes';
import type { DeviceRegistry } from '../devices/registry.js';
import type { Logger } from '../log/logger.js';
import type { Pipeline, Refusal } from '../pipeline/pipeline.js';
import { canPublish, canReceive, canSubscribe } from './acl.js';
import {
  brokerPersistence,
  commitBeforePuback,
  disconnectWith,
  exactDedupe,
  hardenClient,
  keepQueueOnResume,
  ReasonCode,
  REFUSED_FILTER,
  restoreAedes12Fixes,
  sentDisconnect,
  setServerKeepAlive,
  type IncomingLookup,
  type PublishNow,
} from './aedes-adapter.js';
import { Authenticator, serverKeepAlive, type ClientIdentity } from './auth.js';
import { encodedSize, withoutWillOnlyProperties } from './mqtt5.js';
import type { BrokerConfig } from './config.js';
import { decodeSensorMessage, type PayloadDecoder } from './ingest.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import type { BrokerMetrics } from './metrics.js';

/**
 * Where refused publishes go. aedes can only refuse a PUBLISH by closing the connection
 * (authorizePublish error, MQTT-3.3.5-2 allows it); we take the other option the clause allows —
 * acknowledge per QoS and discard, as Mosquitto does — so a device with one bad topic or payload
 * keeps its connection. The packet is re-addressed here before aedes stores or routes it: not
 * retained, empty, and never forwarded (authorizeForward drops it). '$' topics are not matched
 * by leading wildcards [MQTT-4.7.2-1].
 */
export const DROP_TOPIC = '$SYS/edge-gateway/dropped';
const EMPTY = Buffer.alloc(0);

/** Per connected client, decided at connect. */
interface Session {
  identity: ClientIdentity;
  /** Tracked in the device registry (authenticated devices, or ids already known as devices). */
  device: boolean;
  hasWill: boolean;
  timedOut: boolean;
}

interface Pending {
  keepalive: number;
  willTopic: string | undefined;
  emptyClientId: boolean;
  clean: boolean;
  protocolVersion: number;
}

/**
 * TCP keepalive idle time for clients that turned MQTT keepalive off (keepalive 0): the kernel
 * then probes a silent peer (Linux: 9 probes 75 s apart), so a vanished device is still found
 * — and its will published — within about 13 minutes instead of never.
 */
const TCP_KEEPALIVE_MS = 60_000;

/** What the policy asks of the durable broker persistence (SqlitePersistence). */
export interface DurableStore {
  /** Does a persistent session (clean=false) hold a QoS > 0 subscription matching `topic`? */
  hasPersistentSubscriber(topic: string): boolean;
  /** MQTT 5 session deadlines kept across restarts (wall-clock ms; null forgets). */
  setSessionExpiry(clientId: string, expiresAt: number | null): Promise<void>;
  sessionExpiries(): { clientId: string; expiresAt: number }[];
  /** Ends the stored session of a client that is not connected. */
  endSession(clientId: string): Promise<void>;
}

/** MQTT 5 "the session does not expire" (§3.1.2.11.2). */
const NEVER_EXPIRES = 0xffffffff;
/** setTimeout's longest delay; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface PolicyOptions {
  config: BrokerConfig;
  log: Logger;
  pipeline: Pipeline;
  devices: DeviceRegistry;
  metrics: BrokerMetrics;
  decoders: readonly PayloadDecoder[];
}

/**
 * The broker's decisions, as aedes handlers: who connects (auth), who may publish/subscribe/receive
 * (ACL), what becomes a reading (ingest, acknowledged after commit), and the device registry.
 */
export class BrokerPolicy {
  private readonly auth: Authenticator;
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly pending = new WeakMap<Client, Pending>();
  /** Verified client-certificate CN per TLS socket (set by the listener). */
  readonly certCN = new WeakMap<object, string>();
  private readonly warn: RateLimitedLog;
  private persistence: IncomingLookup | undefined;
  /** Set with a durable store: QoS 1 messages it must keep are committed before their PUBACK. */
  private publishNow: PublishNow | undefined;
  private store: DurableStore | undefined;
  private resumeQueue: ((client: Client) => void) | undefined;
  /** Client ids with a stored session deadline, and the timers armed for them after a restart. */
  private readonly deadlines = new Map<string, NodeJS.Timeout | undefined>();
  closing = false;

  constructor(private readonly o: PolicyOptions) {
    this.auth = new Authenticator(o.config);
    this.warn = new RateLimitedLog(o.log);
  }

  hooks(): Pick<
    AedesOptions,
    'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'
  > {
    return {
      preConnect: (client, packet, cb) => this.preConnect(client, packet, cb),
      authenticate: (client, username, password, cb) => this.authenticate(client, username, password, cb),
      authorizePublish: (client, packet, cb) => this.authorizePublish(client, packet, cb),
      authorizeSubscribe: (client, sub, cb) => this.authorizeSubscribe(client, sub, cb),
      authorizeForward: (client, packet) => this.authorizeForward(client, packet),
    };
  }

  /** `store`: the durable persistence (absent with aedes' in-memory one: nothing to wait for). */
  attach(aedes: Aedes, store?: DurableStore): void {
    this.persistence = brokerPersistence(aedes);
    if (store) {
      this.store = store;
      this.publishNow = commitBeforePuback(aedes);
    }
    restoreAedes12Fixes(aedes, {
      maxInboundQoS2: this.o.config.receive_maximum,
      cleanStart: (client) => this.pending.get(client)?.clean ?? true,
      onExceeded: (client) =>
        this.warn.warn(
          `rxmax:${client.id}`,
          { code: 'EGW_MQTT_LIMIT', clientId: client.id, limit: this.o.config.receive_maximum },
          'MQTT client exceeded broker.receive_maximum (QoS 2 messages awaiting PUBREL); disconnected',
        ),
    });
    this.resumeQueue = keepQueueOnResume(aedes);
    if (store) this.keepSessionDeadlines(aedes, store);
    aedes.on('client', (client) => this.online(client));
    aedes.on('clientDisconnect', (client) => this.offline(client));
    aedes.on('keepaliveTimeout', (client) => {
      const s = this.sessions.get(client);
      if (s) s.timedOut = true;
    });
    aedes.on('clientError', (client, err) =>
      this.o.log.debug({ clientId: client.id, err: err.message }, 'client error'),
    );
    aedes.on('connectionError', (_client, err) => this.o.log.debug({ err: err.message }, 'connection error'));
  }

  /**
   * Session Expiry across a restart. aedes 2.0.0-beta.1 arms the expiry of a disconnected MQTT 5
   * session as an in-memory timer only; after a restart (or kill -9) such a session was never ended.
   * The deadline is stored when the client goes (wall clock: it must outlive the process) and
   * forgotten when it comes back or aedes ends the session; at start every stored deadline becomes
   * a timer again (monotonic from here on) or, if it has passed, the session ends now. A board that
   * starts with its clock in 1970 sees the deadlines far ahead: sessions then last longer, never
   * shorter, until the next restart.
   */
  private keepSessionDeadlines(aedes: Aedes, store: DurableStore): void {
    const end = (clientId: string) => {
      this.deadlines.delete(clientId);
      if (aedes.closed) return;
      store
        .endSession(clientId)
        .catch((err: unknown) =>
          this.o.log.error({ err, clientId, code: 'EGW_MQTT_PERSISTENCE' }, 'MQTT session expiry failed'),
        );
    };
    const arm = (clientId: string, expiresAt: number) => {
      const left = expiresAt - Date.now();
      if (left <= 0) return end(clientId);
      const timer = setTimeout(
        () => (left > MAX_TIMER_MS ? arm(clientId, expiresAt) : end(clientId)),
        Math.min(left, MAX_TIMER_MS),
      );
      timer.unref();
      this.deadlines.set(clientId, timer);
    };
    for (const { clientId, expiresAt } of store.sessionExpiries()) arm(clientId, expiresAt);
    aedes.on('clientDisconnect', (client) => {
      const interval = client.version === 5 ? client.sessionExpiryInterval : 0;
      if (interval <= 0 || interval >= NEVER_EXPIRES) return;
      this.deadlines.set(client.id, undefined);
      void store.setSessionExpiry(client.id, Date.now() + interval * 1000).catch(() => undefined);
    });
    const forget = (client: Client) => {
      if (!this.deadlines.has(client.id)) return;
      clearTimeout(this.deadlines.get(client.id));
      this.deadlines.delete(client.id);
      void store.setSessionExpiry(client.id, null).catch(() => undefined);
    };
    aedes.on('client', forget);
    (aedes as unknown as NodeJS.EventEmitter).on('sessionExpired', forget);
  }

  private preConnect(client: Client, packet: ConnectPacket, cb: (err: Error | null, ok: boolean) => void): void {
    const keepalive = packet.keepalive ?? 0;
    this.pending.set(client, {
      keepalive,
      willTopic: packet.will?.topic,
      emptyClientId: packet.clientId.length === 0,
      clean: packet.clean !== false,
      protocolVersion: packet.protocolVersion ?? 4,
    });
    hardenClient(client);
    exactDedupe(client);
    // Keepalive 0 turns MQTT's dead-client detection off (§3.1.2.10); TCP's stays.
    if (keepalive === 0) (client.conn as Partial<Socket>).setKeepAlive?.(true, TCP_KEEPALIVE_MS);
    cb(null, true);
  }

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    cb: (err: AuthenticateError | null, ok: boolean | null) => void,
  ): void {
    const pending = this.pending.get(client);
    if (!pending) return cb(null, false); // preConnect always runs first (aedes connect.js)
    const conn = client.conn as Socket;
    this.auth
      .authenticate({
        clientId: client.id,
        username,
        password,
        remoteAddress: conn.remoteAddress,
        certCN: this.certCN.get(conn),
        tls: (conn as Partial<TLSSocket>).encrypted === true,
        keepalive: pending.keepalive,
        emptyClientId: pending.emptyClientId,
        clean: pending.clean,
        protocolVersion: pending.protocolVersion,
      })
      .then(
        (res) => {
          let r = res;
          // The will is checked now, not when it fires: a will stored in persistence is published
          // without its client after a crash (aedes passes client = null), past any ACL.
          const acl = r.ok ? r.identity.acl : null;
          if (acl && pending.willTopic !== undefined && !canPublish(acl, pending.willTopic)) {
            r = { ok: false, returnCode: 5, reason: 'not_authorized', message: 'will topic not allowed by the ACL' };
          }
          if (r.ok) {
            const hasWill = pending.willTopic !== undefined;
            if (pending.protocolVersion === 5) {
              const ska = serverKeepAlive(this.o.config, pending.keepalive);
              if (ska !== undefined) setServerKeepAlive(client, ska);
              this.resumeQueue?.(client);
            }
            this.sessions.set(client, { identity: r.identity, device: false, hasWill, timedOut: false });
            return cb(null, true);
          }
          this.o.metrics.auth[r.reason].inc();
          this.warn.warn(
            `auth:${conn.remoteAddress}`,
            { code: 'EGW_MQTT_AUTH', clientId: client.id, username, remote: conn.remoteAddress, reason: r.reason },
            `MQTT connect refused: ${r.message}`,
          );
          const err = new Error(r.message) as AuthenticateError;
          err.returnCode = r.returnCode as number as AuthenticateError['returnCode'];
          cb(err, false);
        },
        (err: unknown) => {
          this.o.log.error({ err, clientId: client.id }, 'authentication failed unexpectedly');
          const e = new Error('server unavailable') as AuthenticateError;
          e.returnCode = 3 as AuthenticateError['returnCode'];
          cb(e, false);
        },
      );
  }

  private online(client: Client): void {
    const s = this.sessions.get(client);
    if (!s) return;
    // Random ids of local tools (mosquitto_sub, dashboards) must not fill the registry: a trusted
    // client is tracked only once its id is known as a device (it published sensors/{id}/data).
    s.device = !s.identity.trusted || this.o.devices.get(client.id) !== undefined;
    if (s.device) this.o.devices.setOnline(client.id, 'mqtt', true);
  }

  private offline(client: Client): void {
    const s = this.sessions.get(client);
    if (!s?.device) return;
    const clean = sentDisconnect(client);
    const reason = this.closing
      ? 'shutdown'
      : s.timedOut
        ? 'keepalive timeout'
        : clean
          ? 'disconnect'
          : s.hasWill
            ? 'will'
            : 'connection lost';
    this.o.devices.setOnline(client.id, 'mqtt', false, reason);
  }

  private drop(packet: PublishPacket): void {
    packet.topic = DROP_TOPIC;
    packet.retain = false;
    packet.payload = EMPTY;
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    const { metrics, devices } = this.o;
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const s = client ? this.sessions.get(client) : undefined;
    // Accepted QoS 1 messages are published before aedes writes the PUBACK, which waits for the
    // commit when there is something to keep: a retained message, a persistent session's queue
    // (docs/broker.md, "Persistence": acknowledged means kept).
    const publishNow = this.publishNow;
    const accept: (err?: Error | null) => void =
      packet.qos === 1 && client && publishNow
        ? (err) =>
            err
              ? cb(err)
              : publishNow(
                  client,
                  packet,
                  (packet.retain ? 1 : 0) + (this.store!.hasPersistentSubscriber(packet.topic) ? 1 : 0),
                  cb,
                )
        : cb;
    // aedes 2.0.0-beta.1 publishes a will with the CONNECT's will properties as they are, Will Delay
    // Interval included — not a PUBLISH property (§3.3.2.3); strict clients reject such a packet
    // (Paho's test_will_message / test_will_delay). The delay was applied before this call.
    if (packet.properties) packet.properties = withoutWillOnlyProperties(packet.properties);
    metrics.messagesIn.inc();
    metrics.bytesIn.inc(payload.length);
    if (client && s?.device) devices.message(client.id, 'mqtt', payload.length);
    // '$' topics belong to the broker (aedes refuses $SYS/ by default; we keep that for every client).
    if (topic.charCodeAt(0) === 36 || (s && s.identity.acl && !canPublish(s.identity.acl, topic))) {
      metrics.aclPublish.inc();
      this.warn.warn(
        `acl:${client?.id}`,
        { code: 'EGW_MQTT_ACL', clientId: client?.id, username: s?.identity.username, topic: topic.slice(0, 200) },
        'MQTT publish refused by the ACL; acknowledged and discarded',
      );
      // MQTT 5: aedes answers an authorizePublish error with PUBACK/PUBREC 0x87 (Not authorized) and
      // discards the message, keeping the connection (QoS 0: discarded). 3.1.1 has no negative ack.
      // No Reason String (the error message would become one): the log says why, and Paho's v5
      // client cannot parse a PUBACK with properties (valid, §3.4.2.2) — test_dollar_topics.
      if (client?.version === 5) return cb(new Error(''));
      this.drop(packet);
      return cb(null);
    }
    this.boundExpiry(packet);
    const result = decodeSensorMessage(topic, payload, Date.now(), this.o.decoders, packet.properties?.contentType);
    if (result === undefined) return accept(null);
    if (!result.ok) {
      (result.code === 'EGW_INGEST_DEVICE_ID' ? metrics.ingest.device_id : metrics.ingest.invalid_payload).inc();
      // MQTT 3.1.1 has no negative PUBACK: acknowledged, and the bytes kept as a dead letter
      // (the refusal sink counts it for the device and logs it at most once a minute per device).
      this.drop(packet);
      this.o.pipeline
        .refuse(this.refusal(client, topic, payload, result.deviceId, result.code, result.message, 0))
        .then(() => cb(null), cb);
      return;
    }
    if (result.problems) {
      // Accepted with readings or fields left out: the original payload is kept beside the readings.
      metrics.ingest.invalid_payload.inc();
      const kept = this.o.pipeline.refuse(
        this.refusal(
          client,
          topic,
          payload,
          result.deviceId,
          'EGW_INGEST_INVALID',
          result.message,
          result.readings.length,
        ),
      );
      const ingested = cb;
      cb = (err) => void kept.then(() => ingested(err));
    }
    if (client && s && !s.device) {
      if (result.deviceId === client.id) {
        // A local client publishing its own readings is a device after all.
        s.device = true;
        devices.setOnline(client.id, 'mqtt', true);
        devices.message(client.id, 'mqtt', payload.length);
      } else devices.message(result.deviceId, 'mqtt', payload.length);
    }
    // QoS 2 retransmission (DUP) of a packet already stored: aedes answers PUBREC without
    // publishing again, so it must not be ingested again either (exactly once).
    if (packet.qos === 2 && packet.dup && client && this.persistence) {
      this.persistence.incomingGetPacket(client, packet).then(
        () => cb(null),
        () => this.ingest(client, packet, result.readings, cb),
      );
      return;
    }
    this.ingest(client, packet, result.readings, accept);
  }

  /** Cuts an MQTT 5 Message Expiry Interval to broker.message_expiry_max_s (aedes stores the absolute expiry). */
  private boundExpiry(packet: PublishPacket): void {
    const max = this.o.config.message_expiry_max_s;
    const props = packet.properties;
    if (max > 0 && props?.messageExpiryInterval !== undefined && props.messageExpiryInterval > max) {
      props.messageExpiryInterval = max;
    }
  }

  private refusal(
    client: Client | null,
    topic: string,
    payload: Buffer,
    deviceId: string | undefined,
    code: Refusal['code'],
    reason: string,
    accepted: number,
  ): Refusal {
    return { source: 'mqtt', transport: 'mqtt', deviceId, origin: client?.id, topic, payload, code, reason, accepted };
  }

  /**
   * DESIGN "acknowledge after commit": authorizePublish runs before aedes writes PUBACK (QoS 1:
   * lib/handlers/publish.js writes PUBACK first, then publishes — so the `published` hook would
   * be too late) and before it stores a QoS 2 packet and answers PUBREC. The callback therefore
   * waits for the pipeline's commit. A refusal (overload, a sink failing) is passed to aedes,
   * which closes the connection without acknowledging: the client retransmits after reconnecting.
   */
  private ingest(
    client: Client | null,
    packet: PublishPacket,
    readings: Parameters<Pipeline['ingest']>[0],
    cb: (err?: Error | null) => void,
  ): void {
    this.o.pipeline.ingest(readings, { topic: packet.topic, origin: client?.id }).then(
      () => {
        this.o.metrics.readings.inc(readings.length);
        cb(null);
      },
      (err: Error & { code?: string }) => {
        const overload = err.code === 'EGW_PIPELINE_OVERLOAD';
        (overload ? this.o.metrics.ingest.overload : this.o.metrics.ingest.pipeline).inc();
        this.warn.warn(
          `pipeline:${overload}`,
          { code: err.code, clientId: client?.id, err: err.message },
          'MQTT reading not accepted by the pipeline; not acknowledged, connection closed so the client retries',
        );
        // MQTT 5: aedes would answer the error with PUBACK 0x87, which ends the message for the
        // client. Closing first (DISCONNECT 0x89 Server busy / 0x80) keeps it unacknowledged, so the
        // client retransmits after reconnecting, as a 3.1.1 client does.
        if (client?.version === 5) {
          const code = overload ? ReasonCode.SERVER_BUSY : ReasonCode.UNSPECIFIED_ERROR;
          disconnectWith(client, code, () => cb(err));
          return;
        }
        cb(err);
      },
    );
  }

  private authorizeSubscribe(
    client: Client,
    sub: Subscription,
    cb: (err: Error | null, sub?: Subscription | null) => void,
  ): void {
    const acl = this.sessions.get(client)?.identity.acl;
    if (sub.topic === REFUSED_FILTER) return cb(null, null);
    if (!acl || canSubscribe(acl, sub.topic)) return cb(null, sub);
    this.o.metrics.aclSubscribe.inc();
    this.warn.warn(
      `acl-sub:${client.id}`,
      { code: 'EGW_MQTT_ACL', clientId: client.id, topic: sub.topic.slice(0, 200) },
      'MQTT subscription refused by the ACL (SUBACK 0x80)',
    );
    cb(null, null); // [MQTT-3.9.3] return code 0x80 for this filter, the others proceed
  }

  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    if (packet.topic === DROP_TOPIC) return null;
    const acl = this.sessions.get(client)?.identity.acl;
    if (acl && !canReceive(acl, packet.topic)) return null;
    // [MQTT-3.1.2-25] a packet larger than the client's Maximum Packet Size is discarded, not sent
    // (aedes 2.0.0-beta.1 stores the value but does not act on it).
    const max = client.version === 5 ? client.maximumPacketSize : undefined;
    if (max !== undefined && encodedSize(packet) > max) return null;
    this.o.metrics.messagesOut.inc();
    this.o.metrics.bytesOut.inc(packet.payload.length);
    return packet;
  }
}
