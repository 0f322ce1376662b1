import { pino, type Logger, type LevelWithSilent } from 'pino';
import { prettyDestination } from './pretty.js';

export type { Logger };

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Human-readable single lines instead of JSON; on by default when stdout is a TTY. */
  pretty?: boolean;
}

/** Keys whose values never reach a log line (management tokens, passwords, keys). */
const REDACT = ['token', 'password', 'secret', '*.token', '*.password', '*.secret', '*.*.password', 'req.query.token'];

/**
 * JSON lines to stdout for journald; one readable line per entry when stdout is a terminal
 * (a small formatter in-process: pino-pretty would add a dependency and a worker thread).
 */
export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level,
    base: { svc: 'edge-gateway' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  return pretty ? pino(options, prettyDestination(process.stdout)) : pino(options);
}

/**
 * Logs a state change once: repeated reports of the same state are swallowed, so a retry loop
 * does not flood the journal (STYLE: state changes are logged once, not once per retry).
 */
export class StateLog<S extends string> {
  private current: S | undefined;
  /**
   * `initial` is the state a thing starts in without anything having happened (the outbox writes
   * fine, the uplink has not connected yet): reaching it first is not logged, so a normal start
   * does not read like a recovery or a failure.
   */
  constructor(
    private readonly log: Logger,
    private readonly what: string,
    initial?: S,
  ) {
    this.current = initial;
  }
  set(state: S, detail?: Record<string, unknown>, level: 'info' | 'warn' | 'error' = 'info'): boolean {
    if (state === this.current) return false;
    const from = this.current;
    this.current = state;
    this.log[level]({ ...detail, from, to: state }, `${this.what} ${state}`);
    return true;
  }
  get state(): S | undefined {
    return this.current;
  }
}
