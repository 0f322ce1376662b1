import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import { AllowList, parseIPv4 } from '../config/cidr.js';
import { listenError } from '../lifecycle/listen-error.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { CoapConfig } from './config.js';
import { Block1Assembler, block1Step } from './block1.js';
import { Block2Cache, blockNumber, MAX_BLOCK, toBuffer } from './block2-cache.js';
import {
  asObserveStream,
  block1FinalOf,
  createLibServer,
  injectRequest,
  packetOf,
  sendWithoutObserve,
  toRequest,
  type CoapIncoming,
  type CoapLibServer,
  type CoapOutgoing,
  type RemoteInfo,
} from './coap-lib.js';
import { filterDatagram } from './filter.js';
import { filterLinks, formatLinks, linksOf } from './link-format.js';
import { Observers } from './observe.js';
import { RateLimiter } from './rate-limit.js';
import { text, Router, type CoapReply, type CoapRequest, type Resource } from './router.js';

export interface CoapServerOptions {
  config: CoapConfig;
  log: Logger;
  registry: Registry;
  /** Monotonic clock (ms); injectable for tests. */
  now?: () => number;
}

/** RFC 7252 §4.8.2 NON_LIFETIME: how long a NON message id must be remembered for deduplication. */
const NON_LIFETIME_MS = 145_000;
const DEDUPE_MAX = 20_000;

/**
 * The CoAP endpoint: binds the socket, routes requests to resources, answers. The `coap` library
 * does the message layer (piggybacked/separate responses, retransmission, response cache for
 * duplicate CONs, Block2 slicing); around it: the datagram filter (filter.ts: allow-list, rate and
 * size limits), Block1 reassembly (block1.ts), observe registrations (observe.ts) and the Block2
 * representation cache (block2-cache.ts). The library's private API is used in coap-lib.ts only.
 */
export class CoapServer implements Service {
  readonly name = 'coap';
  readonly router = new Router();
  private server: CoapLibServer | undefined;
  private socket: Socket | undefined;
  private readonly allow: AllowList;
  private readonly limiter: RateLimiter;
  private readonly blocks: Block1Assembler;
  private readonly seen = new Map<string, { at: number; done: boolean }>();
  private readonly observers: Observers;
  private readonly stopHooks: (() => void)[] = [];
  private readonly block2 = new Block2Cache();
  private readonly now: () => number;
  private readonly m;

  constructor(private readonly opts: CoapServerOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.allow = new AllowList(opts.config.allow_sources);
    this.limiter = new RateLimiter({
      perSecond: opts.config.rate_limit.requests_per_s,
      burst: opts.config.rate_limit.burst,
      maxKeys: 10_000,
    });
    this.blocks = new Block1Assembler({ maxBytes: opts.config.max_payload_bytes, maxTransfers: 256, idleMs: 60_000 });
    const registers = [opts.registry];
    this.m = {
      requests: new Counter({
        name: 'edge_gateway_coap_requests_total',
        help: 'CoAP requests answered, by response code',
        labelNames: ['code'],
        registers,
      }),
      dropped: new Counter({
        name: 'edge_gateway_coap_dropped_total',
        help: 'CoAP datagrams dropped before handling, by reason',
        labelNames: ['reason'],
        registers,
      }),
      observers: new Gauge({
        name: 'edge_gateway_coap_observers',
        help: 'Active CoAP observe registrations',
        registers,
      }),
    };
    this.observers = new Observers({
      log: opts.log,
      cache: this.block2,
      now: this.now,
      onCount: (n) => this.m.observers.set(n),
    });
    this.router.add({
      path: '/.well-known/core',
      ct: [40],
      methods: { GET: (req) => this.discovery(req) },
    });
  }

  add(resource: Resource): () => void {
    return this.router.add(resource);
  }

  get port(): number | undefined {
    return this.socket?.address().port;
  }

  /** The bound address (e.g. 127.0.0.1), once listening. */
  get address(): string | undefined {
    return this.socket?.address().address;
  }

  async start(): Promise<void> {
    const { host, port } = this.opts.config;
    const type = isIPv6(host) ? 'udp6' : 'udp4';
    const socket = createSocket({ type, reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(listenError('coap', host, port, err, 'EGW_SERVICE_START'));
      socket.once('error', onError);
      socket.bind(port, host, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    socket.on('error', (err) => this.opts.log.warn({ err }, 'CoAP socket error'));
    const server = createLibServer(socket, type, (msg, rinfo, pass) => this.filter(msg, rinfo, pass));
    server.on('request', (req: CoapIncoming, res: CoapOutgoing) => void this.onRequest(req, res));
    server.on('error', (err: Error) => this.opts.log.warn({ err }, 'CoAP server error'));
    this.server = server;
    this.socket = socket;
    this.opts.log.info({ host, port: this.port, allow: this.opts.config.allow_sources }, 'CoAP listening');
    if (!isLoopback(host) && this.opts.config.allow_sources.every(isLoopbackBlock)) {
      this.opts.log.warn(
        { host },
        "CoAP listens beyond loopback but coap.allow_sources admits loopback only; add the devices' networks (CIDR)",
      );
    }
  }

  /** Cleanup to run when the server stops (resource families with listeners of their own). */
  onStop(fn: () => void): void {
    this.stopHooks.push(fn);
  }

  async stop(): Promise<void> {
    for (const fn of this.stopHooks.splice(0)) fn();
    this.observers.stopAll();
    this.server?.close();
    this.server = undefined;
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  health(): ServiceHealth {
    return this.socket
      ? { ok: true, state: 'listening', detail: { port: this.port, observers: this.observers.size } }
      : { ok: false, state: 'stopped' };
  }

  /** Everything that reaches the library passed here first. */
  private filter(msg: Buffer, rinfo: RemoteInfo, pass: (m: Buffer) => void): void {
    const address = normaliseAddress(rinfo.address);
    const v = filterDatagram(
      { allow: this.allow, limiter: this.limiter, maxPayloadBytes: this.opts.config.max_payload_bytes },
      msg,
      address,
      this.now(),
    );
    switch (v.action) {
      case 'drop':
        this.m.dropped.inc({ reason: v.reason });
        return;
      case 'answer':
        this.m.dropped.inc({ reason: v.reason });
        if (v.code) this.m.requests.inc({ code: v.code });
        return this.send(v.reply, rinfo);
      case 'block1':
        return this.block1(msg, v.block1, rinfo);
      case 'pass':
        try {
          pass(msg);
        } catch (err) {
          this.opts.log.warn({ err }, 'CoAP library refused a datagram');
        }
    }
  }

  /** RFC 7959 §2.3: body blocks are collected here; the complete request goes to the library. */
  private block1(msg: Buffer, b1: { num: number; more: boolean; size: number }, rinfo: RemoteInfo): void {
    const step = block1Step(
      this.blocks,
      msg,
      b1,
      `${rinfo.address}:${rinfo.port}`,
      this.now(),
      this.opts.config.max_payload_bytes,
    );
    if (step.kind === 'malformed') {
      this.m.dropped.inc({ reason: 'malformed' });
      return;
    }
    if (step.kind === 'answer') {
      if (step.code) this.m.requests.inc({ code: step.code });
      return this.send(step.datagram, rinfo);
    }
    try {
      if (this.server) injectRequest(this.server, step.packet, step.block1, rinfo);
    } catch (err) {
      this.opts.log.warn({ err }, 'CoAP library refused a reassembled request');
    }
  }

  private send(buf: Buffer, rinfo: RemoteInfo): void {
    this.socket?.send(buf, rinfo.port, rinfo.address);
  }

  private async onRequest(req: CoapIncoming, res: CoapOutgoing): Promise<void> {
    const packet = packetOf(req);
    const address = normaliseAddress(req.rsinfo.address);
    const source = `${address}:${req.rsinfo.port}`;
    const dedupeKey = `${source}/${packet.messageId}`;
    const t = this.now();
    const prior = this.seen.get(dedupeKey);
    if (prior && t - prior.at < NON_LIFETIME_MS) {
      // A retransmitted CON still being processed: the library's piggyback timer ACKs it; the
      // answer follows as a separate response. A repeated NON is dropped (RFC 7252 §4.5).
      if (!prior.done || !packet.confirmable) {
        this.m.dropped.inc({ reason: 'duplicate' });
        return;
      }
    }
    const mark = { at: t, done: false };
    this.seen.set(dedupeKey, mark);
    if (this.seen.size > DEDUPE_MAX) this.pruneSeen(t);
    let creq: CoapRequest;
    try {
      creq = toRequest(req, packet, address, source);
    } catch (err) {
      mark.done = true;
      return this.reply(res, text('4.02', (err as Error).message), false);
    }
    const observeKey = `${source}/${(packet.token ?? Buffer.alloc(0)).toString('hex')}`;
    const block2Num = blockNumber(packet.options ?? [], 'Block2');
    // RFC 7641 §3.6: GET with Observe=1 deregisters; so does a plain GET with the same token (§4.1).
    // (A Block2 follow-up of a large notification may reuse the token: it is not a deregistration.)
    if (creq.method === 'GET' && block2Num === 0 && this.observers.has(observeKey)) this.observers.stop(observeKey);
    // RFC 7959 §2.3: the response to the last block of a Block1 transfer carries that Block1 option.
    const block1Final = block1FinalOf(packet);
    if (block1Final) res.setOption('Block1', block1Final);
    const match = this.router.match(creq.path);
    const handler = match?.resource.methods[creq.method];
    const blockKey = Block2Cache.key(source, creq);
    const cached = block2Num > 0 ? this.block2.get(blockKey, this.now()) : undefined;
    let reply: CoapReply;
    if (cached) reply = cached;
    else if (!match) reply = text('4.04', 'no such resource; see /.well-known/core');
    else if (!handler) reply = text('4.05', `allowed: ${Object.keys(match.resource.methods).join(', ')}`);
    else {
      try {
        reply = await handler(creq, match.params);
      } catch (err) {
        this.opts.log.error({ err, path: '/' + creq.path.join('/') }, 'CoAP handler failed');
        reply = text('5.00', 'internal error');
      }
    }
    mark.done = true;
    if (
      !creq.observe &&
      block2Num === 0 &&
      creq.method === 'GET' &&
      Buffer.byteLength(reply.payload ?? '') > MAX_BLOCK
    ) {
      this.block2.put(blockKey, reply, this.now());
    }
    const observe = match?.resource.observe;
    const canObserve =
      creq.observe &&
      observe !== undefined &&
      reply.code.startsWith('2.') &&
      this.observers.size < this.opts.config.max_observers;
    if (!canObserve || !observe || !match) return this.reply(res, reply, creq.observe);
    this.observers.register(
      {
        key: observeKey,
        stream: asObserveStream(res),
        confirmable: packet.confirmable === true,
        blockKey,
        path: '/' + creq.path.join('/'),
      },
      reply,
      (push) => observe(creq, match.params, push),
    );
  }

  private reply(res: CoapOutgoing, reply: CoapReply, observeRequested: boolean): void {
    this.m.requests.inc({ code: reply.code });
    if (reply.contentFormat !== undefined) res.setOption('Content-Format', reply.contentFormat);
    if (reply.maxAge !== undefined) res.setOption('Max-Age', reply.maxAge);
    const payload = toBuffer(reply.payload);
    if (observeRequested) return sendWithoutObserve(asObserveStream(res), reply.code, payload);
    res.code = reply.code;
    res.once('error', (err: Error) => this.opts.log.warn({ err }, 'CoAP response could not be sent'));
    res.end(payload);
  }

  private discovery(req: CoapRequest): CoapReply {
    const links = filterLinks(linksOf(this.router.resources()), req.query);
    return { code: '2.05', payload: formatLinks(links), contentFormat: 40 };
  }

  private pruneSeen(t: number): void {
    for (const [k, v] of this.seen) {
      if (t - v.at < NON_LIFETIME_MS && this.seen.size <= DEDUPE_MAX / 2) break;
      this.seen.delete(k);
    }
  }
}

/** `::ffff:10.0.0.5` (an IPv4 peer on a dual-stack socket) → `10.0.0.5`, so limits key one address. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function isLoopback(host: string): boolean {
  return host === '::1' || host === 'localhost' || (parseIPv4(host) ?? 0n) >> 24n === 127n;
}

function isLoopbackBlock(cidr: string): boolean {
  return cidr === '::1' || cidr === '::1/128' || /^127\.\d+\.\d+\.\d+(\/([89]|[12]\d|3[0-2]))?$/.test(cidr);
}
