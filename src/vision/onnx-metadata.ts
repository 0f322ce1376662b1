/**
 * Reads ModelProto.metadata_props (field 14, repeated StringStringEntryProto {key = 1, value = 2};
 * onnx/onnx.proto3) from an ONNX file's bytes. onnxruntime-node does not expose them, and a model
 * may carry its labels, mean, std and layout there. Protobuf wire format: varint keys
 * (field << 3 | wire type), types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
 */
export function readOnnxMetadata(buf: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const dec = new TextDecoder('utf-8', { fatal: false });
  let pos = 0;
  const varint = (end: number): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw new Error('truncated varint');
      const b = buf[pos++]!;
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  const skip = (wt: number, end: number): void => {
    if (wt === 0) varint(end);
    else if (wt === 1) pos += 8;
    else if (wt === 2) {
      // Not `pos += varint()`: the left operand would be read before varint() advances pos.
      const len = varint(end);
      pos += len;
    } else if (wt === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wt}`);
    if (pos > end) throw new Error('truncated field');
  };
  const end = buf.length;
  while (pos < end) {
    const key = varint(end);
    const field = Math.floor(key / 8);
    const wt = key & 7;
    if (field === 14 && wt === 2) {
      const len = varint(end);
      const stop = pos + len;
      if (stop > end) throw new Error('truncated metadata entry');
      let k = '';
      let v = '';
      while (pos < stop) {
        const kk = varint(stop);
        const f = Math.floor(kk / 8);
        if ((f === 1 || f === 2) && (kk & 7) === 2) {
          const l = varint(stop);
          if (pos + l > stop) throw new Error('truncated string');
          const s = dec.decode(buf.subarray(pos, pos + l));
          pos += l;
          if (f === 1) k = s;
          else v = s;
        } else skip(kk & 7, stop);
      }
      if (k !== '') out[k] = v;
    } else skip(wt, end);
  }
  return out;
}
