import { generate, parse, type ParsedPacket } from 'coap-packet';
import { encodeResponse } from './datagram.js';

/**
 * Block1 reassembly (RFC 7959 §2.3, §2.5). The `coap` library has its own, keyed by token — but
 * clients (libcoap among them) may use a fresh token per block, since §2.4 identifies a body by
 * endpoint and request options, not by token. So bodies are assembled here, keyed by
 * (peer, method, Uri-Path, Uri-Query), strictly in order, bounded in count, size and time.
 */
export type BlockOutcome =
  | { kind: 'continue' } // answer 2.31 Continue with the Block1 option echoed (§2.3)
  | { kind: 'complete'; payload: Buffer }
  | { kind: 'incomplete' } // 4.08: a block out of order or a transfer we do not know (§2.9.2)
  | { kind: 'too-large' }; // 4.13

interface Entry {
  chunks: Buffer[];
  received: number;
  lastNum: number;
  at: number;
}

export interface Block1Options {
  maxBytes: number;
  maxTransfers: number;
  /** A transfer idle longer than this is forgotten. */
  idleMs: number;
}

const KEY_OPTIONS = new Set(['Uri-Host', 'Uri-Port', 'Uri-Path', 'Uri-Query', 3, 7, 11, 15]);

export function transferKey(peer: string, packet: Pick<ParsedPacket, 'code' | 'options'>): string {
  const parts = [peer, packet.code];
  for (const o of packet.options)
    if (KEY_OPTIONS.has(o.name)) parts.push(`${String(o.name)}=${o.value.toString('hex')}`);
  return parts.join('|');
}

export class Block1Assembler {
  private readonly transfers = new Map<string, Entry>();

  constructor(private readonly opts: Block1Options) {}

  offer(
    key: string,
    block: { num: number; more: boolean; size: number },
    payload: Buffer,
    nowMs: number,
  ): BlockOutcome {
    this.expire(nowMs);
    let e = this.transfers.get(key);
    if (block.num === 0) {
      e = { chunks: [], received: 0, lastNum: -1, at: nowMs };
      this.transfers.delete(key);
      this.transfers.set(key, e);
      if (this.transfers.size > this.opts.maxTransfers) this.transfers.delete(this.transfers.keys().next().value!);
    }
    if (!e) return { kind: 'incomplete' };
    // A retransmitted last block (its ACK was lost): acknowledge again, do not append twice.
    if (block.num === e.lastNum && block.more) return { kind: 'continue' };
    if (block.num !== e.lastNum + 1 || block.num * block.size !== e.received) {
      this.transfers.delete(key);
      return { kind: 'incomplete' };
    }
    // §2.2: every block but the last carries exactly `size` bytes.
    if (block.more && payload.length !== block.size) {
      this.transfers.delete(key);
      return { kind: 'incomplete' };
    }
    if (e.received + payload.length > this.opts.maxBytes) {
      this.transfers.delete(key);
      return { kind: 'too-large' };
    }
    e.chunks.push(payload);
    e.received += payload.length;
    e.lastNum = block.num;
    e.at = nowMs;
    if (block.more) return { kind: 'continue' };
    this.transfers.delete(key);
    return { kind: 'complete', payload: Buffer.concat(e.chunks, e.received) };
  }

  get size(): number {
    return this.transfers.size;
  }

  private expire(nowMs: number): void {
    for (const [k, e] of this.transfers) {
      if (nowMs - e.at <= this.opts.idleMs) break; // Map order = least recently started first
      this.transfers.delete(k);
    }
  }
}

/** What the server does with one Block1 datagram. */
export type Block1Step =
  | { kind: 'malformed' }
  /** Answer the peer with `datagram` (2.31 Continue, 4.08, 4.13); `code` when it is a final response. */
  | { kind: 'answer'; datagram: Buffer; code?: string }
  /** The body is complete: `packet` carries it without Block1/Size1; `block1` is the option to echo. */
  | { kind: 'complete'; packet: ParsedPacket; block1: Buffer };

/** RFC 7959 §2.3: one body block offered to the assembler, and the answer the peer gets. */
export function block1Step(
  assembler: Block1Assembler,
  msg: Buffer,
  b1: { num: number; more: boolean; size: number },
  peer: string,
  nowMs: number,
  maxBytes: number,
): Block1Step {
  let packet: ParsedPacket;
  try {
    packet = parse(msg);
  } catch {
    return { kind: 'malformed' };
  }
  const out = assembler.offer(transferKey(peer, packet), b1, packet.payload, nowMs);
  const block1 = packet.options.find((o) => o.name === 'Block1')!.value;
  const answer = (code: string, options: { name: string; value: Buffer }[]) =>
    generate({
      code,
      messageId: packet.messageId,
      token: packet.token,
      ack: packet.confirmable,
      confirmable: false,
      options,
    });
  if (out.kind === 'continue') return { kind: 'answer', datagram: answer('2.31', [{ name: 'Block1', value: block1 }]) };
  if (out.kind === 'incomplete') return { kind: 'answer', datagram: answer('4.08', []), code: '4.08' };
  if (out.kind === 'too-large') {
    const info = {
      type: packet.confirmable ? 0 : 1,
      code: 0,
      messageId: packet.messageId,
      token: packet.token,
      payloadLength: 0,
    };
    return { kind: 'answer', datagram: encodeResponse(info, 4, 13, maxBytes), code: '4.13' };
  }
  packet.options = packet.options.filter((o) => o.name !== 'Block1' && o.name !== 'Size1');
  packet.payload = out.payload;
  return { kind: 'complete', packet, block1 };
}
