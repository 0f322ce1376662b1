/**
 * Delimiter framing with a maximum line length, as a pure state machine over byte chunks.
 * A line longer than `maxLength` is discarded up to the next delimiter and reported once, so a
 * device that never sends the delimiter cannot make the gateway buffer without bound.
 */
export interface FramerResult {
  lines: Buffer[];
  /** Lines dropped for being longer than maxLength (counted when their delimiter arrives or the limit is hit). */
  overlong: number;
}

export class LineFramer {
  private readonly delim: Buffer;
  private buf: Buffer = Buffer.alloc(0);
  /** True while skipping the rest of an overlong line. */
  private discarding = false;

  constructor(
    delimiter: string | Buffer,
    private readonly maxLength: number,
  ) {
    this.delim = Buffer.isBuffer(delimiter) ? delimiter : Buffer.from(delimiter, 'latin1');
  }

  push(chunk: Buffer): FramerResult {
    const lines: Buffer[] = [];
    let overlong = 0;
    const data = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const i = data.indexOf(this.delim, start);
      if (i < 0) break;
      if (this.discarding) this.discarding = false;
      else if (i - start > this.maxLength) overlong++;
      else lines.push(stripCr(data.subarray(start, i)));
      start = i + this.delim.length;
    }
    let rest = data.subarray(start);
    if (rest.length > this.maxLength) {
      // Keep only enough tail to recognise a delimiter split across chunks.
      if (!this.discarding) overlong++;
      this.discarding = true;
      rest = rest.subarray(rest.length - (this.delim.length - 1));
    }
    // Copy: the chunk's memory belongs to the stream and the tail may be held a long time.
    this.buf = Buffer.from(rest);
    return { lines, overlong };
  }

  /** Bytes held waiting for a delimiter. */
  get pending(): number {
    return this.buf.length;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.discarding = false;
  }
}

function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line;
}
