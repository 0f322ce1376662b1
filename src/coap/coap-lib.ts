import type { Socket } from 'node:dgram';
import coap from 'coap';
import type { ParsedPacket } from 'coap-packet';
import { contentFormatNumber } from './content-formats.js';
import type { CoapMethod, CoapRequest } from './router.js';

/**
 * The one place that touches the `coap` library's private API. Read from coap 1.5.0
 * (dist/lib/server.js: `handleRequest()`, `_handle(packet, rsinfo)`, the socket's 'message'
 * listener; dist/lib/observe_write_stream.js: `_packet`, `_doSend`, `_counter`;
 * dist/lib/incoming_message.js: `_packet`). Upgrading `coap` means re-reading those files and this
 * adapter; nothing else in src/coap reaches past the library's public API.
 */

export type CoapLibServer = InstanceType<typeof coap.Server>;
export type CoapIncoming = InstanceType<typeof coap.IncomingMessage>;
export type CoapOutgoing = InstanceType<typeof coap.OutgoingMessage>;
export type ObserveStream = InstanceType<typeof coap.ObserveWriteStream>;
export type Packet = CoapIncoming['_packet'];
export interface RemoteInfo {
  address: string;
  port: number;
}

/** Our own mark on a reassembled Block1 request: the Block1 option its response must echo (RFC 7959 §2.3). */
type WithBlock1Final = { block1Final?: Buffer };

/**
 * Creates the library server on an already bound socket and puts `filter` in front of the
 * library's own datagram handler: every datagram reaches `filter`; `pass` hands it to the library.
 */
export function createLibServer(
  socket: Socket,
  type: 'udp4' | 'udp6',
  filter: (msg: Buffer, rinfo: RemoteInfo & { family: string; size: number }, pass: (m: Buffer) => void) => void,
): CoapLibServer {
  const server = coap.createServer({ type, piggybackReplyMs: 50 });
  server.listen(socket);
  // coap 1.5.0 listen(socket) adds `handleRequest()` as the socket's 'message' listener; replace it.
  const handle = server.handleRequest() as (m: Buffer, r: never) => void;
  socket.removeAllListeners('message');
  socket.on('message', (msg: Buffer, rinfo) => filter(msg, rinfo, (m) => handle(m, rinfo as never)));
  return server;
}

/** Hands a request we reassembled ourselves (Block1) to the library as if it had come in one datagram. */
export function injectRequest(
  server: CoapLibServer,
  packet: ParsedPacket,
  block1Final: Buffer,
  rinfo: RemoteInfo,
): void {
  (packet as ParsedPacket & WithBlock1Final).block1Final = block1Final;
  server._handle(packet, rinfo as never);
}

export function packetOf(req: CoapIncoming): Packet {
  return req._packet as Packet;
}

export function block1FinalOf(packet: Packet): Buffer | undefined {
  return (packet as WithBlock1Final).block1Final;
}

/** The response stream of a request that asked to observe (the library hands an ObserveWriteStream). */
export function asObserveStream(res: CoapOutgoing): ObserveStream {
  return res as unknown as ObserveStream;
}

/**
 * RFC 7641 §3.2: a single answer without the Observe option means "not registered". `_doSend`
 * sends it as is; marking it sent (`_counter = 1`) keeps 'finish' from sending a second one.
 */
export function sendWithoutObserve(stream: ObserveStream, code: string, payload: Buffer): void {
  const s = stream as ObserveStream & { _doSend(data?: Buffer): void };
  s.statusCode = code;
  s._doSend(payload);
  s._counter = 1;
  s.end();
}

/** The next notification goes CON (RFC 7641 §4.5), not the request's type. */
export function makeNextConfirmable(stream: ObserveStream): void {
  stream._packet.confirmable = true;
  stream._packet.ack = false;
}

/** Drops a Block2 option a previous notification left on the stream's packet template. */
export function clearBlock2(stream: ObserveStream): void {
  stream._packet.options = (stream._packet.options ?? []).filter((o) => o.name !== 'Block2');
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

/** Maps the library's request onto the transport-independent CoapRequest, from the raw options. */
export function toRequest(req: CoapIncoming, packet: Packet, address: string, source: string): CoapRequest {
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
    address,
    source,
    observe: observe && (method === 'GET' || method === 'FETCH'),
  };
}
