import { readFileSync } from 'node:fs';

/** section → key → every value given (in order; an empty assignment resets the list). */
export type Unit = Map<string, Map<string, string[]>>;

export function readUnit(path: string): Unit {
  const out: Unit = new Map();
  let section = '';
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = head[1]!;
      if (!out.has(section)) out.set(section, new Map());
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const keys = out.get(section)!;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (value === '') keys.set(key, []);
    else keys.set(key, [...(keys.get(key) ?? []), value]);
  }
  return out;
}

/** The [Service] settings of a unit file, each key with every value it was given (in order). */
export function readServiceSection(path: string): Map<string, string[]> {
  return readUnit(path).get('Service') ?? new Map();
}

/** How the main process ended: an exit status, or the signal that killed it. */
export type Ended = { code: number } | { signal: string };

/** Exit-status lists (SuccessExitStatus=, RestartForceExitStatus=...): numbers and signal names. */
function statusSet(unit: Map<string, string[]>, key: string): Set<string> {
  return new Set((unit.get(key) ?? []).flatMap((v) => v.split(/\s+/)).map((v) => v.replace(/^SIG/, '')));
}

function inSet(set: Set<string>, ended: Ended): boolean {
  return 'code' in ended ? set.has(String(ended.code)) : set.has(ended.signal.replace(/^SIG/, ''));
}

/**
 * Whether systemd would start the service again after its main process ended, transcribed from
 * systemd 252 src/core/service.c: the service result is "success" for exit 0, a status listed in
 * SuccessExitStatus=, or SIGHUP/SIGINT/SIGTERM/SIGPIPE (service_sigchld_event, "clean" exits);
 * then service_shall_restart(): never after a manual stop (systemctl stop/restart), never for
 * RestartPreventExitStatus=, always for RestartForceExitStatus=, else by Restart=
 * (systemd.service(5), table "Exit causes and the effect of the Restart= settings").
 */
export function systemdRestarts(unit: Map<string, string[]>, ended: Ended, manualStop = false): boolean {
  if (manualStop) return false;
  const clean =
    ('code' in ended && ended.code === 0) ||
    ('signal' in ended && ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE'].includes(ended.signal)) ||
    inSet(statusSet(unit, 'SuccessExitStatus'), ended);
  if (inSet(statusSet(unit, 'RestartPreventExitStatus'), ended)) return false;
  if (inSet(statusSet(unit, 'RestartForceExitStatus'), ended)) return true;
  const restart = unit.get('Restart')?.at(-1) ?? 'no';
  switch (restart) {
    case 'always':
      return true;
    case 'on-success':
      return clean;
    case 'on-failure':
      return !clean;
    case 'on-abnormal':
      return 'signal' in ended && !clean;
    case 'on-abort':
      return 'signal' in ended && !clean;
    default:
      return false;
  }
}

/**
 * The environment systemd gives the service from the unit: `Environment=` assignments and the
 * `EnvironmentFile=` files (read from below `root`; a leading "-" makes a missing file fine),
 * parsed as systemd.exec(5) says: NAME=value lines, "#" and ";" comments, one level of quotes.
 */
export function unitEnvironment(unit: Map<string, string[]>, root: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of unit.get('Environment') ?? []) {
    for (const m of v.matchAll(/(?:"([^"]*)"|(\S+))/g)) {
      const assign = m[1] ?? m[2]!;
      const eq = assign.indexOf('=');
      if (eq > 0) env[assign.slice(0, eq)] = assign.slice(eq + 1);
    }
  }
  for (const v of unit.get('EnvironmentFile') ?? []) {
    const optional = v.startsWith('-');
    const path = `${root}${optional ? v.slice(1) : v}`;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (optional) continue;
      throw err;
    }
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
      const eq = line.indexOf('=');
      if (eq <= 0) continue;
      let value = line.slice(eq + 1).trim();
      const q = /^"(.*)"$|^'(.*)'$/.exec(value);
      if (q) value = q[1] ?? q[2]!;
      env[line.slice(0, eq).trim()] = value;
    }
  }
  return env;
}
