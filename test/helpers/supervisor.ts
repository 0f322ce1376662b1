import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { LogLine } from './gateway-process.js';
import { readUnit, systemdRestarts, unitEnvironment, type Ended, type Unit } from './systemd-unit.js';

/**
 * A test-only supervisor that runs the gateway the way systemd runs `systemd/edge-gateway.service`,
 * reading the shipped unit files (not a copy of their values) and applying the semantics the OTA
 * rollback relies on (systemd 252, systemd.service(5), systemd.unit(5), sd_notify(3)):
 *  - ExecStartPre= lines run in order before ExecStart=; one failing fails the start ('-' ignores);
 *  - Type=notify: the start succeeds on READY=1 on NOTIFY_SOCKET (a unix datagram socket served by
 *    test/fixtures/notify_listener.py, which closes the fd of systemd-notify's BARRIER=1); no READY
 *    within TimeoutStartSec= (counted from the first ExecStartPre) → SIGTERM, SIGKILL after
 *    TimeoutStopSec=, result "timeout";
 *  - WatchdogSec=: WATCHDOG_USEC is passed; no WATCHDOG=1 for that long after READY → SIGABRT
 *    (WatchdogSignal= default), SIGKILL after TimeoutStopSec=, result "watchdog";
 *  - Restart=, RestartForceExitStatus=, SuccessExitStatus= through `systemdRestarts` (the model in
 *    systemd-unit.ts, checked against systemd's table in systemd.test.ts); timeout and watchdog
 *    results restart under on-failure/on-abnormal/always; RestartSec= between;
 *  - StartLimitIntervalSec=/StartLimitBurst=: a start beyond the burst within the interval fails the
 *    unit (start-limit-hit); a unit that fails and is not restarted starts its OnFailure= units;
 *  - an OnFailure= unit (Type=oneshot) runs its ExecCondition= (1–254: skipped), ExecStart= then
 *    ExecStartPost= lines; `systemctl
 *    reset-failed U` and `systemctl --no-block start U` for the supervised unit are done here.
 * Not modelled: User=, sandboxing, cgroups (only the main process is killed), WATCHDOG_PID, the
 * watchdog before READY. Every duration is multiplied by `scale` so a test runs in seconds
 * (0.1: TimeoutStartSec=60s → 6 s, WatchdogSec=30s → 3 s, StartLimitIntervalSec=600 → 60 s).
 */

const last = (u: Unit, section: string, key: string): string | undefined => u.get(section)?.get(key)?.at(-1);

/** systemd.time(7) time spans: "30s", "2min", "1h 30s", "500ms", a bare number = seconds. In ms. */
export function parseSpan(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Number(v) * 1000;
  const unit: Record<string, number> = { us: 0.001, ms: 1, s: 1000, sec: 1000, m: 60000, min: 60000, h: 3600000 };
  let ms = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)\s*(us|ms|sec|s|min|m|h)/g)) ms += Number(m[1]) * unit[m[2]!]!;
  if (ms === 0 && !/^0/.test(v.trim())) throw new RangeError(`not a time span: ${v}`);
  return ms;
}

export interface SupervisorOptions {
  /** Path of the supervised unit (systemd/edge-gateway.service). */
  unit: string;
  /** Units by name, for OnFailure= (edge-gateway-rollback.service → its path). */
  units: Record<string, string>;
  /** Install paths → test paths, replaced in every Exec line and WorkingDirectory=. */
  paths: Record<string, string>;
  /** Multiplies every duration of the unit. */
  scale: number;
  /** The datagram listener (test/fixtures/notify_listener.py) and the socket path it binds. */
  listener: string;
  socket: string;
  /** Added to the service environment (wins over the unit's Environment=). */
  env?: Record<string, string>;
}

export interface SupEvent {
  t: number;
  ev:
    | 'start'
    | 'pre'
    | 'exec'
    | 'ready'
    | 'start-timeout'
    | 'watchdog-timeout'
    | 'exit'
    | 'restart'
    | 'start-limit-hit'
    | 'failed'
    | 'on-failure'
    | 'condition-skip'
    | 'reset-failed'
    | 'inactive';
  detail?: string;
  pid?: number;
}

/** One run of the main process. */
export class Run {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  ready = false;
  lastPing = 0;
  result: 'success' | 'exit-code' | 'signal' | 'timeout' | 'watchdog' | null = null;
  ended: Ended | null = null;
  readonly exited: Promise<Ended>;
  constructor(
    readonly child: ChildProcess,
    readonly release: string,
  ) {
    this.exited = (once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>).then(([code, sig]) => {
      this.ended = code !== null ? { code } : { signal: sig ?? 'SIGKILL' };
      return this.ended;
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ level: 'raw', msg: line });
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => this.stderr.push(line));
  }
  get pid(): number {
    return this.child.pid!;
  }
  log(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.logs.find(pred);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Supervisor {
  readonly events: SupEvent[] = [];
  readonly runs: Run[] = [];
  /** Service environment additions; a test may change them between starts (e.g. drop a fault point). */
  env: Record<string, string>;
  private readonly unit: Unit;
  private readonly service: Map<string, string[]>;
  private listener: ChildProcess | null = null;
  private starts: number[] = [];
  private stopping = false;
  private job: Promise<void> = Promise.resolve();
  private readonly t0 = performance.now();

  constructor(private readonly opts: SupervisorOptions) {
    this.unit = readUnit(opts.unit);
    this.service = this.unit.get('Service') ?? new Map();
    this.env = { ...(opts.env ?? {}) };
  }

  private span(section: string, key: string, dflt: string): number {
    return parseSpan(last(this.unit, section, key) ?? dflt) * this.opts.scale;
  }

  get timeoutStartMs(): number {
    return this.span('Service', 'TimeoutStartSec', '90s');
  }
  get timeoutStopMs(): number {
    return this.span('Service', 'TimeoutStopSec', '90s');
  }
  get watchdogMs(): number {
    return this.span('Service', 'WatchdogSec', '0');
  }

  private note(ev: SupEvent['ev'], detail?: string, pid?: number): void {
    this.events.push({
      t: performance.now() - this.t0,
      ev,
      ...(detail !== undefined ? { detail } : {}),
      ...(pid !== undefined ? { pid } : {}),
    });
  }

  /** Replaces the install paths in a command line or path. */
  private subst(s: string): string {
    const keys = Object.keys(this.opts.paths).sort((a, b) => b.length - a.length);
    if (keys.length === 0) return s;
    const re = new RegExp(keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
    return s.replace(re, (m) => this.opts.paths[m]!);
  }

  /** Starts the notify listener, then the unit (like `systemctl start`). */
  async start(): Promise<void> {
    const listener = spawn('python3', [this.opts.listener, this.opts.socket, '600'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('notify listener did not start')), 10000);
      createInterface({ input: listener.stdout! }).on('line', (line) => {
        const n = JSON.parse(line) as { listening?: string; msg?: Record<string, string> };
        if (n.listening) {
          clearTimeout(timer);
          resolve();
        }
        if (n.msg) this.onNotify(n.msg);
      });
    });
    this.job = this.startJob();
  }

  /** The run currently alive (or the last one). */
  get current(): Run | undefined {
    return this.runs.at(-1);
  }

  private onNotify(msg: Record<string, string>): void {
    // NotifyAccess=all: any process of the service may send; MAINPID= names the main process.
    const pid = Number(msg['MAINPID']);
    const run = this.runs.find((r) => r.pid === pid && r.ended === null) ?? this.runs.find((r) => r.ended === null);
    if (!run) return;
    if (msg['READY'] === '1' && !run.ready) {
      run.ready = true;
      run.lastPing = performance.now();
      this.note('ready', run.release, run.pid);
    }
    if (msg['WATCHDOG'] === '1') run.lastPing = performance.now();
  }

  private serviceEnv(): Record<string, string> {
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      ...unitEnvironment(this.service, '/nonexistent-root'),
      NOTIFY_SOCKET: this.opts.socket,
    };
    if (this.watchdogMs > 0) env['WATCHDOG_USEC'] = String(Math.round(this.watchdogMs * 1000));
    return { ...env, ...this.env };
  }

  /** Runs one Exec line to completion; resolves with its exit code (a '-' prefix makes failure fine). */
  private async execLine(line: string, timeoutMs: number): Promise<number> {
    let cmd = this.subst(line);
    let ignore = false;
    while (/^[-+@!:]/.test(cmd)) {
      if (cmd[0] === '-') ignore = true;
      cmd = cmd.slice(1);
    }
    const argv = cmd.split(/\s+/).filter(Boolean);
    if (argv[0] === '/bin/systemctl' || argv[0] === 'systemctl') return this.systemctl(argv.slice(1));
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: this.serviceEnv() });
    const err: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => err.push(l));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    this.note(
      'pre',
      `${argv.map((a) => a.split('/').at(-1)).join(' ')} → ${code}${err.length ? `: ${err.join(' | ')}` : ''}`,
    );
    return ignore ? 0 : (code ?? 1);
  }

  /** The two systemctl calls the rollback unit makes, applied to the supervised unit. */
  private systemctl(args: string[]): number {
    const verb = args.find((a) => !a.startsWith('-'));
    if (verb === 'reset-failed') {
      this.starts = [];
      this.note('reset-failed');
      return 0;
    }
    if (verb === 'start') {
      this.job = this.job.then(() => this.startJob());
      return 0;
    }
    throw new Error(`supervisor: systemctl ${args.join(' ')} not modelled`);
  }

  private async startJob(): Promise<void> {
    if (this.stopping) return;
    // unit_test_start_limit(): more than StartLimitBurst starts within StartLimitIntervalSec fail.
    const interval = this.span('Unit', 'StartLimitIntervalSec', '10s');
    const burst = Number(last(this.unit, 'Unit', 'StartLimitBurst') ?? 5);
    const now = performance.now();
    this.starts = this.starts.filter((t) => now - t < interval);
    if (this.starts.length >= burst) {
      this.note('start-limit-hit', `${this.starts.length} starts within ${interval} ms`);
      await this.enterFailed('start-limit-hit');
      return;
    }
    this.starts.push(now);
    this.note('start', String(this.starts.length));
    const deadline = performance.now() + this.timeoutStartMs;
    for (const line of this.service.get('ExecStartPre') ?? []) {
      const code = await this.execLine(line, this.timeoutStartMs);
      if (code !== 0) return this.afterEnd({ code }, 'exit-code');
    }
    const argv = this.subst(last(this.unit, 'Service', 'ExecStart') ?? '')
      .split(/\s+/)
      .filter(Boolean);
    const cwd = this.subst(last(this.unit, 'Service', 'WorkingDirectory') ?? '/');
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env: this.serviceEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let release = '';
    try {
      release = readFileSync(`${cwd}/package.json`, 'utf8');
      release = (JSON.parse(release) as { version: string }).version;
    } catch {
      release = '?';
    }
    const run = new Run(child, release);
    this.runs.push(run);
    this.note('exec', release, run.pid);
    // Wait for READY=1, the start timeout, or an exit.
    let killedFor: Run['result'] = null;
    const exited = run.exited.then(() => 'exit' as const);
    while (!run.ready && run.ended === null) {
      const left = deadline - performance.now();
      if (left <= 0) {
        this.note('start-timeout', release, run.pid);
        killedFor = 'timeout';
        await this.killRun(run, 'SIGTERM');
        break;
      }
      await Promise.race([exited, sleep(Math.min(left, 50))]);
    }
    // Running: the watchdog, until it exits.
    while (run.ended === null && killedFor === null) {
      if (run.ready && this.watchdogMs > 0 && performance.now() - run.lastPing > this.watchdogMs) {
        this.note('watchdog-timeout', release, run.pid);
        killedFor = 'watchdog';
        await this.killRun(run, 'SIGABRT');
        break;
      }
      await Promise.race([exited, sleep(50)]);
    }
    const ended = await run.exited;
    this.note('exit', JSON.stringify(ended), run.pid);
    return this.afterEnd(ended, killedFor);
  }

  /** Sends `signal`, then SIGKILL after TimeoutStopSec= (the final-kill of systemd). */
  private async killRun(run: Run, signal: NodeJS.Signals): Promise<void> {
    run.child.kill(signal);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), this.timeoutStopMs);
    await run.exited;
    clearTimeout(timer);
  }

  private async afterEnd(ended: Ended, result: Run['result']): Promise<void> {
    const run = this.current;
    if (run) run.result = result ?? ('code' in ended ? (ended.code === 0 ? 'success' : 'exit-code') : 'signal');
    if (this.stopping) {
      this.note('inactive');
      return;
    }
    const restartSetting = last(this.unit, 'Service', 'Restart') ?? 'no';
    const success = new Set((this.service.get('SuccessExitStatus') ?? []).flatMap((v) => v.split(/\s+/)));
    const clean =
      result === null &&
      (('code' in ended && (ended.code === 0 || success.has(String(ended.code)))) ||
        ('signal' in ended && ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE'].includes(ended.signal)));
    const restart =
      result === 'timeout' || result === 'watchdog'
        ? ['on-failure', 'on-abnormal', 'always'].includes(restartSetting) ||
          (result === 'watchdog' && restartSetting === 'on-watchdog')
        : systemdRestarts(this.service, ended);
    if (restart) {
      this.note('restart', result ?? JSON.stringify(ended));
      await sleep(this.span('Service', 'RestartSec', '100ms'));
      return this.startJob();
    }
    if (!clean) return this.enterFailed(result ?? JSON.stringify(ended));
    this.note('inactive');
  }

  private async enterFailed(why: string): Promise<void> {
    this.note('failed', why);
    for (const name of (this.unit.get('Unit')?.get('OnFailure') ?? []).flatMap((v) => v.split(/\s+/))) {
      const path = this.opts.units[name];
      if (!path) throw new Error(`supervisor: OnFailure=${name} has no unit file`);
      this.note('on-failure', name);
      const u = readUnit(path);
      const svc = u.get('Service') ?? new Map<string, string[]>();
      // ExecCondition= (systemd ≥ 243): exit 1–254 skips the unit (not a failure), 0 continues.
      let skip = false;
      for (const line of svc.get('ExecCondition') ?? []) {
        const code = await this.execLine(line, this.timeoutStartMs);
        if (code !== 0) {
          skip = true;
          break;
        }
      }
      if (skip) {
        this.note('condition-skip', name);
        continue;
      }
      for (const line of [...(svc.get('ExecStart') ?? []), ...(svc.get('ExecStartPost') ?? [])]) {
        const code = await this.execLine(line, this.timeoutStartMs);
        if (code !== 0) break;
      }
    }
  }

  /** Like `kill -9 MAINPID` from outside: the unit's Restart= then applies. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    const run = this.current;
    if (run && run.ended === null) run.child.kill(signal);
  }

  async waitFor<T>(what: string, fn: () => T | undefined | false | null, timeoutMs: number): Promise<T> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (performance.now() > end)
        throw new Error(
          `supervisor: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}; stderr: ${this.current?.stderr.join('\n') ?? ''}`,
        );
      await sleep(50);
    }
  }

  /** A run of `version` that sent READY (the n-th such run counting from `after` events). */
  readyRun(version: string, timeoutMs: number, after = 0): Promise<Run> {
    return this.waitFor(
      `READY from ${version}`,
      () => {
        const ev = this.events.slice(after).find((e) => e.ev === 'ready' && e.detail === version);
        return ev ? this.runs.find((r) => r.pid === ev.pid) : undefined;
      },
      timeoutMs,
    );
  }

  /** `systemctl stop`: SIGTERM (KillSignal=), SIGKILL after TimeoutStopSec=, no restart; the listener ends. */
  async stop(): Promise<void> {
    this.stopping = true;
    const run = this.current;
    if (run && run.ended === null) await this.killRun(run, 'SIGTERM');
    await this.job.catch(() => undefined);
    if (this.listener) {
      this.listener.stdin!.end();
      this.listener.kill();
      this.listener = null;
    }
  }
}
