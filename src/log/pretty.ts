import type { Writable } from 'node:stream';

const SKIP = new Set(['level', 'time', 'msg', 'svc', 'mod']);

/**
 * One JSON log line → `07:32:06.116 INFO  [coap] CoAP listening host=:: port=5683`.
 * For people at a terminal; journald and tools get the JSON unchanged. Unparsable input is
 * passed through as it is.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof o['time'] === 'string' ? o['time'].slice(11, 23) : '';
  const level = String(o['level'] ?? '')
    .toUpperCase()
    .padEnd(5);
  const mod = o['mod'] ? `[${String(o['mod'])}] ` : '';
  const rest = Object.entries(o)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : k === 'err' ? errorText(v) : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level} ${mod}${String(o['msg'] ?? '')}${rest ? ` ${rest}` : ''}`;
}

/** At a terminal an error's message says enough; the JSON log keeps the stack. */
function errorText(v: unknown): string {
  const m = (v as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? JSON.stringify(m) : JSON.stringify(v);
}

/** A pino destination that writes pretty lines to `out` (a TTY). */
export function prettyDestination(out: Writable): { write(chunk: string): void } {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) out.write(`${prettyLine(line)}\n`);
    },
  };
}
