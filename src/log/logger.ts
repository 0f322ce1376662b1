import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Human-readable single lines instead of JSON; on by default when stdout is a TTY. */
  pretty?: boolean;
}

/** Keys whose values never reach a log line (management tokens, passwords, keys). */
const REDACT = [
  'token',
  'password',
  'secret',
  '*.token',
  '*.password',
  '*.secret',
  '*.*.password',
  'req.query.token',
];

/**
 * JSON lines to stdout for journald. On a TTY pino's transport-free formatter keeps startup light:
 * pino-pretty is deliberately not a dependency; `| npx pino-pretty` works for those who want colour.
 */
export function createLogger(opts: LoggerOptions): Logger {
  return pino({
    level: opts.level,
    base: { svc: 'edge-gateway' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/**
 * Logs a state change once: repeated reports of the same state are swallowed, so a retry loop
 * does not flood the journal (STYLE: state changes are logged once, not once per retry).
 */
export class StateLog<S extends string> {
  private current: S | undefined;
  constructor(
    private readonly log: Logger,
    private readonly what: string,
  ) {}
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
