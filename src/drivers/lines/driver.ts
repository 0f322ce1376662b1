import { GatewayError } from '../../errors.js';
import type { Driver, DriverContext, DriverType } from '../types.js';
import { PortSupervisor, SilenceWatch } from '../serial/port.js';
import { SerialLinesConfigSchema, type SerialLinesConfig } from './config.js';
import { LineFramer } from './framer.js';
import { parseCsvLine, parseJsonLine, type LineResult } from './parse.js';

/** Builds the pure line → values function for a config (checked once, before the port opens). */
export function lineParser(c: SerialLinesConfig): (line: string) => LineResult | null {
  let skip: RegExp | undefined;
  if (c.skip_lines_matching) {
    try {
      skip = new RegExp(c.skip_lines_matching);
    } catch (err) {
      throw new GatewayError(
        'EGW_DRIVER_CONFIG',
        `skip_lines_matching is not a valid regular expression: ${(err as Error).message}`,
      );
    }
  }
  const { columns, fields, separator } = c;
  const parse =
    c.format === 'csv' ? (l: string) => parseCsvLine(l, columns!, separator) : (l: string) => parseJsonLine(l, fields);
  return (line) => {
    if (line.trim() === '' || skip?.test(line)) return null;
    return parse(line);
  };
}

/** `serial-lines`: one reading per delimited line (JSON object or CSV mapped by columns). */
export const serialLinesType: DriverType<SerialLinesConfig> = {
  type: 'serial-lines',
  schema: SerialLinesConfigSchema,
  source: 'serial',
  transport: 'serial',
  create(c, ctx) {
    return new SerialLinesDriver(c, ctx);
  },
};

class SerialLinesDriver implements Driver {
  private readonly framer: LineFramer;
  private readonly parse: (line: string) => LineResult | null;
  private readonly port: PortSupervisor;
  private readonly silence: SilenceWatch;

  constructor(
    private readonly c: SerialLinesConfig,
    private readonly ctx: DriverContext,
  ) {
    this.parse = lineParser(c);
    this.framer = new LineFramer(c.delimiter, c.max_line_length);
    this.silence = new SilenceWatch(
      c.stale_after_ms,
      () => ctx.setConnected(false, `silent for ${c.stale_after_ms} ms`),
      () => ctx.setConnected(true),
    );
    this.port = new PortSupervisor({
      settings: c,
      ctx,
      onData: (b) => this.onData(b),
      onOpen: () => {
        this.framer.reset();
        // Armed at open (as the NMEA driver does): a device that only sends garbage goes offline too.
        this.silence.arm();
      },
    });
  }

  async start(): Promise<void> {
    this.port.start();
  }

  async stop(): Promise<void> {
    this.silence.stop();
    await this.port.stop();
  }

  devices(): readonly string[] {
    return [this.c.id];
  }

  private onData(chunk: Buffer): void {
    // bytes_in counts every byte the device sent, bad lines included.
    this.ctx.received(chunk.length);
    const { lines, overlong } = this.framer.push(chunk);
    for (let i = 0; i < overlong; i++)
      this.ctx.error('overlong', { detail: `line longer than ${this.c.max_line_length} bytes` });
    if (lines.length === 0) return;
    const samples = [];
    for (const raw of lines) {
      const line = raw.toString('utf8');
      const r = this.parse(line);
      if (r === null) continue;
      if (!r.ok) {
        this.ctx.error('bad_line', { detail: `${r.reason}: ${JSON.stringify(line.slice(0, 120))}` });
        continue;
      }
      if (r.left) this.ctx.error('bad_line', { detail: `left out ${r.left}` });
      samples.push({
        values: r.values,
        quality: r.quality,
        bytes: 0, // counted on arrival (onData)
        ...(r.units ? { units: r.units } : {}),
        ...(r.ts !== undefined ? { ts: r.ts } : {}),
      });
    }
    if (samples.length) {
      this.silence.kick();
      this.ctx.emit(samples);
    }
  }
}
