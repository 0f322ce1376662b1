/**
 * A strict, allocation-free look at a raw CoAP datagram (RFC 7252 §3), done before the `coap`
 * library sees it: malformed datagrams are dropped here (§4.2 "rejected"/silently ignored) instead of
 * being answered with a 5.00 by the library, and Block1 transfers that would exceed the payload
 * limit are refused before the library starts reassembling them.
 */

export interface DatagramInfo {
  /** 0 CON, 1 NON, 2 ACK, 3 RST (§3). */
  type: number;
  /** Code as class*32+detail; requests are class 0 (1..31), 0 is an empty message. */
  code: number;
  messageId: number;
  token: Buffer;
  /** Block1 option (§2.2 RFC 7959), if present and well-formed. */
  block1?: { num: number; more: boolean; size: number };
  /** Size1 option (RFC 7959 §4): the client's announced total request body size. */
  size1?: number;
  payloadLength: number;
}

export type InspectResult = { ok: true; info: DatagramInfo } | { ok: false; reason: string };

const OPT_BLOCK1 = 27;
const OPT_SIZE1 = 60;

function readUint(buf: Buffer, start: number, len: number): number {
  let v = 0;
  for (let i = 0; i < len; i++) v = v * 256 + buf[start + i]!;
  return v;
}

/** Parses header, token and options; every length is checked against the datagram's end. */
export function inspectDatagram(buf: Buffer): InspectResult {
  if (buf.length < 4) return { ok: false, reason: 'truncated header' };
  const b0 = buf[0]!;
  if (b0 >> 6 !== 1) return { ok: false, reason: 'unknown version' }; // §3: Ver MUST be 1
  const tkl = b0 & 0x0f;
  if (tkl > 8) return { ok: false, reason: 'token length 9-15 is reserved' }; // §3
  const type = (b0 >> 4) & 0x03;
  const code = buf[1]!;
  const messageId = buf.readUInt16BE(2);
  let pos = 4 + tkl;
  if (pos > buf.length) return { ok: false, reason: 'truncated token' };
  const token = buf.subarray(4, pos);
  if (code === 0 && buf.length > 4 + tkl) return { ok: false, reason: 'empty message with content' }; // §4.1
  let optNum = 0;
  let block1: DatagramInfo['block1'];
  let size1: number | undefined;
  let payloadLength = 0;
  while (pos < buf.length) {
    const byte = buf[pos]!;
    if (byte === 0xff) {
      payloadLength = buf.length - pos - 1;
      // §3: a payload marker followed by a zero-length payload is a format error.
      if (payloadLength === 0) return { ok: false, reason: 'payload marker without payload' };
      break;
    }
    pos++;
    let delta = byte >> 4;
    let len = byte & 0x0f;
    // §3.1: nibble 15 is reserved except in the payload marker.
    if (delta === 15 || len === 15) return { ok: false, reason: 'reserved option nibble 15' };
    if (delta === 13) {
      if (pos + 1 > buf.length) return { ok: false, reason: 'truncated option delta' };
      delta = buf[pos++]! + 13;
    } else if (delta === 14) {
      if (pos + 2 > buf.length) return { ok: false, reason: 'truncated option delta' };
      delta = buf.readUInt16BE(pos) + 269;
      pos += 2;
    }
    if (len === 13) {
      if (pos + 1 > buf.length) return { ok: false, reason: 'truncated option length' };
      len = buf[pos++]! + 13;
    } else if (len === 14) {
      if (pos + 2 > buf.length) return { ok: false, reason: 'truncated option length' };
      len = buf.readUInt16BE(pos) + 269;
      pos += 2;
    }
    optNum += delta;
    if (optNum > 65535) return { ok: false, reason: 'option number out of range' };
    if (pos + len > buf.length) return { ok: false, reason: 'option value past end of datagram' };
    if (optNum === OPT_BLOCK1) {
      if (len > 3) return { ok: false, reason: 'Block1 longer than 3 bytes' }; // RFC 7959 §2.2
      const v = readUint(buf, pos, len);
      const szx = v & 0x07;
      if (szx === 7) return { ok: false, reason: 'Block1 SZX 7 is reserved' };
      block1 = { num: v >> 4, more: (v & 0x08) !== 0, size: 1 << (szx + 4) };
    } else if (optNum === OPT_SIZE1 && len <= 4) {
      size1 = readUint(buf, pos, len);
    }
    pos += len;
  }
  const info: DatagramInfo = { type, code, messageId, token, payloadLength };
  if (block1) info.block1 = block1;
  if (size1 !== undefined) info.size1 = size1;
  return { ok: true, info };
}

/** True for request codes (class 0, detail 1..31): GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH. */
export function isRequestCode(code: number): boolean {
  return code >> 5 === 0 && code !== 0;
}

/**
 * A minimal response datagram (no options but Size1), for answers the filter gives itself:
 * 4.13 with Size1 (RFC 7959 §2.9.3) and 5.03 when a source exceeds its rate.
 */
export function encodeResponse(req: DatagramInfo, codeClass: number, codeDetail: number, size1?: number): Buffer {
  const piggyback = req.type === 0; // CON → piggybacked ACK (§5.2.1); NON → NON (§5.2.3)
  const opts: Buffer[] = [];
  if (size1 !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(size1);
    let start = 0;
    while (start < 4 && v[start] === 0) start++;
    const val = v.subarray(start);
    // Size1 is option 60: delta 60 = 13 + 47 → nibble 13 with one extension byte.
    opts.push(Buffer.from([(13 << 4) | val.length, 60 - 13]), val);
  }
  const head = Buffer.from([
    0x40 | ((piggyback ? 2 : 1) << 4) | req.token.length,
    (codeClass << 5) | codeDetail,
    req.messageId >> 8,
    req.messageId & 0xff,
  ]);
  return Buffer.concat([head, req.token, ...opts]);
}
