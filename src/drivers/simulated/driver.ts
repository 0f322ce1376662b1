import type { Driver, DriverContext, DriverType } from '../types.js';
import { SimulatedConfigSchema, type SimulatedConfig } from './config.js';
import { mulberry32, sampleSignals } from './signal.js';

/** `simulated`: synthetic sensor so a fresh install produces readings (and demos show anomalies). */
export const simulatedType: DriverType<SimulatedConfig> = {
  type: 'simulated',
  schema: SimulatedConfigSchema,
  source: 'simulated',
  transport: 'simulated',
  create(c, ctx) {
    return new SimulatedDriver(c, ctx);
  },
};

class SimulatedDriver implements Driver {
  private timer: NodeJS.Timeout | undefined;
  private readonly rand: () => number;
  private readonly t0 = performance.now();
  private readonly units: Record<string, string> = {};

  constructor(
    private readonly c: SimulatedConfig,
    private readonly ctx: DriverContext,
  ) {
    this.rand = c.seed !== undefined ? mulberry32(c.seed) : Math.random;
    for (const s of c.signals) if (s.unit) this.units[s.name] = s.unit;
  }

  async start(): Promise<void> {
    this.ctx.setConnected(true);
    this.timer = setInterval(() => this.tick(), this.c.interval_ms);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  devices(): readonly string[] {
    return [this.c.id];
  }

  private tick(): void {
    const s = sampleSignals(
      this.c.signals,
      (performance.now() - this.t0) / 1000,
      this.c.dropout_probability,
      this.rand,
    );
    this.ctx.emit([{ values: s.values, quality: s.quality, units: this.units }]);
  }
}
