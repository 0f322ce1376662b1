import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** dist/test/helpers → dist/src/main.js */
export const MAIN = new URL('../../src/main.js', import.meta.url).pathname;

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

/** A temp directory removed by `cleanup()`; `file(name, text)` writes inside it. */
export function tempDir(prefix = 'egw-'): { dir: string; file(name: string, text: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    file(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * The built gateway as a child process, as systemd would run it. Collects its JSON log lines;
 * `waitForLog` resolves on the first line matching a predicate (or rejects after a bound).
 */
export class GatewayProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  private readonly waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    // Benchmarks can run the gateway with the production V8 flags (see the systemd unit).
    const nodeFlags = (process.env['EGW_GATEWAY_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
    // Benchmarks compare with a reference build: EGW_GATEWAY_MAIN points at its dist/src/main.js.
    const main = process.env['EGW_GATEWAY_MAIN'] || MAIN;
    this.child = spawn(process.execPath, [...nodeFlags, main, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: 'raw', msg: line };
      }
      this.logs.push(parsed);
      for (const w of [...this.waiters]) {
        if (w.pred(parsed)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
  }

  static start(configPath: string, env: NodeJS.ProcessEnv = {}): GatewayProcess {
    return new GatewayProcess(['--config', configPath], env);
  }

  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 15000): Promise<LogLine> {
    const hit = this.logs.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${this.stderr.join('\n')}`));
      }, timeoutMs);
      const onExit = () => {
        clearTimeout(timer);
        reject(new Error(`gateway exited (${this.child.exitCode}); stderr: ${this.stderr.join('\n')}`));
      };
      this.child.once('exit', onExit);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          this.child.off('exit', onExit);
          resolve(l);
        },
      });
    });
  }

  ready(timeoutMs = 15000): Promise<LogLine> {
    return this.waitForLog((l) => l.msg.startsWith('gateway ready'), timeoutMs);
  }

  /** Sends a signal and resolves with the exit code (or the signal name) — bounded. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15000): Promise<number | string> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      return this.child.exitCode ?? this.child.signalCode!;
    const exited = once(this.child, 'exit') as Promise<[number | null, string | null]>;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const [code, sig] = await exited;
    clearTimeout(timer);
    return code ?? sig!;
  }
}

/**
 * A config with every network service on an ephemeral port or off, so process tests can run side
 * by side. `extra` is appended verbatim (YAML) for the sections a test wants.
 */
export function isolatedConfig(dataDir: string, extra = ''): string {
  return [
    'version: 1',
    'gateway:',
    `  data_dir: ${dataDir}`,
    '  log_level: info',
    '  shutdown_timeout_ms: 5000',
    'metrics:',
    '  port: 0',
    'broker:',
    '  enabled: false',
    'coap:',
    '  enabled: false',
    extra,
  ].join('\n');
}
