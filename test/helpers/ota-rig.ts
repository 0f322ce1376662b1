import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real OTA pieces for process tests and scripts/bench-ota.ts: an A/B install root whose releases
 * are copies of this build (dist/src + package.json), keys and bundles made by the project's own
 * scripts (ota-keygen, ota-pack), and a static HTTP channel that honours Range/If-Range (RFC 9110
 * §14.2, §13.1.5) and records what it sent.
 */

/** The checkout (dist/test/helpers → ../../..). */
export const REPO = new URL('../../../', import.meta.url).pathname;
export const DIST_SRC = join(REPO, 'dist', 'src');
export const MAIN = join(DIST_SRC, 'main.js');
export const TRIAL_SCRIPT = join(REPO, 'systemd', 'edge-gateway-trial');
export const UNIT = join(REPO, 'systemd', 'edge-gateway.service');
export const ROLLBACK_UNIT = join(REPO, 'systemd', 'edge-gateway-rollback.service');
export const NOTIFY_LISTENER = join(REPO, 'test', 'fixtures', 'notify_listener.py');

/**
 * What test/helpers/supervisor.ts needs to run a board staged by `installBoard`: the shipped units,
 * their install paths mapped onto the board, and the notify listener on `socket`.
 */
export function boardUnits(root: string, cfg: string, socket: string) {
  return {
    unit: UNIT,
    units: { 'edge-gateway-rollback.service': ROLLBACK_UNIT },
    paths: {
      '/usr/local/lib/edge-gateway/edge-gateway-trial': TRIAL_SCRIPT,
      '/opt/edge-gateway': root,
      '/etc/edge-gateway/gateway.yaml': cfg,
      '/usr/bin/node': process.execPath,
    },
    listener: NOTIFY_LISTENER,
    socket,
  };
}

export type ReleaseKind = 'real' | 'hang' | 'crash';

/**
 * A release directory: `real` = this build (the gateway); `hang` = starts and never sends READY;
 * `crash` = exits 1 at once. package.json is the project's own with `version` replaced.
 */
export function makeRelease(dir: string, version: string, kind: ReleaseKind = 'real'): string {
  mkdirSync(join(dir, 'dist'), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2));
  if (kind === 'real') {
    cpSync(DIST_SRC, join(dir, 'dist', 'src'), { recursive: true });
  } else {
    mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
    writeFileSync(
      join(dir, 'dist', 'src', 'main.js'),
      kind === 'hang'
        ? `// test release ${version}: never sends READY\nsetInterval(() => {}, 1000);\n`
        : `// test release ${version}: exits at start\nprocess.stderr.write('release ${version} crashes at start\\n');\nprocess.exit(1);\n`,
    );
  }
  RELEASE_DIGEST.set(version, digestOf(join(dir, 'dist', 'src')));
  return dir;
}

/**
 * An installed board: ROOT/releases/<version> (this build), ROOT/current → it, and ROOT/node_modules
 * → this checkout's node_modules (outside the releases: node resolves packages upwards from the
 * release's real path, so the test bundles carry only package.json and dist/src).
 */
export function installBoard(base: string, version = '0.1.0'): string {
  const root = join(base, 'opt');
  makeRelease(join(root, 'releases', version), version);
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  symlinkSync(join('releases', version), join(root, 'current'));
  return root;
}

export function keygen(base: string): { keyFile: string; publicKey: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'dist/scripts/ota-keygen.js'), join(base, 'release')], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`ota-keygen: ${r.stderr}`);
  const keyFile = join(base, 'release.key');
  return { keyFile, publicKey: (JSON.parse(readFileSync(keyFile, 'utf8')) as { publicKey: string }).publicKey };
}

/** Packs and signs `from` into `channel` with ota-pack; the channel's manifest.json then offers it. */
export function pack(
  channel: string,
  keyFile: string,
  from: string | null,
  extra: string[] = [],
): { bundle: string; size: number } {
  const args = [join(REPO, 'dist/scripts/ota-pack.js'), '--key', keyFile, '--out', channel, ...extra];
  if (from) args.push('--from', from);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: REPO, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`ota-pack: ${r.stderr}`);
  const env = JSON.parse(readFileSync(join(channel, 'manifest.json'), 'utf8')) as { manifest: string };
  const m = JSON.parse(env.manifest) as { url: string; size: number };
  return { bundle: join(channel, m.url), size: m.size };
}

export interface Served {
  method: string;
  url: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  bytes: number;
}

/**
 * A static channel: files of `dir`, ETag from size+mtime, `Range: bytes=N-` answered 206 with
 * Content-Range when If-Range (if sent) matches, else 200 with the whole file.
 */
export class Channel {
  readonly served: Served[] = [];
  private server: Server | null = null;
  port = 0;
  /** Once: the next bundle response stops at this byte offset of the file and the connection is cut. */
  cutAt: number | null = null;
  /** false: no ETag (no validator, so a client cannot resume safely). */
  etags = true;
  /** Bundle responses wait this long before their headers (a slow server). */
  delayMs = 0;

  constructor(readonly dir: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/manifest.json`;
  }

  /** Bytes of bundle bodies sent (not the manifest). */
  get bundleBytes(): number {
    return this.served.filter((s) => s.url.endsWith('.tar.gz')).reduce((a, s) => a + s.bytes, 0);
  }

  async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '/').split('?')[0]!.slice(1));
      const file = join(this.dir, name);
      const rec: Served = {
        method: req.method ?? '',
        url: req.url ?? '',
        range: req.headers.range ?? null,
        ifRange: (req.headers['if-range'] as string | undefined) ?? null,
        status: 404,
        bytes: 0,
      };
      this.served.push(rec);
      if (name.includes('..') || name.includes('/') || !existsSync(file)) {
        res.writeHead(404);
        res.end();
        return;
      }
      if (this.delayMs > 0 && name.endsWith('.tar.gz')) {
        const delay = this.delayMs;
        this.delayMs = 0;
        setTimeout(() => this.server?.emit('request', req, res), delay);
        this.served.pop();
        return;
      }
      const body = readFileSync(file);
      const st = statSync(file);
      const etag = `"${st.size}-${Math.floor(st.mtimeMs)}"`;
      const tag: Record<string, string> = this.etags ? { etag } : {};
      // A cut connection: headers for the whole body, then only up to `cutAt`, then the socket dies.
      const send = (from: number) => {
        const cut = name.endsWith('.tar.gz') ? this.cutAt : null;
        if (cut !== null && cut > from) {
          this.cutAt = null;
          rec.bytes = cut - from;
          res.write(body.subarray(from, cut), () => res.destroy());
          return;
        }
        rec.bytes = body.length - from;
        res.end(body.subarray(from));
      };
      const m = /^bytes=(\d+)-$/.exec(rec.range ?? '');
      if (m && (rec.ifRange === null || rec.ifRange === etag) && Number(m[1]) < body.length) {
        const from = Number(m[1]);
        rec.status = 206;
        res.writeHead(206, {
          'content-length': body.length - from,
          'content-range': `bytes ${from}-${body.length - 1}/${body.length}`,
          ...tag,
        });
        send(from);
        return;
      }
      rec.status = 200;
      res.writeHead(200, { 'content-length': body.length, ...tag, 'accept-ranges': 'bytes' });
      send(0);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}

export const ADMIN_TOKEN = 'ota-admin-token-for-process-tests-0123456789';

/** `edge-gateway ctl --host 127.0.0.1:PORT --token ADMIN ARGS…` (bounded). */
export function ctl(port: number, args: string[], timeoutMs = 20000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [MAIN, 'ctl', '--host', `127.0.0.1:${port}`, '--token', ADMIN_TOKEN, ...args],
      { timeout: timeoutMs, env: { ...process.env, EDGE_GATEWAY_TOKEN: '' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

/** The gateway's config for an OTA process test: CoAP /mgmt on an ephemeral port, the OTA channel. */
export function otaYaml(o: {
  data: string;
  channelUrl: string;
  publicKey: string;
  maxTrialStarts?: number;
  extra?: string;
}): string {
  return [
    'version: 1',
    `gateway: { id: gw-ota, data_dir: ${JSON.stringify(o.data)}, log_level: info, shutdown_timeout_ms: 5000 }`,
    'metrics: { enabled: false }',
    'coap: { host: 127.0.0.1, port: 0 }',
    `mgmt: { read_token: ota-read-token-for-process-tests-0123, admin_token: ${ADMIN_TOKEN} }`,
    'ota:',
    `  channel_url: ${JSON.stringify(o.channelUrl)}`,
    `  trusted_keys: [${JSON.stringify(o.publicKey)}]`,
    '  auto_apply: false',
    '  health_window_s: 10',
    `  max_trial_starts: ${o.maxTrialStarts ?? 3}`,
    '  read_timeout_ms: 5000',
    o.extra ?? '',
  ].join('\n');
}

/** What the board looks like on disk; `consistent` says whether a restart could start half a release. */
export function inspectBoard(root: string): {
  current: string | null;
  previous: string | null;
  currentComplete: boolean;
  trial: string | null;
  rollback: string | null;
} {
  const link = (n: string) => {
    try {
      return readlinkSync(join(root, n));
    } catch {
      return null;
    }
  };
  const current = link('current');
  const dir = current ? join(root, current) : '';
  let currentComplete = false;
  if (current && /^releases\/[0-9A-Za-z.+-]+$/.test(current) && existsSync(join(dir, 'dist', 'src', 'main.js'))) {
    const v = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    // Whole: the version it claims, and byte for byte the dist/src it was packed from.
    currentComplete = `releases/${v}` === current && digestOf(join(dir, 'dist', 'src')) === RELEASE_DIGEST.get(v);
  }
  const read = (n: string) => (existsSync(join(root, n)) ? readFileSync(join(root, n), 'utf8') : null);
  return { current, previous: link('previous'), currentComplete, trial: read('trial'), rollback: read('rollback') };
}

/** Digest of each release's dist/src as made by makeRelease (in this process), by version. */
const RELEASE_DIGEST = new Map<string, string>();
function digestOf(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}${n}/`);
      else h.update(rel + n).update(readFileSync(p));
    }
  };
  walk(dir, '');
  return h.digest('hex');
}

export function tempBase(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
