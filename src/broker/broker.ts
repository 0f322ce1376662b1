import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  createSecureContext,
  createServer as createTlsServer,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import { Aedes, type AedesPublishPacket, type PublishPacket } from 'aedes';
import type { Registry } from 'prom-client';
import type { DeviceRegistry } from '../devices/registry.js';
import { GatewayError } from '../errors.js';
import { listenError } from '../lifecycle/listen-error.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Db } from '../store/db.js';
import { onBrokerError } from './aedes-adapter.js';
import { codecDecoder } from './codec-decoder.js';
import type { BrokerConfig } from './config.js';
import { ConnectRateLimiter, isLoopback, limitPacketSize } from './limits.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import { BrokerMetrics } from './metrics.js';
import { SqlitePersistence } from './persistence/index.js';
import { BrokerPolicy } from './policy.js';

export interface BrokerServiceOptions {
  config: BrokerConfig;
  log: Logger;
  pipeline: Pipeline;
  devices: DeviceRegistry;
  registry: Registry;
  db: Db;
}

/** MQTT 5 user properties of a message (vision's MQTT cameras read `part_id`). */
export interface InternalMessageProps {
  userProperties?: Record<string, string | string[]>;
}
export type InternalHandler = (topic: string, payload: Buffer, props?: InternalMessageProps) => void;

/** A gateway module's subscription on the local broker (`subscribe`). */
interface InternalSub {
  filter: string;
  handler: InternalHandler;
  /** The function given to aedes while attached (for unsubscribe). */
  deliver: ((packet: AedesPublishPacket, done: () => void) => void) | undefined;
}

/** A slow subscriber that does not read for this long is disconnected (aedes drainTimeout). */
const DRAIN_TIMEOUT_MS = 30000;
/** A socket that has not sent CONNECT within this is closed (MQTT-3.1.0-1 allows "reasonable"). */
const CONNECT_TIMEOUT_MS = 10000;

/**
 * The local MQTT broker: aedes on a plain TCP listener (and optionally TLS), with the gateway's
 * auth, ACLs, limits, ingest and SQLite persistence. `start` resolves once every listener listens.
 */
export class BrokerService implements Service {
  readonly name = 'broker';
  private aedes: Aedes | undefined;
  private tcp: Server | undefined;
  private tls: TlsServer | undefined;
  private persistence: SqlitePersistence | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly metrics: BrokerMetrics;
  private readonly policy: BrokerPolicy;
  private readonly rate: ConnectRateLimiter;
  private readonly warn: RateLimitedLog;
  private lastError: string | undefined;
  private readonly internal: InternalSub[] = [];

  constructor(private readonly o: BrokerServiceOptions) {
    this.metrics = new BrokerMetrics(o.registry, () => this.aedes?.connectedClients ?? 0);
    this.policy = new BrokerPolicy({
      config: o.config,
      log: o.log,
      pipeline: o.pipeline,
      devices: o.devices,
      metrics: this.metrics,
      decoders: [codecDecoder],
    });
    this.rate = new ConnectRateLimiter(o.config.connect_rate_per_ip);
    this.warn = new RateLimitedLog(o.log);
  }

  /** Bound ports (useful with port 0). */
  get port(): number | undefined {
    return (this.tcp?.address() as AddressInfo | null)?.port;
  }

  get tlsPort(): number | undefined {
    return (this.tls?.address() as AddressInfo | null)?.port;
  }

  async start(): Promise<void> {
    const { config, log } = this.o;
    // TLS material is read first: a missing file fails the start before anything listens.
    const tlsOptions = config.tls.enabled ? this.readTls() : undefined;
    this.persistence = config.persistence
      ? new SqlitePersistence({ db: this.o.db, log: log.child({ sub: 'persistence' }) })
      : undefined;
    const aedes = await Aedes.createBroker({
      persistence: this.persistence,
      drainTimeout: DRAIN_TIMEOUT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Allow device-id-length client ids for MQTT 3.1 clients as well (3.1.1 has no limit).
      maxClientsIdLength: 64,
      // MQTT 5, announced in CONNACK (docs/broker.md "MQTT 5"). Server Keep Alive is set per client
      // by the policy: aedes' keepaliveLimit would also refuse 3.1.1 clients with keepalive 0.
      topicAliasMaximum: config.topic_alias_maximum,
      maximumPacketSize: config.max_packet_bytes,
      receiveMaximum: config.receive_maximum,
      sessionExpiryIntervalLimit: config.session_expiry_max_s,
      pendingSessionsLimit: config.pending_sessions_max,
      ...this.policy.hooks(),
    });
    this.aedes = aedes;
    this.policy.attach(aedes, this.persistence);
    for (const sub of this.internal) await this.attach(aedes, sub);
    // Without an 'error' listener aedes would crash the process.
    onBrokerError(aedes, (err: Error) => {
      // Raised by aedes when the persistence fails while routing; the message was not queued.
      this.lastError = err.message;
      log.error({ err, code: 'EGW_MQTT_PERSISTENCE' }, 'MQTT broker persistence error');
    });

    // noDelay: without it Nagle holds small PUBACKs/PUBLISHes back ~5 ms (measured here).
    this.tcp = createServer({ noDelay: true }, (socket) => {
      if (this.accept(socket, true)) aedes.handle(socket);
    });
    await listen(this.tcp, config.port, config.host, 'broker');
    log.info({ host: config.host, port: this.port, persistence: config.persistence }, 'MQTT broker listening');

    if (tlsOptions) {
      this.tls = createTlsServer({ ...tlsOptions, noDelay: true } as Parameters<typeof createTlsServer>[0]);
      // Limits are applied to the raw TCP connection, before the (costly) handshake.
      this.tls.on('connection', (raw: Socket) => void this.accept(raw, false));
      this.tls.on('secureConnection', (socket: TLSSocket) => {
        socket.setNoDelay(true);
        if (socket.authorized) {
          const cn = socket.getPeerCertificate().subject?.CN;
          if (typeof cn === 'string' && cn.length > 0) this.policy.certCN.set(socket, cn);
        }
        limitPacketSize(socket, config.max_packet_bytes, (size) => this.tooLarge(socket, size));
        aedes.handle(socket);
      });
      this.tls.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
        // A client certificate that does not verify against ca_file: node destroys the socket
        // without an alert and reports only "socket hang up"; the reason is in authorizationError
        // (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). A missing one is an OpenSSL error (PEER_DID_NOT_RETURN_A_CERTIFICATE).
        const certError = socket.authorizationError ?? undefined;
        // Only certificate failures are auth failures; resets (or our own limit) are not.
        const isCert = certError !== undefined || /certificate|ERR_SSL_.*CERT/i.test(`${err.code} ${err.message}`);
        if (isCert) this.metrics.auth.certificate.inc();
        this.warn.warn(
          `tls:${socket.remoteAddress}`,
          {
            code: 'EGW_MQTT_TLS',
            remote: socket.remoteAddress,
            err:
              certError !== undefined
                ? `client certificate not verified by broker.tls.ca_file: ${String(certError)}`
                : err.message,
          },
          isCert ? 'TLS handshake failed: client certificate refused' : 'TLS handshake failed',
        );
      });
      await listen(this.tls, config.tls.port, config.tls.host, 'broker.tls');
      log.info(
        { host: config.tls.host, port: this.tlsPort, clientCerts: Boolean(config.tls.ca_file) },
        'MQTT TLS listener listening',
      );
    }
  }

  private readTls(): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean } {
    const t = this.o.config.tls;
    const read = (what: string, path: string | undefined): Buffer => {
      if (!path)
        throw new GatewayError('EGW_MQTT_TLS', `broker.tls.${what} is required when broker.tls.enabled is true`);
      try {
        return readFileSync(path);
      } catch (err) {
        throw new GatewayError('EGW_MQTT_TLS', `cannot read broker.tls.${what} ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    };
    const cert = read('cert_file', t.cert_file);
    const key = read('key_file', t.key_file);
    if (t.require_client_cert && !t.ca_file) {
      throw new GatewayError('EGW_MQTT_TLS', 'broker.tls.require_client_cert needs broker.tls.ca_file');
    }
    const ca = t.ca_file ? read('ca_file', t.ca_file) : undefined;
    // node ignores a CA file without a usable certificate: every client certificate would then be
    // refused with no hint at the cause.
    if (ca && !hasCertificate(ca)) {
      throw new GatewayError('EGW_MQTT_TLS', `broker.tls.ca_file ${t.ca_file} holds no PEM certificate`);
    }
    // Parse now (not PEM garbage, key matches the certificate) so a bad file fails the start with
    // EGW_MQTT_TLS before the plain listener opens, instead of an OpenSSL error from createServer.
    try {
      createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
    } catch (err) {
      throw new GatewayError(
        'EGW_MQTT_TLS',
        `broker.tls: cannot use ${t.cert_file} / ${t.key_file}${t.ca_file ? ` / ${t.ca_file}` : ''}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    // With a CA, certificates are requested; only verified ones authenticate (socket.authorized).
    return { cert, key, ...(ca ? { ca } : {}), requestCert: Boolean(ca), rejectUnauthorized: t.require_client_cert };
  }

  /** Connection limits; false (and the socket destroyed) when one is hit. */
  private accept(socket: Socket, plain: boolean): boolean {
    const { config } = this.o;
    const remote = socket.remoteAddress ?? '';
    if (this.sockets.size >= config.max_connections) {
      this.metrics.dropped.max_connections.inc();
      this.warn.warn(
        'max-conn',
        { code: 'EGW_MQTT_LIMIT', limit: config.max_connections },
        'MQTT connection refused: broker.max_connections reached',
      );
      socket.destroy();
      return false;
    }
    // Local scripts (mosquitto_pub in a loop) are trusted like the loopback listener itself.
    if (!isLoopback(remote) && !this.rate.allow(remote)) {
      this.metrics.dropped.connect_rate.inc();
      this.warn.warn(
        `rate:${remote}`,
        { code: 'EGW_MQTT_LIMIT', remote },
        'MQTT connection refused: broker.connect_rate_per_ip exceeded',
      );
      socket.destroy();
      return false;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    coalesceWrites(socket);
    // TLS sockets get the packet limit on the decrypted stream (secureConnection).
    if (plain) limitPacketSize(socket, config.max_packet_bytes, (size) => this.tooLarge(socket, size));
    return true;
  }

  private tooLarge(socket: Socket, size: number): void {
    this.metrics.dropped.packet_too_large.inc();
    this.warn.warn(
      `size:${socket.remoteAddress}`,
      { code: 'EGW_MQTT_PACKET_TOO_LARGE', remote: socket.remoteAddress, size, limit: this.o.config.max_packet_bytes },
      'MQTT packet larger than broker.max_packet_bytes; connection closed',
    );
  }

  /**
   * Lets a gateway module see messages published on `filter` (e.g. `commands/+` for devices a
   * driver owns), before or after start; resolves, once subscribed, to the unsubscribe. Handlers
   * run on the broker's delivery path, so keep them short.
   */
  subscribe(filter: string, handler: InternalHandler): Promise<() => void> {
    const sub: InternalSub = { filter, handler, deliver: undefined };
    this.internal.push(sub);
    // A module started after the broker (vision's MQTT cameras start with their service) is
    // subscribed at once; the rest when the broker starts.
    const aedes = this.aedes;
    const attached = aedes && !aedes.closed ? this.attach(aedes, sub) : Promise.resolve();
    return attached.then(() => () => {
      const i = this.internal.indexOf(sub);
      if (i >= 0) this.internal.splice(i, 1);
      const a = this.aedes;
      if (a && !a.closed && sub.deliver) a.unsubscribe(sub.filter, sub.deliver, () => undefined);
      sub.deliver = undefined;
    });
  }

  private attach(aedes: Aedes, sub: InternalSub): Promise<void> {
    const deliver = (packet: AedesPublishPacket, done: () => void): void => {
      // The gateway's own consumers must never break delivery to the devices.
      try {
        const up = (packet as { properties?: InternalMessageProps }).properties?.userProperties;
        sub.handler(
          packet.topic,
          Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
          up ? { userProperties: up } : undefined,
        );
      } catch (err) {
        this.o.log.error({ err, topic: packet.topic }, 'internal subscriber failed');
      }
      done();
    };
    sub.deliver = deliver;
    return new Promise<void>((resolve) => aedes.subscribe(sub.filter, deliver, resolve));
  }

  /** Publishes on behalf of the gateway (commands, alerts, results); bypasses the ACL. */
  publish(packet: Pick<PublishPacket, 'topic' | 'payload' | 'qos' | 'retain'>): Promise<void> {
    const aedes = this.aedes;
    if (!aedes || aedes.closed)
      return Promise.reject(new GatewayError('EGW_MQTT_LISTEN', 'MQTT broker is not running'));
    return new Promise((resolve, reject) =>
      aedes.publish({ cmd: 'publish', dup: false, ...packet }, (err) => (err ? reject(err) : resolve())),
    );
  }

  async stop(): Promise<void> {
    const aedes = this.aedes;
    this.aedes = undefined;
    this.policy.closing = true;
    const servers = [this.tcp, this.tls].filter((s): s is Server => s !== undefined);
    this.tcp = undefined;
    this.tls = undefined;
    // Stop accepting first; server.close resolves once every connection is gone.
    const closed = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    if (aedes) await new Promise<void>((r) => aedes.close(() => r()));
    // Sockets that never sent CONNECT are unknown to aedes.
    for (const s of this.sockets) s.destroy();
    await Promise.all(closed);
    await this.persistence?.destroy();
    this.persistence = undefined;
  }

  health(): ServiceHealth {
    const listening = Boolean(this.tcp?.listening) && (this.tls === undefined || this.tls.listening);
    return {
      ok: listening,
      state: listening ? 'listening' : 'stopped',
      detail: {
        port: this.port,
        ...(this.tls ? { tlsPort: this.tlsPort } : {}),
        clients: this.aedes?.connectedClients ?? 0,
        ...(this.lastError ? { lastError: this.lastError } : {}),
      },
    };
  }
}

/**
 * Packets written to a socket during one event-loop turn leave in one writev. aedes delivers each
 * publish from its own setImmediate and mqtt-packet uncorks on nextTick, so a busy subscriber
 * otherwise costs one syscall per packet (a quarter of the broker's CPU in bench-broker's profile).
 * The delay this adds is at most the rest of the current turn.
 */
function coalesceWrites(socket: Socket): void {
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write;
  socket.write = function (this: Socket, ...args: unknown[]): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Socket['write'];
}

/** True when the PEM text holds at least one parseable certificate. */
function hasCertificate(pem: Buffer): boolean {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  return blocks.some((b) => {
    try {
      new X509Certificate(b);
      return true;
    } catch {
      return false;
    }
  });
}

/** `section` is the config key of the listener, named in the error (`broker.port: ... in use`). */
function listen(server: Server, port: number, host: string, section: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(listenError(section, host, port, err, 'EGW_MQTT_LISTEN'));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
