import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CoapClient, type CoapResponse } from 'node-coap-client';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.js';

export const CTL_USAGE = `Usage: edge-gateway ctl [options] COMMAND

Commands:
  status                 gateway id, version, uptime, services, uplink, queues
  health                 event loop and services (exit 1 when unhealthy)
  watch status           follow /mgmt/status (observe) until Ctrl-C or --count N
  config get             effective configuration (secrets redacted)
  config set FILE        validate, apply and persist FILE on the gateway (admin token)
  config validate FILE   check FILE locally with the gateway's schema (no network)
  devices                known devices and their state
  deadletters [ID]       refused payloads, newest first (--device ID, --limit N); one in full with ID
  queues                 outbox/queue state
  ota check|apply        ask the gateway to look for / install an update (admin token)
  restart                graceful restart under systemd (admin token)

Options:
  --host HOST[:PORT]     gateway address (default 127.0.0.1:5683; [::1]:5683 for IPv6)
  --token TOKEN          management token (default: $EDGE_GATEWAY_TOKEN)
  --json                 machine-readable output
  --timeout MS           give up after MS (default 10000)
  --count N              watch: stop after N notifications
Exit: 0 ok, 1 refused/unhealthy, 2 usage, 3 no answer.
`;

export interface CtlIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIo: CtlIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env };

class Usage extends Error {}
class NoAnswer extends Error {}

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
  const {
    values: o,
    positionals: [cmd, sub, file],
  } = parsed;
  if (o.help || !cmd) {
    io.out(CTL_USAGE);
    return o.help ? 0 : 2;
  }
  const token = o.token ?? io.env['EDGE_GATEWAY_TOKEN'];
  const timeoutMs = Number(o.timeout);
  const origin = originOf(o.host);
  const url = (path: string, query: Record<string, string> = {}) => {
    const u = new URL(path, origin);
    if (token) u.searchParams.set('token', token);
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u;
  };
  const show = (body: unknown) => io.out(o.json ? `${JSON.stringify(body)}\n` : stringify(body));
  try {
    switch (`${cmd} ${sub ?? ''}`.trim()) {
      case 'status':
        return answer(await request(url('/mgmt/status'), 'get', timeoutMs), show, io);
      case 'health': {
        const res = await request(url('/mgmt/health'), 'get', timeoutMs);
        const code = answer(res, show, io);
        return code === 0 && (parseBody(res) as { ok?: boolean }).ok !== true ? 1 : code;
      }
      case 'devices':
        return answer(await request(url('/mgmt/devices'), 'get', timeoutMs), show, io);
      case 'deadletters': {
        const q: Record<string, string> = {};
        if (o.device) q['device'] = o.device;
        if (o.limit) q['limit'] = o.limit;
        return answer(await request(url('/mgmt/deadletters', q), 'get', timeoutMs), show, io);
      }
      case `deadletters ${sub}`:
        if (!/^\d+$/.test(sub ?? '')) throw new Usage('deadletters [ID]: ID is a number');
        return answer(await request(url(`/mgmt/deadletters/${sub}`), 'get', timeoutMs), show, io);
      case 'queues':
        return answer(await request(url('/mgmt/queues'), 'get', timeoutMs), show, io);
      case 'config get':
        return answer(await request(url('/mgmt/config'), 'get', timeoutMs), show, io);
      case 'config validate': {
        if (!file) throw new Usage('config validate FILE');
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
        return answer(await request(url('/mgmt/config'), 'put', timeoutMs, Buffer.from(text)), show, io);
      }
      case 'ota check':
      case 'ota apply':
        return answer(await request(url('/mgmt/ota', { action: sub! }), 'post', timeoutMs), show, io);
      case 'restart':
        return answer(await request(url('/mgmt/restart'), 'post', timeoutMs), show, io);
      case 'watch status':
        return await watch(url('/mgmt/status'), o.count ? Number(o.count) : Infinity, timeoutMs, show, io);
      default:
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
    CoapClient.reset();
  }
}

/** `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → coap://…:port. */
export function originOf(host: string): URL {
  let h = host.replace(/^coap:\/\//, '');
  if (!h.startsWith('[') && h.split(':').length > 2) h = `[${h}]`; // bare IPv6
  const hasPort = h.startsWith('[') ? /\]:\d+$/.test(h) : h.includes(':');
  return new URL(`coap://${hasPort ? h : `${h}:5683`}`);
}

async function request(
  u: URL,
  method: 'get' | 'put' | 'post',
  timeoutMs: number,
  payload?: Buffer,
): Promise<CoapResponse> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      CoapClient.request(u, method, payload, { confirmable: true, keepAlive: false, retransmit: true }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new NoAnswer(`no answer from ${u.host} within ${timeoutMs} ms (is the gateway running? --host?)`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
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
function answer(res: CoapResponse, show: (b: unknown) => void, io: CtlIo): number {
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

async function watch(u: URL, count: number, timeoutMs: number, show: (b: unknown) => void, io: CtlIo): Promise<number> {
  let seen = 0;
  let failed: CoapResponse | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const onSignal = () => done();
  process.once('SIGINT', onSignal);
  try {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      CoapClient.observe(u, 'get', (res) => {
        if (!res.code.toString().startsWith('2.')) {
          failed = res;
          return done();
        }
        show(parseBody(res));
        if (++seen >= count) done();
      }).finally(() => clearTimeout(timer)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NoAnswer(`no answer from ${u.host} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    if (!failed && seen < count) await finished;
  } finally {
    process.off('SIGINT', onSignal);
    CoapClient.stopObserving(u);
  }
  return failed ? answer(failed, show, io) : 0;
}
