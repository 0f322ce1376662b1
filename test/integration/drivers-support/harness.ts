import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/load.js';
import { DeviceRegistry } from '../../../src/devices/registry.js';
import { createDriverTypes } from '../../../src/drivers/builtin.js';
import { DriverManager } from '../../../src/drivers/manager.js';
import { Pipeline } from '../../../src/pipeline/pipeline.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { openDatabase, type Db } from '../../../src/store/db.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(fn: () => T | undefined | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Two linked ptys from socat, at `${dir}/${name}-dev` (the driver side) and `${dir}/${name}-peer`. */
export class PtyPair {
  proc: ChildProcess | undefined;
  constructor(
    readonly dev: string,
    readonly peer: string,
  ) {}
  async start(): Promise<void> {
    this.proc = spawn('socat', [`pty,raw,echo=0,link=${this.dev}`, `pty,raw,echo=0,link=${this.peer}`], {
      stdio: 'ignore',
    });
    await waitFor(() => existsSync(this.dev) && existsSync(this.peer), 5000, 'socat ptys');
  }
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }
}

export interface Harness {
  dir: string;
  db: Db;
  devices: DeviceRegistry;
  pipeline: Pipeline;
  metrics: Registry;
  readings: Reading[];
  manager: DriverManager;
  close(): Promise<void>;
}

/** A DriverManager over a real pipeline and a real SQLite device registry, from YAML driver entries. */
export function harness(
  driversYaml: string,
  dir = mkdtempSync(join(tmpdir(), 'egw-drv-')),
  opts: { commandTimeoutMs?: number } = {},
): Harness {
  const config = parseConfig(`version: 1\ndrivers:\n${driversYaml}`);
  const log = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const devices = new DeviceRegistry(db);
  const pipeline = new Pipeline({ log, maxPending: 10000 });
  const readings: Reading[] = [];
  pipeline.addSink({ name: 'test', accept: (rs) => void readings.push(...rs) });
  const metrics = new Registry();
  const manager = new DriverManager({
    config: config.drivers,
    types: createDriverTypes(),
    log,
    pipeline,
    devices,
    metrics,
    ...opts,
  });
  return {
    dir,
    db,
    devices,
    pipeline,
    metrics,
    readings,
    manager,
    async close() {
      await manager.stop();
      devices.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function metricValue(reg: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) =>
    Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val),
  );
  return v ? Number(v.value) : 0;
}
