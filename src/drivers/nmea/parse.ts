import type { Quality, ReadingValue } from '../../pipeline/reading.js';

/**
 * NMEA 0183 (v2.3/v4.1 sentence layouts as published by NMEA and in receiver manuals, e.g.
 * u-blox M8 protocol spec §31.2) for GGA, RMC and VTG. Pure: strings in, values out.
 */
export type NmeaSentence =
  | {
      kind: 'GGA';
      time: string;
      lat: number | null;
      lon: number | null;
      alt: number | null;
      fixQuality: number;
      satellites: number | null;
      hdop: number | null;
    }
  | {
      kind: 'RMC';
      time: string;
      valid: boolean;
      lat: number | null;
      lon: number | null;
      speedKn: number | null;
      course: number | null;
      gpsTime: number | null;
    }
  | { kind: 'VTG'; course: number | null; speedKn: number | null };

export type NmeaResult =
  { ok: true; sentence: NmeaSentence } | { ok: false; reason: 'checksum' | 'format' | 'unsupported'; detail?: string };

const KNOT_MS = 1852 / 3600;

/** XOR of every character between `$` and `*` (NMEA 0183 §5.2.1.3 checksum field). */
export function nmeaChecksum(body: string): number {
  let x = 0;
  for (let i = 0; i < body.length; i++) x ^= body.charCodeAt(i);
  return x;
}

export function parseNmea(line: string): NmeaResult {
  const start = line.indexOf('$');
  if (start < 0) return { ok: false, reason: 'format', detail: 'no $' };
  const star = line.lastIndexOf('*');
  // The checksum is mandatory for RMC and strongly recommended for the others; we require it.
  if (star < start || star + 3 > line.length) return { ok: false, reason: 'format', detail: 'no checksum' };
  const body = line.slice(start + 1, star);
  const sum = Number.parseInt(line.slice(star + 1, star + 3), 16);
  if (Number.isNaN(sum)) return { ok: false, reason: 'format', detail: 'bad checksum field' };
  if (sum !== nmeaChecksum(body)) return { ok: false, reason: 'checksum' };
  const f = body.split(',');
  const id = f[0]!;
  // Proprietary sentences (NMEA 0183 §5.3.3): "P", a 3-character manufacturer mnemonic, then
  // whatever the manufacturer defines ($PMTK001, $PSTMVER, $PGRMC, $PUBX). Valid input, not ours
  // to decode; checked first, so $PGRMC (Garmin) is never read as talker "PG" + RMC.
  if (PROPRIETARY.test(id)) return { ok: false, reason: 'unsupported', detail: 'proprietary' };
  // Approved sentences: 2-character talker (GP, GN, GL, GA, BD...) + 3-character formatter (§5.3.1).
  if (!APPROVED.test(id)) return { ok: false, reason: 'format', detail: 'bad address field' };
  switch (id.slice(2)) {
    case 'GGA':
      return gga(f);
    case 'RMC':
      return rmc(f);
    case 'VTG':
      return vtg(f);
    default:
      return { ok: false, reason: 'unsupported' };
  }
}

const PROPRIETARY = /^P[A-Z0-9]{3}[A-Z0-9]{0,16}$/;
const APPROVED = /^[A-Z][A-Z0-9][A-Z]{3}$/;

function num(s: string | undefined): number | null {
  if (s === undefined || s === '') return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : null;
}

/** ddmm.mmmm / dddmm.mmmm plus hemisphere → signed decimal degrees. */
function coord(v: string | undefined, hemi: string | undefined, degDigits: 2 | 3): number | null | false {
  if (!v) return null;
  const m = (degDigits === 2 ? LAT : LON).exec(v);
  if (!m) return false;
  const deg = Number(m[1]);
  const min = Number(m[2]);
  if (min >= 60 || deg > (degDigits === 2 ? 90 : 180)) return false;
  const d = deg + min / 60;
  if (hemi === 'N' || hemi === 'E') return d;
  if (hemi === 'S' || hemi === 'W') return -d;
  return false;
}
const LAT = /^(\d{2})(\d{2}(?:\.\d+)?)$/;
const LON = /^(\d{3})(\d{2}(?:\.\d+)?)$/;

function gga(f: string[]): NmeaResult {
  if (f.length < 10) return { ok: false, reason: 'format', detail: 'GGA too short' };
  const lat = coord(f[2], f[3], 2);
  const lon = coord(f[4], f[5], 3);
  const fix = num(f[6]);
  if (lat === false || lon === false || fix === null) return { ok: false, reason: 'format', detail: 'GGA fields' };
  return {
    ok: true,
    sentence: {
      kind: 'GGA',
      time: f[1] ?? '',
      lat,
      lon,
      alt: num(f[9]),
      fixQuality: fix,
      satellites: num(f[7]),
      hdop: num(f[8]),
    },
  };
}

function rmc(f: string[]): NmeaResult {
  if (f.length < 10) return { ok: false, reason: 'format', detail: 'RMC too short' };
  const lat = coord(f[3], f[4], 2);
  const lon = coord(f[5], f[6], 3);
  if (lat === false || lon === false || (f[2] !== 'A' && f[2] !== 'V'))
    return { ok: false, reason: 'format', detail: 'RMC fields' };
  return {
    ok: true,
    sentence: {
      kind: 'RMC',
      time: f[1] ?? '',
      valid: f[2] === 'A',
      lat,
      lon,
      speedKn: num(f[7]),
      course: num(f[8]),
      gpsTime: utc(f[9], f[1]),
    },
  };
}

function vtg(f: string[]): NmeaResult {
  // NMEA 2.x: course,T,course,M,speed,N,speed,K[,mode]; NMEA 1.x omits the unit letters.
  if (f[2] === 'T') return { ok: true, sentence: { kind: 'VTG', course: num(f[1]), speedKn: num(f[5]) } };
  if (f.length >= 5) return { ok: true, sentence: { kind: 'VTG', course: num(f[1]), speedKn: num(f[3]) } };
  return { ok: false, reason: 'format', detail: 'VTG too short' };
}

/** RMC date ddmmyy + time hhmmss(.ss) → epoch ms (years 80–99 are 19xx: GPS epoch is 1980). */
function utc(date: string | undefined, time: string | undefined): number | null {
  if (!date || !time || !/^\d{6}$/.test(date) || !/^\d{6}(\.\d+)?$/.test(time)) return null;
  const yy = Number(date.slice(4, 6));
  const t = Date.UTC(
    yy >= 80 ? 1900 + yy : 2000 + yy,
    Number(date.slice(2, 4)) - 1,
    Number(date.slice(0, 2)),
    Number(time.slice(0, 2)),
    Number(time.slice(2, 4)),
    0,
    Math.round(Number(time.slice(4)) * 1000),
  );
  return Number.isFinite(t) ? t : null;
}

/** One merged fix: values, units and quality as they go into a Reading. */
export interface Fix {
  values: Record<string, ReadingValue>;
  units: Record<string, string>;
  quality: Quality;
}

const UNITS: Record<string, string> = {
  latitude: 'deg',
  longitude: 'deg',
  altitude: 'm',
  speed: 'm/s',
  course: 'deg',
  hdop: '1',
  satellites: '1',
  fix_quality: '1',
};

/**
 * Merges the sentences of one epoch (same UTC time; VTG carries none and joins the current one)
 * into one fix, so a receiver sending GGA+RMC+VTG each second gives one reading per second.
 */
export class NmeaAssembler {
  private time: string | undefined;
  private values: Record<string, ReadingValue> = {};
  private bad = false;
  private any = false;

  push(s: NmeaSentence): Fix[] {
    const out: Fix[] = [];
    if (s.kind !== 'VTG') {
      if (this.any && this.time !== undefined && this.time !== s.time) {
        const f = this.flush();
        if (f) out.push(f);
      }
      this.time = s.time;
    }
    this.any = true;
    const v = this.values;
    switch (s.kind) {
      case 'GGA':
        v['latitude'] = s.lat;
        v['longitude'] = s.lon;
        v['altitude'] = s.alt;
        v['fix_quality'] = s.fixQuality;
        v['satellites'] = s.satellites;
        v['hdop'] = s.hdop;
        // GGA fix quality 0 = invalid (NMEA 0183 GGA field 6).
        if (s.fixQuality === 0) this.bad = true;
        break;
      case 'RMC':
        if (!('latitude' in v) || v['latitude'] === null) v['latitude'] = s.lat;
        if (!('longitude' in v) || v['longitude'] === null) v['longitude'] = s.lon;
        if (s.speedKn !== null) v['speed'] = s.speedKn * KNOT_MS;
        if (s.course !== null) v['course'] = s.course;
        if (s.gpsTime !== null) v['gps_time'] = s.gpsTime;
        // RMC status V = navigation receiver warning.
        if (!s.valid) this.bad = true;
        break;
      case 'VTG':
        if (s.speedKn !== null) v['speed'] = s.speedKn * KNOT_MS;
        if (s.course !== null) v['course'] = s.course;
        break;
    }
    return out;
  }

  /** Emits the epoch being assembled, if any. */
  flush(): Fix | null {
    if (!this.any) return null;
    const values = this.values;
    const units: Record<string, string> = {};
    for (const k of Object.keys(values)) if (UNITS[k]) units[k] = UNITS[k];
    const fix: Fix = { values, units, quality: this.bad ? 'bad' : 'good' };
    this.values = {};
    this.bad = false;
    this.any = false;
    this.time = undefined;
    return fix;
  }
}
