import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { coapClient, resetClient, withoutDtls, type CoapResponse } from './coap-client.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import { formatAudit, formatDevices, formatObject, formatReading } from './format.js';

// Imports stay small on purpose: `ctl` must start in tens of milliseconds (scripts/bench-ctl.ts).
// The config schema (ajv, TypeBox) and the YAML printer are loaded only by the commands that use them.

export const CTL_USAGE = `Usage: edge-gateway ctl [options] COMMAND

Commands:
  status                 gateway id, version, uptime, services, uplink, queues
  health                 event loop and services (exit 1 when unhealthy)
  watch status           follow /mgmt/status (observe) until Ctrl-C or --count N
  config get             effective configuration as YAML (secrets shown as "[redacted]")
  config set FILE        validate, apply and persist FILE on the gateway (admin token); a
                         "[redacted]" secret (from config get) keeps the gateway's stored one
  config validate FILE   check FILE locally with the gateway's schema (no network)
  devices [ID]           known devices and their state, or one device with its latest reading
  deadletters [ID]       refused payloads, newest first (--device ID, --limit N); one in full with ID
  queues                 outbox/queue state
  audit                  recent management writes (--limit N, default 50)
  alerts [ack ID]        open and recent analytics alerts; acknowledge one (admin token)
  tail [ID...]           follow readings live (observe /sensors/ID, RFC 7641); without ids,
                         every device with a reading (at most 64, new ones picked up every 10 s)
  ota check|apply        ask the gateway to look for / install an update (admin token)
  restart                graceful restart under systemd (admin token)
  uplink reconnect       reconnect to the cloud now, resetting the backoff (admin token)
  plugins [reload|disable|release NAME]
                         plugins with state, version, hook timings and errors; reload (new code
                         and config from the file), disable, or release one from quarantine (admin)

Options:
  --host HOST[:PORT]     gateway address (default 127.0.0.1:5683; [::1]:5683 for IPv6)
  --token TOKEN          management token (default: $EDGE_GATEWAY_TOKEN)
  --json                 machine-readable output (one JSON document per line)
  --timeout MS           give up after MS without an answer (default 10000)
  --count N              watch/tail: stop after N notifications
  --limit N              audit, deadletters: entries to show
  --device ID            deadletters: of one device only
Times are shown in UTC (ISO 8601) with their age relative to this machine's clock. Tokens travel in clear over UDP: see docs/management-api.md.
Exit: 0 ok, 1 refused/unhealthy, 2 usage, 3 no answer.
`;

export interface CtlIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** Wall clock for ages in human output. */
  now?: () => number;
}

const defaultIo: CtlIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env };

/** `tail` without ids observes at most this many devices (each is one observe registration). */
const MAX_TAIL_DEVICES = 64;
const TAIL_RELIST_MS = 10_000;

class Usage extends Error {}
class NoAnswer extends Error {}

/** Prints one body; `false` means nothing was shown (it does not count towards --count). */
type Show = (body: unknown) => boolean | void;

/** The `edge-gateway ctl` process entry (main.ts): nothing else runs in this process. */
export function ctlCommand(args: string[]): Promise<number> {
  withoutDtls();
  return ctl(args);
}

/** `edge-gateway ctl ...`: a management client over CoAP (node-coap-client). */
export async function ctl(args: string[], io: CtlIo = defaultIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        host: { type: 'string', default: '127.0.0.1:5683' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '10000' },
        count: { type: 'string' },
        device: { type: 'string' },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${CTL_USAGE}`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  const [cmd, sub, file] = positionals;
  if (o.help || !cmd) {
    io.out(CTL_USAGE);
    return o.help ? 0 : 2;
  }
  const token = o.token ?? io.env['EDGE_GATEWAY_TOKEN'];
  const timeoutMs = Number(o.timeout);
  const count = o.count === undefined ? Infinity : Number(o.count);
  const now = io.now ?? Date.now;
  if (!(timeoutMs > 0) || !(count > 0)) {
    io.err(`--timeout and --count take a positive number\n\n${CTL_USAGE}`);
    return 2;
  }
  let origin: URL;
  try {
    origin = originOf(o.host);
  } catch {
    io.err(`--host ${o.host}: not HOST, HOST:PORT or [IPv6]:PORT\n`);
    return 2;
  }
  const url = (path: string, query: Record<string, string> = {}) => {
    const u = new URL(path, origin);
    if (token) u.searchParams.set('token', token);
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u;
  };
  const json: Show = (body) => io.out(`${JSON.stringify(body)}\n`);
  const human =
    (fmt: (body: unknown, now: number) => string): Show =>
    (body) =>
      io.out(o.json ? `${JSON.stringify(body)}\n` : fmt(body, now()));
  const plain = human(formatObject);
  const get = async (path: string, show: Show, query?: Record<string, string>) =>
    answer(await request(url(path, query), 'get', timeoutMs), show, io);
  try {
    switch (`${cmd} ${sub ?? ''}`.trim()) {
      case 'status':
        return await get('/mgmt/status', plain);
      case 'health': {
        const res = await request(url('/mgmt/health'), 'get', timeoutMs);
        const code = answer(res, plain, io);
        return code === 0 && (parseBody(res) as { ok?: boolean }).ok !== true ? 1 : code;
      }
      case 'devices':
        return await get('/mgmt/devices', human(formatDevices));
      case 'deadletters': {
        const q: Record<string, string> = {};
        if (o.device) q['device'] = o.device;
        if (o.limit) q['limit'] = o.limit;
        return await get('/mgmt/deadletters', plain, q);
      }
      case `deadletters ${sub}`:
        if (!/^\d+$/.test(sub ?? '')) throw new Usage('deadletters [ID]: ID is a number');
        return await get(`/mgmt/deadletters/${sub}`, plain);
      case 'queues':
        return await get('/mgmt/queues', plain);
      case 'alerts':
        return await get('/mgmt/alerts', plain);
      case 'alerts ack': {
        const id = file;
        if (!id) throw new Usage('alerts ack ID');
        return answer(await request(url('/mgmt/alerts', { id }), 'post', timeoutMs), plain, io);
      }
      case 'audit':
        return await get('/mgmt/audit', human(formatAudit), { limit: String(Number(o.limit ?? 50) || 50) });
      case 'config get': {
        if (o.json) return await get('/mgmt/config', json);
        // YAML, so the output can be edited and given back to `config set` as is.
        const { stringify } = await import('yaml');
        return await get('/mgmt/config', (body) => io.out(stringify(body)));
      }
      case 'config validate': {
        if (!file) throw new Usage('config validate FILE');
        const { ConfigError, parseConfig } = await import('../config/load.js');
        try {
          parseConfig(readFileSync(file, 'utf8'), file, io.env);
          io.out(`${file}: configuration is valid\n`);
          return 0;
        } catch (err) {
          io.err(`${(err as Error).message}\n`);
          return err instanceof ConfigError ? 1 : 2;
        }
      }
      case 'config set': {
        if (!file) throw new Usage('config set FILE');
        const text = readFileSync(file, 'utf8');
        // node-coap-client labels every body application/json; the gateway reads it as YAML,
        // of which JSON is a subset, so a YAML file goes as is.
        return answer(await request(url('/mgmt/config'), 'put', timeoutMs, Buffer.from(text)), plain, io);
      }
      case 'ota check':
      case 'ota apply':
        return answer(await request(url('/mgmt/ota', { action: sub! }), 'post', timeoutMs), plain, io);
      case 'restart':
        return answer(await request(url('/mgmt/restart'), 'post', timeoutMs), plain, io);
      case 'plugins':
        return await get('/mgmt/plugins', plain);
      case 'plugins reload':
      case 'plugins disable':
      case 'plugins release': {
        if (!file || !/^[a-z][a-z0-9-]{0,31}$/.test(file)) throw new Usage(`plugins ${sub} NAME`);
        return answer(await request(url('/mgmt/plugins', { action: sub!, name: file }), 'post', timeoutMs), plain, io);
      }
      case 'uplink reconnect':
        return answer(await request(url('/mgmt/uplink/reconnect'), 'post', timeoutMs), plain, io);
      case 'watch status':
        return await watch(
          [url('/mgmt/status')],
          count,
          timeoutMs,
          human((b, t) => `${formatObject(b, t)}---\n`),
          io,
        );
      default:
        if (cmd === 'devices' && sub !== undefined && file === undefined) {
          if (!isValidDeviceId(sub)) throw new Usage(`not a device id: ${JSON.stringify(sub)}`);
          return await get(`/mgmt/devices/${encodeURIComponent(sub)}`, plain);
        }
        if (cmd === 'tail') {
          const ids = positionals.slice(1);
          const bad = ids.find((id) => !isValidDeviceId(id));
          if (bad !== undefined) throw new Usage(`not a device id: ${JSON.stringify(bad)}`);
          const show: Show = (b) => {
            // A device that has not reported yet answers { pending: true }: nothing to show.
            if (typeof b === 'object' && b !== null && (b as { pending?: unknown }).pending === true) return false;
            const line = o.json ? `${JSON.stringify(b)}\n` : formatReading(b);
            if (line) io.out(line);
            return line !== undefined;
          };
          return await tail(ids, { url, count, timeoutMs, show, io });
        }
        throw new Usage(`unknown command: ${[cmd, sub].filter(Boolean).join(' ')}`);
    }
  } catch (err) {
    if (err instanceof Usage) {
      io.err(`${err.message}\n\n${CTL_USAGE}`);
      return 2;
    }
    if (err instanceof NoAnswer) {
      io.err(`${err.message}\n`);
      return 3;
    }
    io.err(`ctl: ${(err as Error).message ?? String(err)}\n`);
    return 3;
  } finally {
    resetClient();
  }
}

/** `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → coap://…:port. */
export function originOf(host: string): URL {
  let h = host.replace(/^coap:\/\//, '');
  if (!h.startsWith('[') && h.split(':').length > 2) h = `[${h}]`; // bare IPv6
  const hasPort = h.startsWith('[') ? /\]:\d+$/.test(h) : h.includes(':');
  return new URL(`coap://${hasPort ? h : `${h}:5683`}`);
}

function withTimeout<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NoAnswer(what)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

function request(u: URL, method: 'get' | 'put' | 'post', timeoutMs: number, payload?: Buffer): Promise<CoapResponse> {
  return withTimeout(
    coapClient().request(u, method, payload, { confirmable: true, keepAlive: false, retransmit: true }),
    timeoutMs,
    `no answer from ${u.host} within ${timeoutMs} ms (is the gateway running? --host? coap.allow_sources?)`,
  );
}

function parseBody(res: CoapResponse): unknown {
  const text = res.payload?.toString('utf8') ?? '';
  try {
    return text ? (JSON.parse(text) as unknown) : {};
  } catch {
    return text;
  }
}

/** Prints a 2.xx body; any other code goes to stderr with its reason, exit 1. */
function answer(res: CoapResponse, show: Show, io: CtlIo): number {
  const code = res.code.toString();
  const body = parseBody(res);
  if (!code.startsWith('2.')) {
    io.err(`${code} ${typeof body === 'string' ? body : JSON.stringify(body, null, 2)}\n`);
    return 1;
  }
  if (body !== '' && !(typeof body === 'object' && body !== null && Object.keys(body).length === 0)) show(body);
  else io.out(`${code}\n`);
  return 0;
}

/**
 * Observes every URL (RFC 7641 registrations, one per resource) and shows each notification
 * until `count` notifications in all, Ctrl-C, or a refusal. `more()` may add URLs while it runs.
 */
async function watch(
  urls: URL[],
  count: number,
  timeoutMs: number,
  show: Show,
  io: CtlIo,
  more?: { everyMs: number; next: () => Promise<URL[]> },
): Promise<number> {
  let seen = 0;
  let failed: CoapResponse | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const onSignal = () => done();
  process.once('SIGINT', onSignal);
  const observing = new Map<string, URL>();
  const start = (u: URL) => {
    if (observing.has(u.href)) return undefined;
    observing.set(u.href, u);
    return coapClient().observe(u, 'get', (res) => {
      if (seen >= count) return;
      if (!res.code.toString().startsWith('2.')) {
        failed = res;
        return done();
      }
      if (show(parseBody(res)) !== false && ++seen >= count) done();
    });
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await withTimeout(
      Promise.all(urls.map(start)),
      timeoutMs,
      `no answer from ${urls[0]?.host} within ${timeoutMs} ms`,
    );
    if (more) {
      timer = setInterval(() => {
        more.next().then(
          (next) => {
            for (const u of next) {
              if (observing.size >= MAX_TAIL_DEVICES) break;
              void start(u)?.catch(() => observing.delete(u.href));
            }
          },
          () => undefined, // a missed re-list is retried at the next tick
        );
      }, more.everyMs);
    }
    if (!failed && seen < count) await finished;
  } finally {
    clearInterval(timer);
    process.off('SIGINT', onSignal);
    for (const u of observing.values()) coapClient().stopObserving(u);
  }
  return failed ? answer(failed, show, io) : 0;
}

interface TailOptions {
  url: (path: string, query?: Record<string, string>) => URL;
  count: number;
  timeoutMs: number;
  show: Show;
  io: CtlIo;
}

/**
 * `ctl tail`: observes `GET /sensors/{id}` per device (RFC 7641), so each reading arrives as it is
 * accepted, with no polling. Observing one resource per device (not one stream of everything) is
 * what the CoAP resources offer, and keeps a slow terminal from holding the gateway's fan-out:
 * each registration is bounded by coap.max_observers and dropped by the gateway if it stops
 * answering CON notifications (RFC 7641 §4.5). Without ids, the devices come from `GET /sensors`.
 */
async function tail(ids: string[], t: TailOptions): Promise<number> {
  const listed = async (): Promise<URL[]> => {
    const res = await request(t.url('/sensors'), 'get', t.timeoutMs);
    if (!res.code.toString().startsWith('2.')) throw new Error(`GET /sensors: ${res.code.toString()}`);
    const body = parseBody(res) as { devices?: { deviceId?: unknown }[] };
    return (body.devices ?? [])
      .map((d) => d.deviceId)
      .filter((id): id is string => typeof id === 'string' && isValidDeviceId(id))
      .slice(0, MAX_TAIL_DEVICES)
      .map((id) => t.url(`/sensors/${id}`));
  };
  const urls = ids.length > 0 ? ids.map((id) => t.url(`/sensors/${id}`)) : await listed();
  if (urls.length === 0) {
    t.io.err('no device has sent a reading yet; name one: ctl tail ID\n');
    return 1;
  }
  const more = ids.length > 0 ? undefined : { everyMs: TAIL_RELIST_MS, next: listed };
  return watch(urls, t.count, t.timeoutMs, t.show, t.io, more);
}
