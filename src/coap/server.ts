import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import coap from 'coap';
import { generate, parse, type ParsedPacket } from 'coap-packet';
import { Counter, Gauge, type Registry } from 'prom-client';
import { listenError } from '../lifecycle/listen-error.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { CoapConfig } from './config.js';
import { Block1Assembler, transferKey } from './block1.js';
import { contentFormatNumber } from './content-formats.js';
import { encodeResponse, inspectDatagram, isRequestCode } from './datagram.js';
import { filterLinks, formatLinks, linksOf } from './link-format.js';
import { RateLimiter } from './rate-limit.js';
import { text, Router, type CoapMethod, type CoapReply, type CoapRequest, type Resource } from './router.js';

type CoapIncoming = InstanceType<typeof coap.IncomingMessage>;
type CoapOutgoing = InstanceType<typeof coap.OutgoingMessage>;
type CoapObserveStream = InstanceType<typeof coap.ObserveWriteStream>;
type Packet = CoapIncoming['_packet'];

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
/** How long a large representation is kept for the following Block2 requests. */
const BLOCK2_CACHE_MS = 30_000;
/** The library's largest Block2 size (2^(6+4)); larger bodies go block-wise. */
const MAX_BLOCK = 1024;
/** RFC 7641 §4.5: a NON observer must be checked with a CON notification now and then. */
const CON_EVERY_N_NOTIFICATIONS = 20;

interface Observer {
  stop: () => void;
}

/**
 * The CoAP endpoint. The `coap` library does message layer work (piggybacked/separate responses,
 * retransmission, response cache for duplicate CONs, Block2 slicing, Block1 reassembly); in front
 * of it a datagram filter drops malformed packets, applies the per-source rate limit and the size
 * limit, so hostile traffic never reaches the library's own error path.
 */
export class CoapServer implements Service {
  readonly name = 'coap';
  readonly router = new Router();
  private server: InstanceType<typeof coap.Server> | undefined;
  private socket: Socket | undefined;
  private readonly limiter: RateLimiter;
  private readonly blocks: Block1Assembler;
  private readonly seen = new Map<string, { at: number; done: boolean }>();
  private readonly observers = new Map<string, Observer>();
  private readonly stopHooks: (() => void)[] = [];
  private readonly block2Cache = new Map<string, { reply: CoapReply; at: number }>();
  private readonly now: () => number;
  private readonly m;

  constructor(private readonly opts: CoapServerOptions) {
    this.now = opts.now ?? (() => performance.now());
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
    const server = coap.createServer({ type, piggybackReplyMs: 50 });
    server.on('request', (req: CoapIncoming, res: CoapOutgoing) => void this.onRequest(req, res));
    server.on('error', (err: Error) => this.opts.log.warn({ err }, 'CoAP server error'));
    server.listen(socket);
    // Put the datagram filter in front of the library's own 'message' handler.
    const handle = server.handleRequest();
    socket.removeAllListeners('message');
    socket.on('message', (msg: Buffer, rinfo) => this.filter(msg, rinfo, handle));
    this.server = server;
    this.socket = socket;
    this.opts.log.info({ host, port: this.port }, 'CoAP listening');
  }

  /** Cleanup to run when the server stops (resource families with listeners of their own). */
  onStop(fn: () => void): void {
    this.stopHooks.push(fn);
  }

  async stop(): Promise<void> {
    for (const fn of this.stopHooks.splice(0)) fn();
    for (const o of [...this.observers.values()]) o.stop();
    this.observers.clear();
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
  private filter(
    msg: Buffer,
    rinfo: { address: string; port: number; family: string; size: number },
    handle: (m: Buffer, r: never) => void,
  ): void {
    const r = inspectDatagram(msg);
    if (!r.ok) {
      // RFC 7252 §4.2/§4.3: a malformed message is silently ignored (a RST would help spoofers reflect).
      this.m.dropped.inc({ reason: 'malformed' });
      return;
    }
    const info = r.info;
    if (!isRequestCode(info.code)) {
      // Responses are not expected by a server; ACK/RST of our notifications and CON pings pass.
      if (info.code !== 0) {
        this.m.dropped.inc({ reason: 'not a request' });
        return;
      }
    } else {
      const address = normaliseAddress(rinfo.address);
      if (!this.limiter.take(address, this.now())) {
        this.m.dropped.inc({ reason: 'rate limit' });
        if (info.type === 0) this.send(encodeResponse(info, 5, 3), rinfo);
        return;
      }
      const max = this.opts.config.max_payload_bytes;
      const b1 = info.block1;
      const total = b1 ? Math.max(b1.num * b1.size + info.payloadLength, info.size1 ?? 0) : info.payloadLength;
      if (total > max) {
        // RFC 7959 §2.9.3: 4.13 with Size1 telling the largest acceptable body.
        this.m.dropped.inc({ reason: 'too large' });
        this.m.requests.inc({ code: '4.13' });
        this.send(encodeResponse(info, 4, 13, max), rinfo);
        return;
      }
      if (b1) return this.block1(msg, b1, rinfo);
    }
    try {
      handle(msg, rinfo as never);
    } catch (err) {
      this.opts.log.warn({ err }, 'CoAP library refused a datagram');
    }
  }

  /** RFC 7959 §2.3: body blocks are collected here; the complete request goes to the library. */
  private block1(
    msg: Buffer,
    b1: { num: number; more: boolean; size: number },
    rinfo: { address: string; port: number },
  ): void {
    let packet: ParsedPacket;
    try {
      packet = parse(msg);
    } catch {
      this.m.dropped.inc({ reason: 'malformed' });
      return;
    }
    const out = this.blocks.offer(
      transferKey(`${rinfo.address}:${rinfo.port}`, packet),
      b1,
      packet.payload,
      this.now(),
    );
    const block1 = packet.options.find((o) => o.name === 'Block1')!.value;
    const answer = (code: string, options: { name: string; value: Buffer }[]) =>
      this.send(
        generate({
          code,
          messageId: packet.messageId,
          token: packet.token,
          ack: packet.confirmable,
          confirmable: false,
          options,
        }),
        rinfo,
      );
    if (out.kind === 'continue') return answer('2.31', [{ name: 'Block1', value: block1 }]);
    if (out.kind === 'incomplete') {
      this.m.requests.inc({ code: '4.08' });
      return answer('4.08', []);
    }
    if (out.kind === 'too-large') {
      this.m.requests.inc({ code: '4.13' });
      return this.send(
        encodeResponse(
          {
            type: packet.confirmable ? 0 : 1,
            code: 0,
            messageId: packet.messageId,
            token: packet.token,
            payloadLength: 0,
          },
          4,
          13,
          this.opts.config.max_payload_bytes,
        ),
        rinfo,
      );
    }
    packet.options = packet.options.filter((o) => o.name !== 'Block1' && o.name !== 'Size1');
    packet.payload = out.payload;
    (packet as ParsedPacket & { block1Final?: Buffer }).block1Final = block1;
    try {
      this.server?._handle(packet, rinfo as never);
    } catch (err) {
      this.opts.log.warn({ err }, 'CoAP library refused a reassembled request');
    }
  }

  private send(buf: Buffer, rinfo: { address: string; port: number }): void {
    this.socket?.send(buf, rinfo.port, rinfo.address);
  }

  private async onRequest(req: CoapIncoming, res: CoapOutgoing): Promise<void> {
    const packet = req._packet as Packet;
    const source = `${normaliseAddress(req.rsinfo.address)}:${req.rsinfo.port}`;
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
      creq = toRequest(req, packet, source);
    } catch (err) {
      mark.done = true;
      return this.reply(res, text('4.02', (err as Error).message), false);
    }
    const observeKey = `${source}/${(packet.token ?? Buffer.alloc(0)).toString('hex')}`;
    // RFC 7641 §3.6: GET with Observe=1 deregisters; so does a plain GET with the same token (§4.1).
    const block2Num = blockNumber(packet.options ?? [], 'Block2');
    // (A Block2 follow-up of a large notification may reuse the token: it is not a deregistration.)
    if (creq.method === 'GET' && block2Num === 0 && this.observers.has(observeKey)) this.unobserve(observeKey);
    // §2.3: the response to the last block of a Block1 transfer carries that Block1 option.
    const block1Final = (packet as { block1Final?: Buffer }).block1Final;
    if (block1Final) res.setOption('Block1', block1Final);
    const match = this.router.match(creq.path);
    let reply: CoapReply;
    const handler = match?.resource.methods[creq.method];
    // RFC 7959 §2.4: later blocks of a Block2 transfer come from the representation the first
    // block was cut from (clients may use a new token per block, so the library's cache misses).
    const blockKey = `${source}|${creq.method}|${creq.path.join('/')}|${JSON.stringify(creq.query)}`;
    const cached = block2Num > 0 ? this.block2Cache.get(blockKey) : undefined;
    if (cached && this.now() - cached.at < BLOCK2_CACHE_MS) reply = cached.reply;
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
      Buffer.byteLength(reply.payload ?? '') > MAX_BLOCK &&
      creq.method === 'GET'
    ) {
      this.cacheRepresentation(blockKey, reply);
    }
    const canObserve =
      creq.observe &&
      match?.resource.observe !== undefined &&
      reply.code.startsWith('2.') &&
      this.observers.size < this.opts.config.max_observers;
    if (!canObserve || !match?.resource.observe) return this.reply(res, reply, creq.observe);
    const stream = res as unknown as CoapObserveStream;
    let n = 0;
    let unsubscribe: () => void = () => undefined;
    const stop = () => {
      if (this.observers.get(observeKey) !== entry) return;
      this.observers.delete(observeKey);
      this.m.observers.set(this.observers.size);
      unsubscribe();
      if (!stream.writableEnded) stream.end();
    };
    const entry: Observer = { stop };
    this.observers.set(observeKey, entry);
    this.m.observers.set(this.observers.size);
    // The library ends the stream on a RST (§3.6 "forget") or when a CON notification times out;
    // a send error (e.g. a packet the library cannot encode) must end the observation, never the process.
    stream.once('finish', stop);
    stream.on('error', (err: Error) => {
      this.opts.log.warn({ err, path: '/' + creq.path.join('/') }, 'CoAP notification failed; observer dropped');
      stop();
    });
    this.notify(stream, reply, false, blockKey);
    unsubscribe = match.resource.observe(creq, match.params, (next) => {
      // RFC 7641 §4.5: every Nth notification to a NON observer is CON, so a vanished one is noticed.
      this.notify(stream, next, !packet.confirmable && ++n % CON_EVERY_N_NOTIFICATIONS === 0, blockKey);
    });
  }

  private unobserve(key: string): void {
    this.observers.get(key)?.stop();
  }

  private notify(stream: CoapObserveStream, reply: CoapReply, confirmable: boolean, blockKey: string): void {
    if (stream.writableEnded) return;
    if (confirmable) {
      stream._packet.confirmable = true;
      stream._packet.ack = false;
    }
    stream.statusCode = reply.code;
    if (reply.contentFormat !== undefined) stream.setOption('Content-Format', reply.contentFormat);
    if (reply.maxAge !== undefined) stream.setOption('Max-Age', reply.maxAge);
    let payload = toBuffer(reply.payload);
    stream._packet.options = (stream._packet.options ?? []).filter((o) => o.name !== 'Block2');
    if (payload.length > MAX_BLOCK) {
      // RFC 7959 §2.6: a large notification carries its first block; the client GETs the rest
      // with Block2, served from the representation cached here.
      this.cacheRepresentation(blockKey, reply);
      stream.setOption('Block2', Buffer.from([0x0e])); // NUM 0, M 1, SZX 6 (1024)
      payload = payload.subarray(0, MAX_BLOCK);
    }
    stream.write(payload);
  }

  private cacheRepresentation(key: string, reply: CoapReply): void {
    this.block2Cache.delete(key);
    this.block2Cache.set(key, { reply, at: this.now() });
    if (this.block2Cache.size > 256) this.block2Cache.delete(this.block2Cache.keys().next().value!);
  }

  private reply(res: CoapOutgoing, reply: CoapReply, observeRequested: boolean): void {
    this.m.requests.inc({ code: reply.code });
    if (reply.contentFormat !== undefined) res.setOption('Content-Format', reply.contentFormat);
    if (reply.maxAge !== undefined) res.setOption('Max-Age', reply.maxAge);
    const payload = toBuffer(reply.payload);
    if (observeRequested) {
      // ObserveWriteStream: a single answer without the Observe option means "not registered"
      // (RFC 7641 §3.2). _doSend sends it as is; marking it sent keeps 'finish' from sending twice.
      const stream = res as unknown as CoapObserveStream & { _doSend(data?: Buffer): void };
      stream.statusCode = reply.code;
      stream._doSend(payload);
      stream._counter = 1;
      stream.end();
      return;
    }
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

function toBuffer(p: Buffer | string | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
}

/** `::ffff:10.0.0.5` (an IPv4 peer on a dual-stack socket) → `10.0.0.5`, so limits key one address. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

const METHODS: Record<string, CoapMethod> = {
  '0.01': 'GET',
  '0.02': 'POST',
  '0.03': 'PUT',
  '0.04': 'DELETE',
  '0.05': 'FETCH',
  '0.06': 'PATCH',
  '0.07': 'iPATCH',
};

function uintOf(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (!Buffer.isBuffer(v)) return undefined;
  if (v.length > 4) throw new Error('option value too long');
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

/** NUM of a Block1/Block2 option (RFC 7959 §2.2), 0 when absent. */
function blockNumber(options: readonly { name: unknown; value: unknown }[], name: string): number {
  const o = options.find((x) => x.name === name);
  const v = o && Buffer.isBuffer(o.value) ? o.value : undefined;
  if (!v || v.length === 0 || v.length > 3) return 0;
  return v.readUIntBE(0, v.length) >> 4;
}

/** Maps the library's request onto the transport-independent CoapRequest, from the raw options. */
function toRequest(req: CoapIncoming, packet: Packet, source: string): CoapRequest {
  const path: string[] = [];
  const query: Record<string, string> = {};
  let contentFormat: number | undefined;
  let accept: number | undefined;
  let observe = false;
  for (const o of packet.options ?? []) {
    const v = o.value;
    switch (o.name) {
      case 'Uri-Path':
        path.push(Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
        break;
      case 'Uri-Query': {
        const s = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
        const eq = s.indexOf('=');
        if (eq < 0) query[s] = '';
        else query[s.slice(0, eq)] = s.slice(eq + 1);
        break;
      }
      case 'Content-Format':
        contentFormat = contentFormatNumber(v);
        break;
      case 'Accept':
        accept = contentFormatNumber(v);
        break;
      case 'Observe':
        observe = uintOf(v) === 0;
        break;
    }
  }
  // A trailing empty segment ("/sensors/") names the same resource.
  if (path.length > 0 && path[path.length - 1] === '') path.pop();
  const method = METHODS[packet.code ?? ''] ?? 'GET';
  return {
    method,
    path,
    query,
    contentFormat,
    accept,
    payload: req.payload ?? Buffer.alloc(0),
    address: source.slice(0, source.lastIndexOf(':')),
    source,
    observe: observe && (method === 'GET' || method === 'FETCH'),
  };
}
