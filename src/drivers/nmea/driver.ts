import type { Driver, DriverContext, DriverType, Sample } from '../types.js';
import { LineFramer } from '../lines/framer.js';
import { PortSupervisor, SilenceWatch } from '../serial/port.js';
import { NmeaConfigSchema, type NmeaConfig } from './config.js';
import { NmeaAssembler, parseNmea, type Fix } from './parse.js';

/** `nmea`: GGA/RMC/VTG from a GNSS receiver, one merged fix per epoch. */
export const nmeaType: DriverType<NmeaConfig> = {
  type: 'nmea',
  schema: NmeaConfigSchema,
  source: 'serial',
  transport: 'serial',
  create(c, ctx) {
    return new NmeaDriver(c, ctx);
  },
};

class NmeaDriver implements Driver {
  private readonly framer: LineFramer;
  private readonly assembler = new NmeaAssembler();
  private readonly port: PortSupervisor;
  private readonly silence: SilenceWatch;
  private readonly wanted: Set<string>;
  private epochTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly c: NmeaConfig,
    private readonly ctx: DriverContext,
  ) {
    this.wanted = new Set(c.sentences);
    // NMEA 0183 ends sentences with <CR><LF>; the framer splits on LF and strips the CR.
    this.framer = new LineFramer('\n', c.max_line_length);
    this.silence = new SilenceWatch(
      c.stale_after_ms,
      () => {
        // A closed port has already been reported with its own reason.
        if (this.port.isOpen) ctx.setConnected(false, `no valid sentence for ${c.stale_after_ms} ms`);
      },
      () => ctx.setConnected(true),
    );
    this.port = new PortSupervisor({
      settings: c,
      ctx,
      onData: (b) => this.onData(b),
      onOpen: () => {
        this.framer.reset();
        // Armed at open, not at the first valid sentence: a receiver that only ever sends noise
        // (wrong baud rate, a dead module) must go offline too.
        this.silence.arm();
      },
    });
  }

  async start(): Promise<void> {
    this.port.start();
  }

  async stop(): Promise<void> {
    clearTimeout(this.epochTimer);
    this.epochTimer = undefined;
    this.silence.stop();
    await this.port.stop();
  }

  devices(): readonly string[] {
    return [this.c.id];
  }

  private onData(chunk: Buffer): void {
    // bytes_in is every byte the receiver sent (unused and bad sentences too), not only fixes.
    this.ctx.received(chunk.length);
    const { lines, overlong } = this.framer.push(chunk);
    for (let i = 0; i < overlong; i++)
      this.ctx.error('overlong', { detail: `sentence longer than ${this.c.max_line_length} bytes` });
    const fixes: Fix[] = [];
    for (const raw of lines) {
      const line = raw.toString('latin1');
      if (line.trim() === '') continue;
      const r = parseNmea(line);
      if (!r.ok) {
        if (r.reason === 'unsupported') {
          // GSV, GSA, proprietary ($PMTK, $PGRMC...): valid, the receiver is alive, just not used.
          this.silence.kick();
          continue;
        }
        this.ctx.error(r.reason === 'checksum' ? 'checksum' : 'bad_line', {
          detail: `${r.detail ?? r.reason}: ${JSON.stringify(line.slice(0, 100))}`,
        });
        continue;
      }
      this.silence.kick();
      if (!this.wanted.has(r.sentence.kind)) continue;
      fixes.push(...this.assembler.push(r.sentence));
    }
    if (fixes.length) this.emit(fixes);
    if (lines.length) this.armEpochTimer();
  }

  /** The last epoch is emitted when the receiver goes quiet for epoch_timeout_ms. */
  private armEpochTimer(): void {
    clearTimeout(this.epochTimer);
    this.epochTimer = setTimeout(() => {
      this.epochTimer = undefined;
      const f = this.assembler.flush();
      if (f) this.emit([f]);
    }, this.c.epoch_timeout_ms);
  }

  private emit(fixes: Fix[]): void {
    // bytes: 0, the bytes were counted on arrival (onData).
    const samples: Sample[] = fixes.map((f) => ({ values: f.values, units: f.units, quality: f.quality, bytes: 0 }));
    this.ctx.emit(samples);
  }
}
