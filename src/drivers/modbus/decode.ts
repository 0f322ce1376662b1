/**
 * Register ↔ value conversion for Modbus poll maps. Pure. Modbus registers are 16-bit big-endian
 * (Modbus Application Protocol v1.1b3 §4.2); 32-bit values span two registers in an order the
 * spec leaves to the vendor, hence word_order and byte_order.
 */
export type RegisterType = 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32';
export type Order = 'big' | 'little';

export function registersPer(type: RegisterType): 1 | 2 {
  return type === 'int16' || type === 'uint16' ? 1 : 2;
}

/** Canonical big-endian bytes of the value's registers, applying the device's orders. */
function toBytes(words: readonly number[], wordOrder: Order, byteOrder: Order): Buffer {
  const ordered = wordOrder === 'little' ? [...words].reverse() : words;
  const b = Buffer.alloc(ordered.length * 2);
  ordered.forEach((w, i) => {
    const hi = (w >> 8) & 0xff;
    const lo = w & 0xff;
    b[i * 2] = byteOrder === 'big' ? hi : lo;
    b[i * 2 + 1] = byteOrder === 'big' ? lo : hi;
  });
  return b;
}

function fromBytes(b: Buffer, wordOrder: Order, byteOrder: Order): number[] {
  const words: number[] = [];
  for (let i = 0; i < b.length; i += 2) {
    words.push(byteOrder === 'big' ? (b[i]! << 8) | b[i + 1]! : (b[i + 1]! << 8) | b[i]!);
  }
  return wordOrder === 'little' ? words.reverse() : words;
}

/** Decodes `count` values of `type` from consecutive registers. */
export function decodeRegisters(
  words: readonly number[],
  type: RegisterType,
  count: number,
  wordOrder: Order,
  byteOrder: Order,
): number[] {
  const n = registersPer(type);
  if (words.length < n * count) throw new RangeError(`need ${n * count} registers, got ${words.length}`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const b = toBytes(words.slice(i * n, i * n + n), wordOrder, byteOrder);
    switch (type) {
      case 'int16':
        out.push(b.readInt16BE(0));
        break;
      case 'uint16':
        out.push(b.readUInt16BE(0));
        break;
      case 'int32':
        out.push(b.readInt32BE(0));
        break;
      case 'uint32':
        out.push(b.readUInt32BE(0));
        break;
      case 'float32':
        out.push(b.readFloatBE(0));
        break;
    }
  }
  return out;
}

const RANGE: Record<Exclude<RegisterType, 'float32'>, [number, number]> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

/** Encodes one raw value into registers; throws RangeError when it does not fit the type. */
export function encodeValue(raw: number, type: RegisterType, wordOrder: Order, byteOrder: Order): number[] {
  const b = Buffer.alloc(registersPer(type) * 2);
  if (type === 'float32') {
    if (!Number.isFinite(raw)) throw new RangeError('not a finite number');
    b.writeFloatBE(raw, 0);
  } else {
    const v = Math.round(raw);
    const [lo, hi] = RANGE[type];
    if (!Number.isFinite(v) || v < lo || v > hi) throw new RangeError(`${raw} does not fit ${type} [${lo}, ${hi}]`);
    if (type === 'int16') b.writeInt16BE(v, 0);
    else if (type === 'uint16') b.writeUInt16BE(v, 0);
    else if (type === 'int32') b.writeInt32BE(v, 0);
    else b.writeUInt32BE(v, 0);
  }
  return fromBytes(b, wordOrder, byteOrder);
}
