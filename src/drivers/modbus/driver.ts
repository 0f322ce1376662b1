import { lazyRequire } from '../../lifecycle/lazy.js';
import type { ModbusRTU as ModbusRTUClass } from 'modbus-serial/ModbusRTU.js';
import { GatewayError } from '../../errors.js';
import type { ReadingValue } from '../../pipeline/reading.js';
import { backoffDelay } from '../backoff.js';
import { serialOpenOptions } from '../serial/port.js';
import type {
  CommandOptions,
  CommandResult,
  Driver,
  DriverContext,
  DriverDetail,
  DriverErrorKind,
  DriverType,
} from '../types.js';
import { Bus } from './bus.js';
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
  /** Worst-case time from the slave going silent to it being reported offline (docs/drivers.md). */
  offlineWithinMs: number;
}

interface PollGroup {
  slave: SlaveState;
  intervalMs: number;
  entries: PollEntry[];
  /** A poll of this group is running (a tick never queues a second one). */
  running: boolean;
  /** Index of the entry a poll starts with: the one after the last unanswered request. */
  probe: number;
  timer: NodeJS.Timeout | undefined;
}

/** A request that was not put on the bus; a write refused this way never reaches the slave. */
class NotSent extends Error {}

/**
 * Margin between the last moment a write may start (its answer timeout included) and the
 * command deadline, so the driver's own answer always comes before the caller gives up.
 */
const DEADLINE_MARGIN_MS = 100;

/** Maps a modbus-serial error to our error kind and whether retrying can help. */
function classify(err: unknown): { kind: DriverErrorKind; retry: boolean } {
  const e = err as { message?: string; errno?: string; modbusCode?: number };
  if (e.modbusCode !== undefined) return { kind: 'exception', retry: false };
  if (e.errno === 'ETIMEDOUT' || /timed out/i.test(e.message ?? '')) return { kind: 'timeout', retry: true };
  if (/CRC|length|Unexpected data|Data length/i.test(e.message ?? '')) return { kind: 'crc', retry: true };
  return { kind: 'io', retry: false };
}

/**
 * Worst case from a slave going silent to it being reported offline, bus time of other slaves
 * aside. A poll stops at the first unanswered request (poll()), so it costs at most F =
 * (retries + 1) × timeout_ms beyond what was answered; polls of a group start every interval I
 * (or when the previous one ends, if later). The poll running when the slave dies ends within F;
 * each of the offline_after failed polls after it starts at most max(I, F) after the previous one.
 */
export function offlineBound(c: ModbusRtuConfig, slave: SlaveConfig): number {
  const f = (c.retries + 1) * c.timeout_ms;
  const i = Math.min(...slave.poll.map((p) => p.interval_ms));
  return c.offline_after * Math.max(i, f) + f;
}

/** Why a write that went on the bus failed, for the command result. */
function failure(err: unknown): string {
  const msg = (err as Error).message;
  if (classify(err).kind === 'exception') return `refused by the slave (${msg})`;
  // No valid answer: the request went out, so the slave may have applied it; it is not sent again.
  return `no valid answer (${msg}); the slave may or may not have applied it, it is not sent again`;
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
  private readonly bus = new Bus();

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
      offlineWithinMs: offlineBound(c, cfg),
    }));
    for (const slave of this.slaves) {
      const byInterval = new Map<number, PollEntry[]>();
      for (const p of slave.cfg.poll) {
        let l = byInterval.get(p.interval_ms);
        if (!l) byInterval.set(p.interval_ms, (l = []));
        l.push(p);
      }
      for (const [intervalMs, entries] of byInterval)
        this.groups.push({ slave, intervalMs, entries, running: false, probe: 0, timer: undefined });
    }
  }

  devices(): readonly string[] {
    return [this.c.id, ...this.slaves.map((s) => s.deviceId)];
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const g of this.groups) {
      clearTimeout(g.timer);
      g.timer = undefined;
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    await this.closeClient();
  }

  /** Per-slave health, served by /mgmt/devices/{slave device} as `driver` (docs/drivers.md). */
  detail(): DriverDetail {
    return {
      devices: Object.fromEntries(
        this.slaves.map((s) => [
          s.deviceId,
          {
            unit: s.cfg.unit,
            online: s.online ?? false,
            failures: s.failures,
            polls: s.polls,
            lastError: s.lastError,
            offlineWithinMs: s.offlineWithinMs,
          },
        ]),
      ),
    };
  }

  /**
   * Writes go ahead of waiting polls, one request each, and each write is put on the bus only
   * if its answer can arrive before `opts.deadline` and the caller has not given up
   * (`opts.signal`). So once a result says a write failed, that write is never sent afterwards:
   * it either went out before the result (no answer: the slave may or may not have applied it)
   * or never. Later writes of the same command are not sent after one fails.
   */
  async command(deviceId: string, payload: unknown, opts?: CommandOptions): Promise<CommandResult> {
    const plan = planWrites(this.c, deviceId, payload);
    if (!plan.ok) return { ok: false, error: plan.error };
    const cmd = opts ?? { signal: new AbortController().signal, deadline: performance.now() + 10000 };
    const slave = this.slaves.find((s) => s.deviceId === deviceId)!;
    const done: string[] = [];
    for (const [i, w] of plan.writes.entries()) {
      try {
        await this.request(slave, (cl) => this.write(cl, w), cmd);
        done.push(w.name);
      } catch (err) {
        const notSent = plan.writes.slice(i + 1).map((x) => x.name);
        const sent = !(err instanceof NotSent);
        if (sent) this.ctx.log.warn({ device: deviceId, name: w.name, err }, 'modbus write failed');
        return {
          ok: false,
          error: `${w.name}: ${sent ? failure(err) : `not sent: ${(err as Error).message}`}`,
          detail: sent
            ? { written: done, failed: w.name, not_sent: notSent }
            : { written: done, not_sent: [w.name, ...notSent] },
        };
      }
    }
    this.ctx.log.info({ device: deviceId, written: done }, 'modbus write done');
    // Read back soon so the new value shows in the readings.
    for (const g of this.groups) if (g.slave === slave) this.schedule(g);
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

  /**
   * Runs a poll of the group now unless one is running, then the next one `intervalMs` after this
   * one started (or at once if it took longer): no backlog on a slow bus, no drift.
   */
  private schedule(g: PollGroup): void {
    if (g.running || !this.client || this.stopped) return;
    clearTimeout(g.timer);
    g.timer = undefined;
    g.running = true;
    const started = performance.now();
    void this.poll(g).finally(() => {
      g.running = false;
      if (this.stopped || !this.client) return; // connect() schedules every group again
      const wait = Math.max(0, started + g.intervalMs - performance.now());
      g.timer = setTimeout(() => this.schedule(g), wait);
    });
  }

  /**
   * One read per entry. Fail fast: the poll stops at the first request without a valid answer
   * (timeout, CRC) after its retries, so a poll costs at most one (retries + 1) × timeout_ms
   * whatever the map size, and a slave that dies is not asked for the rest of its map. The next
   * poll starts with the entry after that one: a register a slave never answers costs one
   * timeout per poll and the others are still read (quality uncertain). An exception response is
   * an answer (the slave is there): the poll goes on.
   */
  private async poll(g: PollGroup): Promise<void> {
    const values: Record<string, ReadingValue> = {};
    const units: Record<string, string> = {};
    let ok = 0;
    let failed = 0;
    let lastErr = '';
    const n = g.entries.length;
    for (let k = 0; k < n; k++) {
      const idx = (g.probe + k) % n;
      const e = g.entries[idx]!;
      try {
        const vals = await this.request(g.slave, (cl) => this.read(cl, e));
        vals.forEach((v, i) => {
          const name = e.count > 1 ? `${e.name}.${i}` : e.name;
          values[name] = v;
          if (e.unit) units[name] = e.unit;
        });
        ok++;
      } catch (err) {
        failed++;
        lastErr = (err as Error).message;
        if (!this.client || this.stopped) return; // the port went away mid-poll: lost() reported it
        if (classify(err).kind !== 'exception') {
          g.probe = (idx + 1) % n;
          break;
        }
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

  /**
   * One request to one slave with the configured retries, each attempt a job on the bus; counts
   * every failed attempt. With `cmd` (a write) the job is urgent and checks, at the moment it
   * would go on the wire, that the caller still waits and that the answer can arrive in time;
   * otherwise it throws NotSent and nothing is written.
   */
  private async request<T>(slave: SlaveState, fn: (cl: Client) => Promise<T>, cmd?: CommandOptions): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.bus.run(() => {
          const cl = this.client;
          if (!cl || this.stopped) throw new NotSent('port not open');
          if (cmd?.signal.aborted) throw new NotSent('the command was given up (timed out)');
          if (cmd && performance.now() + this.c.timeout_ms + DEADLINE_MARGIN_MS > cmd.deadline)
            throw new NotSent(
              `no time left for an answer (timeout_ms ${this.c.timeout_ms}) before the command deadline`,
            );
          cl.setID(slave.cfg.unit);
          return fn(cl);
        }, cmd !== undefined);
      } catch (err) {
        if (err instanceof NotSent) throw err;
        const { kind, retry } = classify(err);
        this.ctx.error(kind, { deviceId: slave.deviceId, detail: (err as Error).message });
        if (!retry || attempt >= this.c.retries) throw err;
      }
    }
  }
}
