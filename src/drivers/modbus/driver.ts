import { lazyRequire } from '../../lifecycle/lazy.js';
import type { ModbusRTU as ModbusRTUClass } from 'modbus-serial/ModbusRTU.js';
import { GatewayError } from '../../errors.js';
import type { ReadingValue } from '../../pipeline/reading.js';
import { backoffDelay } from '../backoff.js';
import { serialOpenOptions } from '../serial/port.js';
import type { CommandResult, Driver, DriverContext, DriverErrorKind, DriverType } from '../types.js';
import { planWrites, slaveDeviceId, type WritePlan } from './commands.js';
import { ModbusRtuConfigSchema, type ModbusRtuConfig, type PollEntry, type SlaveConfig } from './config.js';
import { decodeRegisters, registersPer, type RegisterType } from './decode.js';

type Client = ModbusRTUClass & Pick<import('node:events').EventEmitter, 'removeAllListeners'>;
// modbus-serial is CommonJS: module.exports is the client class (its `default` points back to it).
// Loaded on the first connect (lifecycle/lazy.ts).
const modbusSerial = lazyRequire<new () => Client>('modbus-serial');

/** `modbus-rtu`: polls slaves on one RS-485 bus through modbus-serial; writes from commands. */
export const modbusRtuType: DriverType<ModbusRtuConfig> = {
  type: 'modbus-rtu',
  schema: ModbusRtuConfigSchema,
  source: 'serial',
  transport: 'serial',
  create(c, ctx) {
    return new ModbusRtuDriver(c, ctx);
  },
};

interface SlaveState {
  cfg: SlaveConfig;
  deviceId: string;
  failures: number;
  online: boolean | undefined;
  polls: number;
  lastError: string | null;
}

interface PollGroup {
  slave: SlaveState;
  intervalMs: number;
  entries: PollEntry[];
  queued: boolean;
}

/** Maps a modbus-serial error to our error kind and whether retrying can help. */
function classify(err: unknown): { kind: DriverErrorKind; retry: boolean } {
  const e = err as { message?: string; errno?: string; modbusCode?: number };
  if (e.modbusCode !== undefined) return { kind: 'exception', retry: false };
  if (e.errno === 'ETIMEDOUT' || /timed out/i.test(e.message ?? '')) return { kind: 'timeout', retry: true };
  if (/CRC|length|Unexpected data|Data length/i.test(e.message ?? '')) return { kind: 'crc', retry: true };
  return { kind: 'io', retry: false };
}

function checkConfig(c: ModbusRtuConfig): void {
  c.slaves.forEach((s, si) => {
    const names = new Set<string>();
    s.poll.forEach((p, pi) => {
      const at = `slaves[${si}].poll[${pi}]`;
      if (names.has(p.name))
        throw new GatewayError('EGW_DRIVER_CONFIG', `${at}.name: duplicate name "${p.name}" in slave ${s.unit}`);
      names.add(p.name);
      const bits = p.function === 'coil' || p.function === 'discrete';
      if (!bits && p.type === 'bool')
        throw new GatewayError('EGW_DRIVER_CONFIG', `${at}.type: bool applies to coils and discrete inputs only`);
      if (p.writable && (p.function === 'input' || p.function === 'discrete')) {
        throw new GatewayError('EGW_DRIVER_CONFIG', `${at}.writable: ${p.function} is read-only in Modbus`);
      }
    });
  });
  const units = c.slaves.map((s) => s.unit);
  if (new Set(units).size !== units.length)
    throw new GatewayError('EGW_DRIVER_CONFIG', 'slaves: duplicate unit address');
}

class ModbusRtuDriver implements Driver {
  private client: Client | undefined;
  private connecting = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = true;
  private readonly slaves: SlaveState[];
  private readonly groups: PollGroup[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  /** Modbus RTU is half-duplex, one request at a time on the bus (Modbus over Serial Line §2.1). */
  private bus: Promise<void> = Promise.resolve();

  constructor(
    private readonly c: ModbusRtuConfig,
    private readonly ctx: DriverContext,
  ) {
    checkConfig(c);
    this.slaves = c.slaves.map((cfg) => ({
      cfg,
      deviceId: slaveDeviceId(c.id, cfg),
      failures: 0,
      online: undefined,
      polls: 0,
      lastError: null,
    }));
    for (const slave of this.slaves) {
      const byInterval = new Map<number, PollEntry[]>();
      for (const p of slave.cfg.poll) {
        let l = byInterval.get(p.interval_ms);
        if (!l) byInterval.set(p.interval_ms, (l = []));
        l.push(p);
      }
      for (const [intervalMs, entries] of byInterval) this.groups.push({ slave, intervalMs, entries, queued: false });
    }
  }

  devices(): readonly string[] {
    return [this.c.id, ...this.slaves.map((s) => s.deviceId)];
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.connect();
    for (const g of this.groups) this.timers.push(setInterval(() => this.schedule(g), g.intervalMs));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    await this.closeClient();
  }

  detail(): Record<string, unknown> {
    return {
      slaves: Object.fromEntries(
        this.slaves.map((s) => [
          s.deviceId,
          { unit: s.cfg.unit, online: s.online ?? false, failures: s.failures, polls: s.polls, lastError: s.lastError },
        ]),
      ),
    };
  }

  async command(deviceId: string, payload: unknown): Promise<CommandResult> {
    const plan = planWrites(this.c, deviceId, payload);
    if (!plan.ok) return { ok: false, error: plan.error };
    const done: string[] = [];
    for (const w of plan.writes) {
      try {
        await this.onBus(() => this.withRetries(w.unit, (cl) => this.write(cl, w)));
        done.push(w.name);
      } catch (err) {
        return { ok: false, error: `${w.name}: ${(err as Error).message}`, detail: { written: done } };
      }
    }
    this.ctx.log.info({ device: deviceId, written: done }, 'modbus write done');
    // Read back soon so the new value shows in the readings.
    for (const g of this.groups) if (g.slave.deviceId === deviceId) this.schedule(g);
    return { ok: true, detail: { written: done } };
  }

  private write(cl: Client, w: WritePlan): Promise<unknown> {
    if (w.kind === 'coil') return cl.writeCoil(w.address, w.value);
    // FC6 for one register, FC16 for two (a 32-bit value must change atomically).
    return w.words.length === 1 ? cl.writeRegister(w.address, w.words[0]!) : cl.writeRegisters(w.address, w.words);
  }

  private connect(): void {
    if (this.stopped || this.connecting || this.client) return;
    this.connecting = true;
    const cl = new (modbusSerial())();
    cl.on('error', (err: unknown) => this.lost(cl, `port error: ${(err as Error).message}`));
    cl.on('close', () => this.lost(cl, 'port closed'));
    const o = serialOpenOptions(this.c);
    cl.connectRTUBuffered(this.c.path, {
      ...o,
      baudRate: o.baudRate,
      parity: o.parity,
      dataBits: o.dataBits,
      stopBits: o.stopBits,
    }).then(
      () => {
        this.connecting = false;
        if (this.stopped) {
          cl.close(() => {});
          return;
        }
        cl.setTimeout(this.c.timeout_ms);
        this.client = cl;
        this.attempt = 0;
        this.ctx.setConnected(true);
        for (const g of this.groups) this.schedule(g);
      },
      (err: unknown) => {
        this.connecting = false;
        cl.removeAllListeners();
        cl.on('error', () => {});
        this.ctx.error('open', { detail: (err as Error).message });
        this.ctx.setConnected(false, `cannot open ${this.c.path}: ${(err as Error).message}`);
        this.retry();
      },
    );
  }

  private lost(cl: Client, reason: string): void {
    if (this.client !== cl) return;
    this.client = undefined;
    cl.removeAllListeners();
    cl.on('error', () => {});
    if (this.stopped) return;
    this.ctx.error('io', { detail: reason });
    this.ctx.setConnected(false, reason);
    for (const s of this.slaves) this.setSlave(s, false, reason);
    if (cl.isOpen) cl.close(() => {});
    this.retry();
  }

  private retry(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++, this.c.reconnect.initial_ms, this.c.reconnect.max_ms);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.ctx.reconnecting();
      this.connect();
    }, delay);
  }

  private async closeClient(): Promise<void> {
    const cl = this.client;
    this.client = undefined;
    if (!cl) return;
    cl.removeAllListeners();
    cl.on('error', () => {});
    if (cl.isOpen) await new Promise<void>((r) => cl.close(() => r()));
  }

  private onBus<T>(job: () => Promise<T>): Promise<T> {
    const run = this.bus.then(job);
    this.bus = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** A poll tick; skipped while the same group is still waiting for the bus (no backlog on a slow bus). */
  private schedule(g: PollGroup): void {
    if (g.queued || !this.client || this.stopped) return;
    g.queued = true;
    void this.onBus(() => this.poll(g)).finally(() => (g.queued = false));
  }

  private async poll(g: PollGroup): Promise<void> {
    const values: Record<string, ReadingValue> = {};
    const units: Record<string, string> = {};
    let ok = 0;
    let failed = 0;
    let lastErr = '';
    for (const e of g.entries) {
      try {
        const vals = await this.withRetries(g.slave.cfg.unit, (cl) => this.read(cl, e));
        vals.forEach((v, i) => {
          const name = e.count > 1 ? `${e.name}.${i}` : e.name;
          values[name] = v;
          if (e.unit) units[name] = e.unit;
        });
        ok++;
      } catch (err) {
        failed++;
        lastErr = (err as Error).message;
        if (!this.client) return; // the port went away mid-poll: lost() reported it
      }
    }
    g.slave.polls++;
    if (ok > 0) {
      this.setSlave(g.slave, true);
      this.ctx.emit([{ deviceId: g.slave.deviceId, values, units, quality: failed ? 'uncertain' : 'good' }]);
    } else {
      g.slave.failures++;
      g.slave.lastError = lastErr;
      if (g.slave.failures >= this.c.offline_after) this.setSlave(g.slave, false, `no answer: ${lastErr}`);
    }
  }

  private setSlave(s: SlaveState, online: boolean, reason?: string): void {
    if (online) {
      s.failures = 0;
      s.lastError = null;
    }
    if (s.online === online) return;
    s.online = online;
    this.ctx.setConnected(online, reason, s.deviceId);
  }

  private async read(cl: Client, e: PollEntry): Promise<ReadingValue[]> {
    if (e.function === 'coil' || e.function === 'discrete') {
      const r =
        e.function === 'coil'
          ? await cl.readCoils(e.address, e.count)
          : await cl.readDiscreteInputs(e.address, e.count);
      return r.data.slice(0, e.count);
    }
    const type = e.type as RegisterType;
    const n = registersPer(type) * e.count;
    const r =
      e.function === 'holding'
        ? await cl.readHoldingRegisters(e.address, n)
        : await cl.readInputRegisters(e.address, n);
    return decodeRegisters(r.data, type, e.count, e.word_order, e.byte_order).map((v) => v * e.scale + e.offset);
  }

  /** One request to one slave with the configured retries; counts every failed attempt. */
  private async withRetries<T>(unit: number, fn: (cl: Client) => Promise<T>): Promise<T> {
    const slave = this.slaves.find((s) => s.cfg.unit === unit)!;
    for (let attempt = 0; ; attempt++) {
      const cl = this.client;
      if (!cl || this.stopped) throw new Error('port not open');
      cl.setID(unit);
      try {
        return await fn(cl);
      } catch (err) {
        const { kind, retry } = classify(err);
        this.ctx.error(kind, { deviceId: slave.deviceId, detail: (err as Error).message });
        if (!retry || attempt >= this.c.retries) throw err;
      }
    }
  }
}
