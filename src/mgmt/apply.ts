import { isDeepStrictEqual } from 'node:util';

/**
 * Settings that take effect without a restart, and how. Everything else is persisted and listed
 * as "restart required" (a listener's port, the data dir, drivers...).
 */
export const LIVE_KEYS = new Set([
  'gateway.log_level',
  'mgmt.read_token',
  'mgmt.admin_token',
  'mgmt.auth_failures_per_min',
  'mgmt.allow_sources',
  'mgmt.status_min_interval_ms',
]);

/** Dotted paths of leaves (or whole arrays) that differ between two configs. */
export function changedPaths(a: unknown, b: unknown, prefix = ''): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(a) || !isObj(b)) return [prefix || '(root)'];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) out.push(...changedPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  return out;
}

export function splitLive(paths: readonly string[]): { live: string[]; restart: string[] } {
  const live: string[] = [];
  const restart: string[] = [];
  for (const p of paths) (LIVE_KEYS.has(p) ? live : restart).push(p);
  return { live, restart };
}

/** Paths whose value is the literal redaction marker: a GET result PUT back without its secrets. */
export function redactedPaths(v: unknown, marker = '[redacted]', prefix = ''): string[] {
  if (v === marker) return [prefix];
  if (Array.isArray(v)) return v.flatMap((x, i) => redactedPaths(x, marker, `${prefix}[${i}]`));
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => redactedPaths(x, marker, prefix ? `${prefix}.${k}` : k));
  }
  return [];
}
