import type { Logger } from '../log/logger.js';
import { Block2Cache, MAX_BLOCK, toBuffer } from './block2-cache.js';
import { clearBlock2, makeNextConfirmable, type ObserveStream } from './coap-lib.js';
import type { CoapReply } from './router.js';

/** RFC 7641 §4.5: a NON observer must be checked with a CON notification now and then. */
const CON_EVERY_N_NOTIFICATIONS = 20;

export interface ObserverOptions {
  log: Logger;
  cache: Block2Cache;
  now: () => number;
  /** Called with the number of registrations after each change (for the gauge). */
  onCount: (n: number) => void;
}

export interface Registration {
  /** Peer and token (RFC 7641 §3.6: an observation is identified by both). */
  key: string;
  stream: ObserveStream;
  /** The request was CON: its notifications are too; otherwise every Nth is. */
  confirmable: boolean;
  /** Block2 cache key for large notifications. */
  blockKey: string;
  /** For logs. */
  path: string;
}

/** Observe registrations (RFC 7641): who gets notified, how, and when they stop. */
export class Observers {
  private readonly active = new Map<string, { stop: () => void }>();

  constructor(private readonly opts: ObserverOptions) {}

  get size(): number {
    return this.active.size;
  }

  has(key: string): boolean {
    return this.active.has(key);
  }

  /** RFC 7641 §3.6: GET with Observe=1, or a plain GET with the same token (§4.1), deregisters. */
  stop(key: string): void {
    this.active.get(key)?.stop();
  }

  stopAll(): void {
    for (const o of [...this.active.values()]) o.stop();
    this.active.clear();
    this.opts.onCount(0);
  }

  /**
   * Sends `first` as the registration's first notification, then whatever `subscribe` pushes,
   * until the peer goes away (RST or an unanswered CON ends the library's stream) or `stop`.
   */
  register(r: Registration, first: CoapReply, subscribe: (push: (reply: CoapReply) => void) => () => void): void {
    const { stream, key } = r;
    let n = 0;
    let unsubscribe: () => void = () => undefined;
    const stop = () => {
      if (this.active.get(key) !== entry) return;
      this.active.delete(key);
      this.opts.onCount(this.active.size);
      unsubscribe();
      if (!stream.writableEnded) stream.end();
    };
    const entry = { stop };
    this.active.set(key, entry);
    this.opts.onCount(this.active.size);
    // The library ends the stream on a RST (§3.6 "forget") or when a CON notification times out;
    // a send error (e.g. a packet the library cannot encode) must end the observation, never the process.
    stream.once('finish', stop);
    stream.on('error', (err: Error) => {
      this.opts.log.warn({ err, path: r.path }, 'CoAP notification failed; observer dropped');
      stop();
    });
    this.notify(stream, first, false, r.blockKey);
    unsubscribe = subscribe((next) => {
      // RFC 7641 §4.5: every Nth notification to a NON observer is CON, so a vanished one is noticed.
      this.notify(stream, next, !r.confirmable && ++n % CON_EVERY_N_NOTIFICATIONS === 0, r.blockKey);
    });
  }

  private notify(stream: ObserveStream, reply: CoapReply, confirmable: boolean, blockKey: string): void {
    if (stream.writableEnded) return;
    if (confirmable) makeNextConfirmable(stream);
    stream.statusCode = reply.code;
    if (reply.contentFormat !== undefined) stream.setOption('Content-Format', reply.contentFormat);
    if (reply.maxAge !== undefined) stream.setOption('Max-Age', reply.maxAge);
    let payload = toBuffer(reply.payload);
    clearBlock2(stream);
    if (payload.length > MAX_BLOCK) {
      // RFC 7959 §2.6: a large notification carries its first block; the client GETs the rest
      // with Block2, served from the representation cached here.
      this.opts.cache.put(blockKey, reply, this.opts.now());
      stream.setOption('Block2', Buffer.from([0x0e])); // NUM 0, M 1, SZX 6 (1024)
      payload = payload.subarray(0, MAX_BLOCK);
    }
    stream.write(payload);
  }
}
