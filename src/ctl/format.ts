/**
 * Human output of `edge-gateway ctl`: wall-clock times as ISO 8601 (UTC) with a rounded age, durations
 * rounded, lists as aligned tables. Pure: values in, text out (`now` injectable). `--json` bypasses it.
 */

/** Keys whose numeric value is wall-clock epoch milliseconds (data only, DESIGN "Clocks"). */
const TIME_KEY = /^(ts|time|at|firstSeen|lastSeen|[a-z]+At)$/;
/** Epoch ms between 2001 and 2286: a board that booted in 1970 reports small numbers, shown raw. */
const isEpochMs = (v: unknown): v is number => typeof v === 'number' && v >= 1e12 && v < 1e13;

/** 42 s, 7 min, 3 h 12 min, 5 d 4 h: two units at most, rounded down. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

/** `2026-11-29T22:40:00Z (3 min ago)`; a time ahead of this machine's clock says "ahead". */
export function formatTime(epochMs: number, now: number): string {
  const iso = new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const d = now - epochMs;
  if (Math.abs(d) < 1000) return `${iso} (now)`;
  return d > 0 ? `${iso} (${formatDuration(d)} ago)` : `${iso} (${formatDuration(-d)} ahead of this clock)`;
}

function scalar(key: string, v: unknown, now: number): string {
  if (TIME_KEY.test(key) && isEpochMs(v)) return formatTime(v, now);
  if (v === null) return '-';
  if (typeof v === 'string') return v === '' ? '""' : v;
  return String(v);
}

/**
 * Indented `key: value` lines (YAML-like, so `grep '^gatewayId:'` works) with times and durations
 * made readable: `uptimeS: 12345` → `uptime: 3 h 25 min`, `*Ms` durations rounded.
 */
export function formatObject(body: unknown, now: number, indent = ''): string {
  if (typeof body !== 'object' || body === null) return `${indent}${scalar('', body, now)}\n`;
  if (Array.isArray(body)) {
    if (body.length === 0) return `${indent}(none)\n`;
    return body
      .map((item) =>
        typeof item === 'object' && item !== null
          ? `${indent}-\n${formatObject(item, now, `${indent}  `)}`
          : `${indent}- ${scalar('', item, now)}\n`,
      )
      .join('');
  }
  let out = '';
  for (const [k, v] of Object.entries(body)) {
    if (k === 'uptimeS' && typeof v === 'number') out += `${indent}uptime: ${formatDuration(v * 1000)}\n`;
    else if (/[a-z]Ms$/.test(k) && typeof v === 'number' && v >= 1000)
      out += `${indent}${k}: ${v} (${formatDuration(v)})\n`;
    else if (typeof v === 'object' && v !== null && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0))
      out += `${indent}${k}:\n${formatObject(v, now, `${indent}  `)}`;
    else if (Array.isArray(v)) out += `${indent}${k}: (none)\n`;
    else if (typeof v === 'object' && v !== null) out += `${indent}${k}: {}\n`;
    else out += `${indent}${k}: ${scalar(k, v, now)}\n`;
  }
  return out;
}

/** Aligned columns; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  if (rows.length === 0) return '(none)\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

interface DeviceRow {
  id?: unknown;
  transport?: unknown;
  online?: unknown;
  reason?: unknown;
  lastSeen?: unknown;
  messagesIn?: unknown;
  errors?: unknown;
}

export function formatDevices(body: unknown, now: number): string {
  const list = ((body as { devices?: unknown }).devices ?? []) as DeviceRow[];
  if (!Array.isArray(list)) return formatObject(body, now);
  return table(
    ['ID', 'TRANSPORT', 'STATE', 'LAST SEEN', 'MESSAGES', 'ERRORS'],
    list.map((d) => [
      String(d.id),
      String(d.transport),
      d.online ? 'online' : `offline${d.reason ? ` (${String(d.reason)})` : ''}`,
      isEpochMs(d.lastSeen) ? formatTime(d.lastSeen, now) : String(d.lastSeen ?? '-'),
      String(d.messagesIn ?? 0),
      String(d.errors ?? 0),
    ]),
  );
}

interface AuditRow {
  ts?: unknown;
  source?: unknown;
  method?: unknown;
  resource?: unknown;
  outcome?: unknown;
  code?: unknown;
  detail?: unknown;
}

export function formatAudit(body: unknown, now: number): string {
  const list = ((body as { entries?: unknown }).entries ?? []) as AuditRow[];
  if (!Array.isArray(list)) return formatObject(body, now);
  return table(
    ['TIME', 'SOURCE', 'REQUEST', 'OUTCOME', 'CODE', 'DETAIL'],
    list.map((e) => [
      isEpochMs(e.ts) ? formatTime(e.ts, now) : String(e.ts),
      String(e.source),
      `${String(e.method)} ${String(e.resource)}`,
      String(e.outcome),
      String(e.code),
      e.detail === null || e.detail === undefined ? '' : String(e.detail).replace(/\s+/g, ' ').slice(0, 80),
    ]),
  );
}

/** One line per reading for `ctl tail`: `TIME  DEVICE  name=value unit ...  [quality]`. */
export function formatReading(body: unknown): string | undefined {
  const r = body as {
    deviceId?: unknown;
    ts?: unknown;
    values?: Record<string, unknown>;
    units?: Record<string, unknown>;
    quality?: unknown;
    pending?: unknown;
  };
  if (typeof r !== 'object' || r === null || typeof r.deviceId !== 'string') return undefined;
  if (r.pending === true) return undefined; // observing a device that has not reported yet
  const values = Object.entries(r.values ?? {})
    .map(([k, v]) => `${k}=${v === null ? 'null' : String(v)}${r.units?.[k] ? ` ${String(r.units[k])}` : ''}`)
    .join(' ');
  const when = isEpochMs(r.ts) ? new Date(r.ts).toISOString() : String(r.ts);
  const quality = r.quality && r.quality !== 'good' ? `  [${String(r.quality)}]` : '';
  return `${when}  ${r.deviceId}  ${values}${quality}\n`;
}
