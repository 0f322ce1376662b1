import { readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { GatewayError } from '../errors.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import { StateLog, type Logger } from '../log/logger.js';
import { AdaptiveRate, messageCost, TokenBucket } from '../queue/bandwidth.js';
import type { QueueConfig } from '../queue/config.js';
import type { UplinkMessage } from '../queue/outbox.js';
import type { OutboxPort } from '../queue/port.js';
import { Scheduler } from '../queue/scheduler.js';
import { PRIORITIES } from '../queue/types.js';
import type { UplinkConfig } from './config.js';
import {
  createProfile,
  type CloudProfile,
  type Downlink,
  type DownlinkProps,
  type ProfileLink,
  type WirePublish,
} from './profiles/index.js';

export interface UplinkOptions {
  config: UplinkConfig;
  queue: QueueConfig;
  gatewayId: string;
  outbox: OutboxPort;
  log: Logger;
  now?: () => number;
  /** The cloud profile (docs/cloud-profiles.md); default: the one `config.profile` names. */
  profile?: CloudProfile;
}

interface InFlight {
  msg: UplinkMessage;
  cost: number;
  sentAt: number;
}

/** In-flight slots beyond the window that only CRITICAL may use, so a window full of LOW cannot hold an alarm back. */
const CRITICAL_RESERVE = 8;
/**
 * Work one pump turn may do before it yields to the event loop (forming a batch of 1,000 readings
 * decodes and re-encodes them): while a backlog drains, new readings' commits and PUBACKs run
 * between turns instead of waiting behind a whole in-flight window of batches.
 */
const PUMP_BUDGET_MS = 5;
export { MSG_ID_PROPERTY } from './profiles/index.js';

/**
 * The uplink: one mqtt.js connection to the cloud broker (MQTT 5, QoS 1) fed by the outbox through
 * the scheduler and the token bucket. Reconnects with exponential backoff and jitter, detects a
 * dead link by keepalive or by an acknowledgement slower than `ack_timeout_ms`, and re-sends what
 * was in flight under the same ids. Rows leave the outbox only on PUBACK.
 */
export class Uplink implements Service {
  readonly name = 'uplink';
  private client: MqttClient | undefined;
  private gen = 0;
  private attempts = 0;
  private online = false;
  private stopped = true;
  private pumping = false;
  private receiveMax = 65535;
  private lastError: string | undefined;
  /** Cause of the last failed connection attempt already logged (logged again only when it changes). */
  private reportedError: string | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAt = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private probeSocket: Socket | undefined;
  /** A probe found the port open and the attempt it started failed: no more probes until the next backoff attempt. */
  private probeSpent = false;
  /** The current attempt was started by a probe. */
  private probeTriggered = false;
  private more: NodeJS.Immediate | undefined;
  private pumpTimer: NodeJS.Timeout | undefined;
  private pumpAt = Infinity;
  private checkTimer: NodeJS.Timeout | undefined;
  private holdUntil = 0;
  private readonly inflight = new Map<string, InFlight>();
  /** Pending `send()`s (not outbox messages): settled on PUBACK, failed when the connection drops. */
  private readonly sends = new Set<(err?: Error) => void>();
  private readonly scheduler: Scheduler;
  private readonly bucket: TokenBucket | undefined;
  private readonly adaptive: AdaptiveRate | undefined;
  private readonly state: StateLog<'online' | 'offline'>;
  private readonly prefix: string;
  private readonly now: () => number;
  private readonly idBytes: number;
  /** What goes on the wire: connect options, topics, payloads, downlink (src/uplink/profiles/). */
  readonly profile: CloudProfile;
  private renewTimer: NodeJS.Timeout | undefined;
  private readonly downlinkHandlers: ((d: Downlink) => void)[] = [];
  private readonly connectedHandlers: (() => void)[] = [];
  lastAckLatencyMs: number | null = null;
  readonly counters = {
    published: 0,
    acked: 0,
    requeued: 0,
    connects: 0,
    ackTimeouts: 0,
    refused: 0,
    /** Messages the cloud profile cannot send within its limits (EGW_UPLINK_PROFILE): logged and dropped. */
    unsendable: 0,
    downlinks: 0,
    /** Full connection attempts (TCP + TLS + CONNECT) and cheap TCP reachability probes. */
    attempts: 0,
    probes: 0,
  };

  constructor(private readonly opts: UplinkOptions) {
    const { queue } = opts;
    this.now = opts.now ?? (() => performance.now());
    this.scheduler = new Scheduler({
      shares: PRIORITIES.map((p) => queue.classes[p].share),
      criticalBurstBytes: queue.bandwidth.critical_burst_bytes,
    });
    const bw = queue.bandwidth;
    if (bw.limit_kbps > 0) {
      const max = (bw.limit_kbps * 1000) / 8;
      this.bucket = new TokenBucket(max, bw.burst_bytes, this.now());
      if (bw.adaptive.enabled) {
        this.adaptive = new AdaptiveRate(
          {
            maxBps: max,
            minBps: Math.min(max, (bw.adaptive.min_kbps * 1000) / 8),
            targetLatencyMs: bw.adaptive.ack_latency_ms,
          },
          this.now(),
        );
      }
    }
    this.profile = opts.profile ?? createProfile(opts.config, opts.gatewayId);
    this.prefix = this.profile.topicPrefix;
    this.idBytes = opts.outbox.idLength;
    this.state = new StateLog(opts.log, 'uplink', 'offline');
    opts.outbox.onCommit(() => this.pumpSoon());
  }

  /** What a message costs the link (payload + MQTT framing + link overhead); what the bucket and shares count. */
  cost(msg: UplinkMessage): number {
    return messageCost(
      Buffer.byteLength(msg.topic) + this.prefix.length + 1,
      this.idBytes,
      msg.contentType.length,
      msg.payload.byteLength,
      this.opts.queue.bandwidth.link_overhead_bytes,
    );
  }

  get rateBytesPerS(): number | null {
    return this.bucket ? this.bucket.rate : null;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  get isOnline(): boolean {
    return this.online;
  }

  async start(): Promise<void> {
    // Unreadable or unusable TLS files are a configuration error: refuse to start (as the broker's
    // TLS listener does) rather than retry forever. They are read again at every connect, so a
    // renewed certificate is picked up on the next reconnect.
    checkTlsFiles(this.opts.config);
    this.stopped = false;
    this.opts.log.info(
      { url: this.opts.config.url },
      'uplink connecting; readings wait in the outbox until it is online',
    );
    // Never blocks start: the gateway runs (and the outbox fills) with the cloud unreachable.
    this.connect();
    this.checkTimer = setInterval(() => this.checkAcks(), 1000);
    this.checkTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.online && this.client) this.profile.onStopping(this.link(this.client));
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.renewTimer);
    this.stopProbing();
    if (this.more) clearImmediate(this.more);
    clearTimeout(this.pumpTimer);
    clearInterval(this.checkTimer);
    this.drop('stopping');
    this.online = false;
  }

  health(): ServiceHealth {
    // Offline is a normal state of an edge gateway (the outbox holds the data), not a fault.
    return {
      ok: true,
      state: this.stopped ? 'stopped' : this.online ? 'online' : 'offline',
      detail: { url: this.opts.config.url, inflight: this.inflight.size, lastError: this.lastError },
    };
  }

  private clientOptions(): IClientOptions {
    const c = this.opts.config;
    const read = (f: string | undefined) => {
      if (!f) return undefined;
      try {
        return readFileSync(f);
      } catch (err) {
        throw new GatewayError('EGW_UPLINK_TLS', `cannot read ${f}: ${(err as Error).message}`, { cause: err });
      }
    };
    return this.profile.connectOptions({
      protocolVersion: 5,
      clientId: c.client_id || `edge-${this.opts.gatewayId}`,
      // The send-only link starts clean (the outbox, not the session, holds its data) [MQTT-3.1.2-4];
      // a profile with the downlink on keeps its session (mqtt: session_expiry_s; azure: CleanSession 0).
      clean: true,
      keepalive: c.keepalive_s,
      connectTimeout: c.connect_timeout_ms,
      reconnectPeriod: 0, // our own backoff with jitter (below)
      username: c.username,
      password: c.password,
      ca: read(c.ca_file),
      cert: read(c.cert_file),
      key: read(c.key_file),
      rejectUnauthorized: c.reject_unauthorized,
      queueQoSZero: false,
      resubscribe: false,
    });
  }

  /** Downlink from the cloud, in the contract's terms whatever the profile (device/gateway commands, desired config). */
  onDownlink(handler: (d: Downlink) => void): void {
    this.downlinkHandlers.push(handler);
  }

  /** After every CONNACK, once the subscriptions are sent (the downlink: state, unsent results). */
  onConnected(handler: () => void): void {
    this.connectedHandlers.push(handler);
  }

  /** Publishes the reported state the profile's way (retained `{prefix}/state`, an Azure twin PATCH...). False when offline. */
  reportState(doc: Record<string, unknown>): boolean {
    if (!this.online || !this.client) return false;
    this.link(this.client).publish(this.profile.reportState(doc));
    return true;
  }

  /** Publishes a profile asks for outside the outbox (births, twin requests): fire and forget. */
  private link(client: MqttClient): ProfileLink {
    const v5 = this.profile.protocolVersion === 5;
    return {
      publish: (w) =>
        client.publish(w.topic, w.payload, {
          qos: w.qos,
          retain: w.retain ?? false,
          ...(v5 && w.properties ? { properties: w.properties } : {}),
        }),
    };
  }

  /**
   * Operator's "the cloud is back, try now" (`edge-gateway ctl uplink reconnect`): when offline,
   * abandons the pending attempt, resets the backoff and connects at once. Returns the state.
   */
  reconnectNow(): 'online' | 'connecting' | 'stopped' {
    if (this.stopped) return 'stopped';
    if (this.online) return 'online';
    this.opts.log.info({ url: this.opts.config.url }, 'uplink reconnect requested');
    this.attempts = 0;
    this.probeSpent = false;
    clearTimeout(this.reconnectTimer);
    this.stopProbing();
    this.drop('reconnect requested');
    this.connect();
    return 'connecting';
  }

  private connect(): void {
    if (this.stopped) return;
    this.stopProbing();
    this.counters.attempts++;
    const gen = ++this.gen;
    let client: MqttClient;
    try {
      client = mqtt.connect(this.opts.config.url, this.clientOptions());
    } catch (err) {
      this.lastError = (err as Error).message;
      this.connectFailed(err as Error & { code?: string });
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    client.on('connect', (connack) => {
      if (gen !== this.gen) return;
      // Nagle would hold small PUBLISHes back for the previous segment's ACK: ms of latency per alarm.
      (client.stream as Socket).setNoDelay?.(true);
      this.receiveMax = Math.min(connack.properties?.receiveMaximum ?? 65535, this.profile.maxInflight ?? 65535);
      this.attempts = 0;
      this.probeTriggered = false;
      this.probeSpent = false;
      this.online = true;
      this.lastError = undefined;
      this.reportedError = undefined;
      this.counters.connects++;
      this.state.set('online', { url: this.opts.config.url, profile: this.profile.name }, 'info');
      this.profileConnected(client, gen);
      for (const h of this.connectedHandlers) h();
      this.pump();
    });
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.gen) return;
      // Cloud input: a profile or handler that throws must not take the connection (or the process) down.
      try {
        const p = packet.properties;
        const props: DownlinkProps = {
          correlationData: p?.correlationData,
          responseTopic: p?.responseTopic,
          userProperties: p?.userProperties,
        };
        const parsed = this.profile.inbound(topic, payload, this.link(client));
        if (!parsed) return;
        // The PUBLISH's properties unless the profile mapped its own (Azure's $.cid, Sparkplug's ids).
        const d: Downlink = parsed.props ? parsed : { ...parsed, props };
        this.counters.downlinks++;
        for (const h of this.downlinkHandlers) h(d);
      } catch (err) {
        this.opts.log.warn({ err, topic, profile: this.profile.name }, 'uplink: downlink message not processed');
      }
    });
    client.on('error', (err: Error & { code?: string | number }) => {
      if (gen !== this.gen) return;
      this.lastError = err.message;
      // Before CONNACK: this attempt failed (TLS handshake, refused CONNECT, network).
      if (!this.online) this.connectFailed(err);
    });
    client.on('close', () => {
      if (gen === this.gen && !this.stopped) this.lost(this.lastError ?? 'connection closed');
    });
  }

  /**
   * Why a connection attempt failed, logged once per distinct cause rather than per retry (the
   * offline state itself is logged by `state`). TLS failures get their own code and a hint: they
   * do not heal by retrying, unlike a cloud that is down.
   */
  private connectFailed(err: Error & { code?: string | number }): void {
    const code = typeof err.code === 'string' ? err.code : undefined;
    const key = `${code ?? ''} ${err.message}`;
    if (key === this.reportedError) return;
    this.reportedError = key;
    const url = this.opts.config.url;
    if ((err as GatewayError).code === 'EGW_UPLINK_TLS' || isTlsError(code, err.message)) {
      // An alert from the broker (e.g. "unknown ca", "certificate required") means it refused our
      // certificate; anything else on the way in is our verification of its certificate failing.
      const refusedByBroker = code !== undefined && code.includes('_ALERT_');
      this.opts.log.error(
        { code: 'EGW_UPLINK_TLS', url, reason: opensslReason(err.message), tlsCode: code },
        refusedByBroker
          ? 'uplink TLS: the cloud broker refused the handshake; check that it trusts the CA of uplink.cert_file (and that cert_file/key_file are set if it requires a client certificate). Retrying with backoff; the outbox keeps the data'
          : (err as GatewayError).code === 'EGW_UPLINK_TLS'
            ? 'uplink TLS files cannot be read; retrying with backoff; the outbox keeps the data'
            : 'uplink TLS: the cloud broker certificate is not trusted; check that uplink.ca_file signs it and that it is issued for the host in uplink.url. Retrying with backoff; the outbox keeps the data',
      );
    } else {
      this.opts.log.warn(
        { code: 'EGW_UPLINK_OFFLINE', url, reason: err.message },
        'uplink cannot connect to the cloud broker; retrying with backoff, the outbox keeps the data',
      );
    }
  }

  /** Subscriptions, births / twin GET, and the credential renewal timer of the profile. */
  private profileConnected(client: MqttClient, gen: number): void {
    const subs = this.profile.subscriptions();
    if (subs.length > 0) {
      // Re-subscribing is idempotent [MQTT-3.8.4-3]; it also covers a session the broker dropped.
      client.subscribe([...subs], { qos: 1 }, (err, granted) => {
        if (gen !== this.gen) return;
        // A SUBACK reason code >= 0x80 is a refusal [MQTT-3.9.3] (e.g. 0x87 not authorized).
        const refused = granted?.filter((g) => g.qos >= 0x80).map((g) => g.topic) ?? [];
        if (err || refused.length > 0)
          this.opts.log.warn(
            { err, subs, refused, code: 'EGW_UPLINK_REFUSED', profile: this.profile.name },
            'uplink: the cloud broker refused the downlink subscriptions; grant subscribe rights on them',
          );
      });
    }
    this.profile.onConnected(this.link(client));
    clearTimeout(this.renewTimer);
    const renew = this.profile.renewAfterMs();
    if (renew !== undefined) {
      this.renewTimer = setTimeout(() => {
        if (gen !== this.gen || this.stopped) return;
        // A fresh token needs a new CONNECT; in-flight messages are re-queued and re-sent (same ids).
        this.opts.log.info({ profile: this.profile.name }, 'uplink: renewing credentials (reconnect)');
        this.drop('renewing credentials');
        this.connect();
      }, renew);
      this.renewTimer.unref();
    }
  }

  /** The connection is gone (or declared dead): re-queue in-flight messages and reconnect later. */
  private lost(reason: string): void {
    this.drop(reason);
    this.state.set(
      'offline',
      {
        reason,
        code: 'EGW_UPLINK_OFFLINE',
        queued: Object.values(this.opts.outbox.classStats()).reduce((a, c) => a + c.depth, 0),
      },
      'warn',
    );
    this.scheduleReconnect();
  }

  private drop(reason: string): void {
    this.gen++;
    this.online = false;
    const list = [...this.inflight.values()];
    this.inflight.clear();
    for (const settle of [...this.sends]) settle(new Error(`connection dropped: ${reason}`));
    // Newest first, so each class gets its messages back in their original order.
    for (let i = list.length - 1; i >= 0; i--) this.opts.outbox.requeue(list[i]!.msg);
    this.counters.requeued += list.length;
    const c = this.client;
    this.client = undefined;
    if (c) {
      // Our listeners ignore an old generation, so they stay. removeAllListeners('close') also
      // removed mqtt.js' own, which clears its CONNACK timer and keepalive interval: each dropped
      // client then kept timers alive (a connect_timeout_ms hang at shutdown, a leak per reconnect).
      c.on('error', () => undefined);
      c.end(true);
    }
    if (list.length > 0) this.opts.log.debug({ reason, requeued: list.length }, 'in-flight messages re-queued');
  }

  /**
   * Exponential backoff with jitter: min·2^n capped at max, minus a random fraction (AWS "equal
   * jitter"). Full attempts (TCP + TLS + MQTT CONNECT) back off so a cloud that stays down is not
   * hammered; between them, cheap TCP probes (below) notice within `probe_ms` that it is back.
   */
  private scheduleReconnect(): void {
    if (this.stopped) return;
    // The attempt that just failed was started by a probe that found the port open: the broker
    // accepts TCP but not us (overloaded, refusing CONNECT, TLS). Wait for the backoff, no probes.
    this.probeSpent = this.probeTriggered;
    this.probeTriggered = false;
    const r = this.opts.config.reconnect;
    const base = Math.min(r.max_ms, r.min_ms * 2 ** Math.min(this.attempts, 30));
    const delay = Math.round(base * (1 - r.jitter * Math.random()));
    this.attempts++;
    clearTimeout(this.reconnectTimer);
    this.reconnectAt = this.now() + delay;
    this.reconnectTimer = setTimeout(() => ((this.probeSpent = false), this.connect()), delay);
    this.scheduleProbe();
  }

  /**
   * A TCP reachability probe of the broker's host and port (a SYN, closed at once: nothing for
   * the broker to authenticate or negotiate), every `reconnect.probe_ms` ± 25 % while the next
   * full attempt is further away than that. When the port accepts, the full attempt starts now.
   */
  private scheduleProbe(): void {
    const every = this.opts.config.reconnect.probe_ms;
    if (every <= 0 || this.stopped || this.online || this.probeSpent) return;
    const delay = Math.round(every * (0.75 + 0.5 * Math.random()));
    if (this.now() + delay >= this.reconnectAt) return; // the backoff attempt comes first
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => this.probe(), delay);
  }

  private probe(): void {
    this.probeTimer = undefined;
    if (this.stopped || this.online) return;
    let host: string;
    let port: number;
    try {
      const u = new URL(this.opts.config.url);
      host = u.hostname.replace(/^\[|\]$/g, '');
      port = Number(u.port || (u.protocol === 'mqtts:' ? 8883 : 1883));
    } catch {
      return;
    }
    this.counters.probes++;
    const sock = tcpConnect({ host, port });
    this.probeSocket = sock;
    const done = (open: boolean) => {
      sock.removeAllListeners();
      sock.on('error', () => undefined);
      sock.destroy();
      if (this.probeSocket !== sock) return;
      this.probeSocket = undefined;
      if (this.stopped || this.online) return;
      if (!open) return this.scheduleProbe();
      // debug: with a broker that accepts TCP but refuses us this repeats once per backoff step.
      this.opts.log.debug({ url: this.opts.config.url }, 'uplink: the broker port accepts connections; connecting now');
      clearTimeout(this.reconnectTimer);
      this.probeTriggered = true;
      this.connect();
    };
    sock.setTimeout(Math.min(this.opts.config.reconnect.probe_ms, this.opts.config.connect_timeout_ms), () =>
      done(false),
    );
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  }

  private stopProbing(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    const s = this.probeSocket;
    this.probeSocket = undefined;
    if (s) {
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.destroy();
    }
  }

  private checkAcks(): void {
    if (!this.online) return;
    const now = this.now();
    for (const f of this.inflight.values()) {
      // Map order is send order: the first entry is the oldest.
      if (now - f.sentAt > this.opts.config.ack_timeout_ms) {
        this.counters.ackTimeouts++;
        if (this.adaptive?.onTimeout(now)) this.bucket?.setRate(this.adaptive.rate, now);
        this.lost(`no PUBACK within ${this.opts.config.ack_timeout_ms} ms`);
      }
      break;
    }
  }

  /**
   * One pump turn after pending I/O: PUBACKs arrive dozens per socket read, and a turn per PUBACK
   * (each forming a batch) held new readings' commits and PUBACKs back for a second while a backlog
   * drained. Commits and acks coalesce into one turn per event-loop iteration.
   */
  private pumpSoon(): void {
    this.more ??= setImmediate(() => {
      this.more = undefined;
      this.pump();
    });
  }

  /** Sends what the scheduler and the bucket allow; re-armed by commits, acks and timers. */
  pump(): void {
    if (!this.online || this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      this.pumpOnce();
    } finally {
      this.pumping = false;
    }
  }

  private pumpOnce(): void {
    const now = this.now();
    if (now < this.holdUntil) return this.armPump(this.holdUntil);
    const outbox = this.opts.outbox;
    if (this.bucket) outbox.setMaxBatchBytes((this.bucket.rate * this.opts.queue.bandwidth.max_airtime_ms) / 1000);
    const window = Math.min(this.opts.config.inflight_window, this.receiveMax);
    const batch: InFlight[] = [];
    let wait = Infinity;
    let yielded = false;
    const costs: (number | undefined)[] = [undefined, undefined, undefined, undefined];
    for (;;) {
      const used = this.inflight.size + batch.length;
      if (used >= window + CRITICAL_RESERVE) break;
      if (batch.length > 0 && this.now() - now > PUMP_BUDGET_MS) {
        yielded = true;
        break;
      }
      for (let c = 0; c < costs.length; c++) {
        costs[c] = undefined;
        if (c > 0 && used >= window) continue;
        const p = outbox.peek(PRIORITIES[c]!);
        if (p === undefined) continue;
        if ('waitMs' in p) wait = Math.min(wait, p.waitMs);
        else costs[c] = this.cost(p);
      }
      const cls = this.scheduler.pick(costs);
      if (cls === undefined) break;
      const cost = costs[cls]!;
      if (this.bucket) {
        const w = this.bucket.take(cost, now);
        if (w > 0) {
          wait = Math.min(wait, w);
          break;
        }
      }
      const msg = outbox.take(PRIORITIES[cls]!)!;
      this.scheduler.charge(cls, cost);
      batch.push({ msg, cost, sentAt: now });
    }
    if (batch.length > 0) this.claimThenPublish(batch);
    // Out of budget with more to send: continue after pending I/O (ingest, PUBACKs) had its turn.
    if (yielded) this.pumpSoon();
    if (wait !== Infinity) this.armPump(now + wait);
  }

  /**
   * Reading batches are published only once their grouping is committed (it rides with the next
   * group commit); they count as in flight meanwhile, so a lost connection re-queues them too.
   */
  private claimThenPublish(all: InFlight[]): void {
    const gen = this.gen;
    for (const f of all) this.inflight.set(f.msg.id, f);
    // Messages (alerts...) and batches already claimed need no commit: they go at once.
    const batch: InFlight[] = [];
    for (const f of all) {
      if (f.msg.claim && !f.msg.claimed) batch.push(f);
      else this.publish(f);
    }
    if (batch.length === 0) return;
    this.opts.outbox.claim(
      batch.map((b) => b.msg),
      (err) => {
        if (gen !== this.gen || this.stopped) return; // connection dropped meanwhile: drop() re-queued them
        if (err) {
          for (let i = batch.length - 1; i >= 0; i--) {
            this.inflight.delete(batch[i]!.msg.id);
            this.opts.outbox.requeue(batch[i]!.msg);
          }
          this.opts.log.error({ err, code: 'EGW_STORE_FULL' }, 'cannot record uplink batches; retrying in 1 s');
          this.armPump(this.now() + 1000);
          return;
        }
        for (const f of batch) this.publish(f);
      },
    );
  }

  /**
   * The scheduler and the bucket priced the message by its outbox form (codec); a profile may send
   * more (JSON is 2–15× the codec, a DBIRTH rides along). The difference is charged now, so the
   * bandwidth cap and the class shares hold in wire bytes whatever the profile.
   */
  private chargeWire(f: InFlight, parts: readonly WirePublish[]): void {
    let wire = 0;
    for (const w of parts) {
      wire += messageCost(
        Buffer.byteLength(w.topic),
        this.idBytes,
        w.properties?.contentType?.length ?? 0,
        w.payload.length,
        this.opts.queue.bandwidth.link_overhead_bytes,
      );
    }
    if (wire <= f.cost) return;
    const extra = wire - f.cost;
    f.cost = wire;
    this.bucket?.charge(extra, this.now());
    this.scheduler.charge(f.msg.cls, extra);
  }

  private armPump(at: number): void {
    if (this.pumpTimer && at >= this.pumpAt) return;
    clearTimeout(this.pumpTimer);
    this.pumpAt = at;
    this.pumpTimer = setTimeout(
      () => {
        this.pumpTimer = undefined;
        this.pumpAt = Infinity;
        this.pump();
      },
      Math.max(1, at - this.now()),
    );
  }

  /**
   * A message that is not from the outbox (command results, reported state): QoS 1 now, or a
   * rejection when offline (the downlink keeps what it must send again).
   */
  send(w: WirePublish): Promise<void> {
    const client = this.client;
    const v5 = this.profile.protocolVersion === 5;
    if (!this.online || !client) return Promise.reject(new Error('uplink offline'));
    return new Promise((resolve, reject) => {
      // Settled exactly once: by the PUBACK, by drop() (a dropped mqtt.js client with a persistent
      // session keeps its callbacks pending forever), or by ack_timeout_ms.
      const settle = (err?: Error) => {
        if (!this.sends.delete(settle)) return;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => settle(new Error('no PUBACK in time')), this.opts.config.ack_timeout_ms);
      timer.unref();
      this.sends.add(settle);
      client.publish(
        w.topic,
        w.payload,
        { qos: w.qos, retain: w.retain ?? false, ...(v5 && w.properties ? { properties: w.properties } : {}) },
        (err) => settle(err ?? undefined),
      );
    });
  }

  /** The cloud's `uplink.reconnect` command: drop the connection and connect again at once. */
  forceReconnect(): void {
    if (this.stopped) return;
    this.opts.log.info({ url: this.opts.config.url }, 'uplink reconnect requested by the cloud');
    this.attempts = 0;
    clearTimeout(this.reconnectTimer);
    this.stopProbing();
    this.drop('reconnect requested');
    this.connect();
  }

  private publish(f: InFlight): void {
    const client = this.client!;
    const { msg } = f;
    f.sentAt = this.now();
    this.counters.published++;
    let parts: WirePublish[];
    try {
      parts = this.profile.encode(msg);
    } catch (err) {
      if ((err as GatewayError).code !== 'EGW_UPLINK_PROFILE') {
        // Not a limit: keep the message and try again later rather than lose it.
        this.inflight.delete(msg.id);
        this.opts.outbox.requeue(msg);
        this.opts.log.error(
          { err, topic: msg.topic, profile: this.profile.name },
          'uplink: cannot encode a message; retrying in 5 s',
        );
        this.holdUntil = this.now() + 5000;
        this.armPump(this.holdUntil);
        return;
      }
      // Over the cloud's limits for good (e.g. a 200 KB alert to AWS IoT): re-sending cannot help.
      this.counters.unsendable++;
      this.inflight.delete(msg.id);
      this.opts.log.error(
        { err, topic: msg.topic, id: msg.id, code: 'EGW_UPLINK_PROFILE', profile: this.profile.name },
        'uplink: message cannot be sent within the cloud profile limits; dropped (counted in unsendable)',
      );
      this.opts.outbox.ack(msg, 0);
      this.pumpSoon();
      return;
    }
    this.chargeWire(f, parts);
    // A message is done when its last part is acknowledged (a profile may add a birth or split it).
    let pending = parts.length;
    let failed: Error | undefined;
    const v5 = this.profile.protocolVersion === 5;
    const partDone = (err: Error | undefined) => {
      failed ??= err;
      if (--pending > 0) return;
      done(failed);
    };
    const done = (err: Error | undefined) => {
      if (this.inflight.get(msg.id) !== f) return; // re-queued after a lost connection
      this.inflight.delete(msg.id);
      if (err) {
        // A PUBACK with a failure reason code (not authorized, quota exceeded): keep the message, retry later.
        this.counters.refused++;
        this.opts.outbox.requeue(msg);
        this.opts.log.warn(
          { err, topic: msg.topic, code: 'EGW_UPLINK_REFUSED' },
          'cloud broker refused a message; sending paused for 5 s',
        );
        this.holdUntil = this.now() + 5000;
        this.armPump(this.holdUntil);
        return;
      }
      const now = this.now();
      this.lastAckLatencyMs = now - f.sentAt;
      if (this.adaptive?.onAck(this.lastAckLatencyMs, now)) this.bucket!.setRate(this.adaptive.rate, now);
      this.counters.acked++;
      this.opts.outbox.ack(msg, f.cost);
      this.pumpSoon();
    };
    if (parts.length === 0) return done(undefined); // nothing to say on the wire (e.g. DDEATH of an unborn device)
    for (const w of parts) {
      client.publish(
        w.topic,
        w.payload,
        { qos: w.qos, retain: w.retain ?? false, ...(v5 && w.properties ? { properties: w.properties } : {}) },
        partDone,
      );
    }
  }
}

/** "…:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:…" → "tlsv1 alert unknown ca". */
function opensslReason(message: string): string {
  return /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1] ?? message.trim();
}

/** OpenSSL / X.509 verification failures (node error codes), as opposed to network errors. */
function isTlsError(code: string | undefined, message: string): boolean {
  if (code !== undefined) return /^ERR_(SSL|TLS)_|CERT|SIGNATURE|ISSUER|TLS/.test(code);
  return /TLS not authorized|certificate/i.test(message);
}

/** Reads and parses the uplink's TLS files; throws EGW_UPLINK_TLS naming the key and the cause. */
function checkTlsFiles(c: UplinkConfig): void {
  const read = (what: string, f: string | undefined): Buffer | undefined => {
    if (!f) return undefined;
    try {
      return readFileSync(f);
    } catch (err) {
      throw new GatewayError('EGW_UPLINK_TLS', `cannot read uplink.${what} ${f}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
  const ca = read('ca_file', c.ca_file);
  const cert = read('cert_file', c.cert_file);
  const key = read('key_file', c.key_file);
  if ((cert === undefined) !== (key === undefined)) {
    throw new GatewayError('EGW_UPLINK_TLS', 'uplink.cert_file and uplink.key_file go together: set both or neither');
  }
  // node ignores a CA file without a usable certificate and then trusts nobody: say so now.
  if (ca && !/-----BEGIN CERTIFICATE-----/.test(ca.toString('latin1'))) {
    throw new GatewayError('EGW_UPLINK_TLS', `uplink.ca_file ${c.ca_file} holds no PEM certificate`);
  }
  try {
    createSecureContext({ ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
  } catch (err) {
    throw new GatewayError(
      'EGW_UPLINK_TLS',
      `uplink: cannot use the TLS files (ca_file, cert_file, key_file): ${(err as Error).message}`,
      { cause: err },
    );
  }
}
