import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AllowList } from '../config/cidr.js';
import { ConfigError, parseConfig, redactSecrets } from '../config/load.js';
import { json, text, type CoapReply, type Resource } from '../coap/router.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import { PRIORITIES, type Priority, type QueuesSnapshot } from '../queue/types.js';
import type { ManagementApi } from './api.js';
import { changedPaths, redactedPaths, splitLive } from './apply.js';
import { writeFileAtomic } from './config-file.js';
import { keepStoredSecrets } from './keep-secrets.js';
import type { ConfigApplyResult, ConfigOrigin } from './registry.js';
import { FailureLimiter, resolveTokens } from './tokens.js';

/** Status notifications are also sent this often without a change, so `uptime` stays fresh. */
const STATUS_HEARTBEAT_MS = 60_000;
const MAX_CONFIG_BYTES = 256 * 1024;

/**
 * Queue depths for /mgmt/status (the contract's "queue depths"): `{ CLASS: depth }`. Full detail
 * stays at /mgmt/queues, so status notifications fit one datagram (node-coap-client 2.1
 * mis-numbers Block2 follow-ups of a second large notification, see docs/coap.md).
 */
function depthsOf(q: QueuesSnapshot | undefined): Record<Priority, number> | null {
  if (!q) return null;
  const out = {} as Record<Priority, number>;
  for (const p of PRIORITIES) out[p] = q.classes[p].depth;
  return out;
}

function readStored(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The /mgmt resources of the contract (DESIGN.md "CoAP resources"). */
export function managementResources(api: ManagementApi): Resource[] {
  const { ctx } = api.opts;
  const g = api.guard.bind(api);

  /**
   * Per-device detail drivers report through their health (the `drivers` service, e.g. a Modbus
   * slave's failures, polls, last error; docs/drivers.md), by device id.
   */
  const driverDetails = (): Map<string, unknown> => {
    const out = new Map<string, unknown>();
    const drivers = ctx.health().services['drivers']?.detail ?? {};
    for (const d of Object.values(drivers)) {
      const devices = (d as { detail?: { devices?: unknown } }).detail?.devices;
      if (typeof devices !== 'object' || devices === null) continue;
      for (const [id, v] of Object.entries(devices)) out.set(id, v);
    }
    return out;
  };
  const withDriver = <T extends object>(d: T, driver: unknown) => (driver === undefined ? d : { ...d, driver });

  const status = () => {
    const h = ctx.health();
    const services: Record<string, string> = {};
    for (const [name, s] of Object.entries(h.services)) services[name] = s.state;
    const devices = ctx.devices.list();
    return {
      gatewayId: ctx.config.gateway.id,
      version: ctx.version,
      uptimeS: Math.floor(ctx.uptimeMs() / 1000),
      healthy: h.ok,
      services,
      uplink: api.registry.get('uplink')?.() ?? { state: 'not configured' },
      queues: depthsOf(api.registry.get('queues')?.()),
      pipeline: { pending: ctx.pipeline.depth, ...ctx.pipeline.counters },
      devices: { known: devices.length, online: devices.filter((d) => d.online).length },
      restartRequired: [...api.restartRequired],
    };
  };

  // One timer for every /mgmt/status observer: compare without uptime, notify on change at most
  // once per status_min_interval_ms, and at least once per heartbeat.
  const statusWatchers = new Set<(r: CoapReply) => void>();
  let lastKey = '';
  let lastSent = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    if (statusWatchers.size === 0) return;
    const s = status();
    const key = JSON.stringify({ ...s, uptimeS: 0 });
    const t = api.now();
    if (key === lastKey && t - lastSent < STATUS_HEARTBEAT_MS) return;
    lastKey = key;
    lastSent = t;
    const reply = json('2.05', s);
    for (const fn of statusWatchers) fn(reply);
  };
  const startTimer = () => {
    clearInterval(timer);
    timer = setInterval(tick, api.current.mgmt.status_min_interval_ms);
    timer.unref();
  };
  startTimer();
  api.onStop(() => clearInterval(timer));

  const applied = new Set<(origin: ConfigOrigin) => void>();
  const refuse = (status: string, error: string, message: string, path = ''): ConfigApplyResult => ({
    ok: false,
    status,
    error,
    errors: [{ path, message }],
  });

  /** Validate, persist, apply: the one path for PUT /mgmt/config and the cloud (registry `config`). */
  const applyConfig = (payloadText: string, origin: ConfigOrigin): ConfigApplyResult => {
    const path = ctx.configPath;
    if (!path)
      return refuse('5.01', 'EGW_CONFIG_INVALID', 'the gateway was started without a config file; nothing to write');
    if (payloadText.length > MAX_CONFIG_BYTES)
      return refuse('4.13', 'EGW_CONFIG_INVALID', `config larger than ${MAX_CONFIG_BYTES} bytes`);
    // A config from `config get` carries "[redacted]" secrets: the stored ones are kept (a round
    // trip through ctl must neither fail nor wipe them), before validation.
    const kept = keepStoredSecrets(payloadText, readStored(path));
    if (!kept.ok) return { ok: false, status: '4.00', error: 'EGW_CONFIG_INVALID', errors: kept.errors };
    const textToWrite = kept.text;
    let next;
    try {
      next = parseConfig(
        textToWrite,
        origin === 'cloud' ? 'desired config' : 'PUT /mgmt/config',
        process.env,
        api.opts.check,
      );
    } catch (err) {
      if (err instanceof ConfigError)
        return { ok: false, status: '4.00', error: 'EGW_CONFIG_INVALID', errors: [...err.issues] };
      throw err;
    }
    const placeholders = redactedPaths(next);
    if (placeholders.length > 0) {
      return {
        ok: false,
        status: '4.00',
        error: 'EGW_CONFIG_INVALID',
        errors: placeholders.map((p) => ({
          path: p,
          message: 'is "[redacted]" (from a GET); give the secret in full or with !env / !file',
        })),
      };
    }
    let backup: string | undefined;
    try {
      ({ backup } = writeFileAtomic(path, textToWrite.endsWith('\n') ? textToWrite : `${textToWrite}\n`));
    } catch (err) {
      api.log.error(
        { err, file: path, code: 'EGW_MGMT_CONFIG_WRITE' },
        'writing the new configuration failed; the old file is intact',
      );
      return refuse(
        '5.00',
        'EGW_MGMT_CONFIG_WRITE',
        `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    const sinceLast = changedPaths(api.current, next);
    const { live } = splitLive(sinceLast);
    // Restart-required is relative to what is running, so a later PUT that reverts clears it.
    const { restart } = splitLive(changedPaths(ctx.config, next));
    if (live.includes('gateway.log_level')) ctx.log.level = next.gateway.log_level;
    if (live.some((p) => p.startsWith('mgmt.'))) {
      api.tokens = resolveTokens(next.mgmt, ctx.config.gateway.data_dir, () => undefined);
      api.failures = new FailureLimiter(next.mgmt.auth_failures_per_min);
      api.allow = new AllowList(next.mgmt.allow_sources);
    }
    api.current = next;
    if (live.includes('mgmt.status_min_interval_ms')) startTimer();
    api.restartRequired.clear();
    for (const p of restart) api.restartRequired.add(p);
    api.log.info({ applied: live, restartRequired: restart, file: path, origin }, 'configuration changed');
    for (const fn of applied) {
      try {
        fn(origin);
      } catch (err) {
        api.log.error({ err }, 'config change listener failed');
      }
    }
    return { ok: true, applied: live, restartRequired: restart, file: path, backup: backup ?? null };
  };

  const putConfig = (payloadText: string, contentFormat: number | undefined): CoapReply => {
    if (contentFormat !== undefined && contentFormat !== 0 && contentFormat !== 50) {
      return text('4.15', 'send the YAML (or JSON) config as text/plain (0) or application/json (50)');
    }
    const r = applyConfig(payloadText, 'local');
    if (r.ok)
      return json('2.04', { applied: r.applied, restartRequired: r.restartRequired, file: r.file, backup: r.backup });
    if (r.status === '4.00') return json('4.00', { error: r.error, errors: r.errors });
    return text(r.status, `${r.errors[0]?.message ?? r.error}${r.status === '5.00' ? ` (${r.error})` : ''}`);
  };

  if (!api.registry.get('config')) {
    api.registry.register('config', {
      apply: applyConfig,
      onApplied(fn) {
        applied.add(fn);
        return () => applied.delete(fn);
      },
      hash: () =>
        createHash('sha256')
          .update(JSON.stringify(redactSecrets(api.current)))
          .digest('hex'),
    });
  }

  const notBuilt = (what: string) => text('5.01', `${what} is not available in this build`);

  return [
    {
      path: '/mgmt/status',
      rt: 'edge.mgmt.status',
      ct: [50],
      obs: true,
      methods: { GET: g('/mgmt/status', 'read', () => json('2.05', status())) },
      observe: (_req, _p, push) => {
        statusWatchers.add(push);
        return () => statusWatchers.delete(push);
      },
    },
    {
      path: '/mgmt/health',
      rt: 'edge.mgmt.health',
      ct: [50],
      methods: { GET: g('/mgmt/health', 'read', () => json('2.05', ctx.health())) },
    },
    {
      path: '/mgmt/config',
      rt: 'edge.mgmt.config',
      ct: [50],
      methods: {
        GET: g('/mgmt/config', 'read', () => json('2.05', redactSecrets(api.current))),
        PUT: g('/mgmt/config', 'admin', (req) => putConfig(req.payload.toString('utf8'), req.contentFormat)),
      },
    },
    {
      path: '/mgmt/devices',
      rt: 'edge.mgmt.devices',
      ct: [50],
      methods: {
        GET: g('/mgmt/devices', 'read', () => {
          const extra = driverDetails();
          return json('2.05', { devices: ctx.devices.list().map((d) => withDriver(d, extra.get(d.id))) });
        }),
      },
    },
    {
      path: '/mgmt/devices/{id}',
      hidden: true,
      methods: {
        GET: g('/mgmt/devices/{id}', 'read', (_req, p) => {
          const id = p['id']!;
          if (!isValidDeviceId(id)) return text('4.00', 'device id not allowed');
          const d = ctx.devices.get(id);
          if (!d) return text('4.04', `unknown device ${id}`);
          return json('2.05', { ...withDriver(d, driverDetails().get(id)), latest: ctx.latest.get(id) ?? null });
        }),
      },
    },
    {
      path: '/mgmt/queues',
      rt: 'edge.mgmt.queues',
      ct: [50],
      methods: {
        GET: g('/mgmt/queues', 'read', () =>
          json(
            '2.05',
            api.registry.get('queues')?.() ?? { enabled: false, classes: [], note: 'store-and-forward is not running' },
          ),
        ),
      },
    },
    {
      path: '/mgmt/inspection',
      rt: 'edge.mgmt.inspection',
      ct: [50],
      methods: {
        GET: g('/mgmt/inspection', 'read', () =>
          json('2.05', api.registry.get('inspection')?.() ?? { enabled: false, cameras: [] }),
        ),
      },
    },
    {
      path: '/mgmt/plugins',
      rt: 'edge.mgmt.plugins',
      ct: [50],
      methods: {
        GET: g('/mgmt/plugins', 'read', () => json('2.05', api.registry.get('plugins')?.() ?? { plugins: [] })),
        // POST ?action=reload|disable|release&name=NAME (docs/plugins.md).
        POST: g('/mgmt/plugins', 'admin', async (req) => {
          const plugins = api.registry.get('pluginActions');
          if (!plugins) return notBuilt('plugins');
          const action = req.query['action'] ?? '';
          const name = req.query['name'] ?? '';
          if (action !== 'reload' && action !== 'disable' && action !== 'release')
            return text('4.00', 'action must be reload, disable or release');
          if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) return text('4.00', 'name=<plugin name> is required');
          try {
            const view = await plugins.act(action, name);
            return view ? json('2.04', view) : text('4.04', `no plugin ${name}`);
          } catch (err) {
            return text('4.00', (err as Error).message);
          }
        }),
      },
    },
    {
      path: '/mgmt/ota',
      rt: 'edge.mgmt.ota',
      ct: [50],
      methods: {
        GET: g('/mgmt/ota', 'read', () =>
          json(
            '2.05',
            api.registry.get('ota')?.state() ?? {
              enabled: false,
              current: ctx.version,
              note: 'OTA is not available in this build',
            },
          ),
        ),
        // POST ?action=check | apply (contract: "POST to check or apply").
        POST: g('/mgmt/ota', 'admin', async (req) => {
          const ota = api.registry.get('ota');
          if (!ota) return notBuilt('OTA');
          const action = req.query['action'] ?? 'check';
          if (action === 'check') return json('2.04', await ota.check());
          if (action === 'apply') return json('2.04', await ota.apply());
          return text('4.00', 'action must be check or apply');
        }),
      },
    },
    {
      // Analytics alerts (docs/analytics.md): open and recent; observers hear every change; an
      // admin acknowledges one with POST ?id=<alert id>.
      path: '/mgmt/alerts',
      rt: 'edge.mgmt.alerts',
      ct: [50],
      obs: true,
      methods: {
        GET: g('/mgmt/alerts', 'read', () =>
          json('2.05', api.registry.get('alerts')?.view() ?? { enabled: false, active: [], recent: [] }),
        ),
        POST: g('/mgmt/alerts', 'admin', (req) => {
          const alerts = api.registry.get('alerts');
          if (!alerts) return notBuilt('analytics');
          const id = req.query['id'] ?? '';
          if (!/^[A-Za-z0-9_.:\/-]{1,200}$/.test(id)) return text('4.00', 'id=<alert id> is required');
          const acked = alerts.acknowledge(id);
          return acked ? json('2.04', acked) : text('4.04', `no open, unacknowledged alert ${id}`);
        }),
      },
      observe: (_req, _p, push) => {
        const alerts = api.registry.get('alerts');
        if (!alerts) return () => undefined;
        return alerts.onChange(() => push(json('2.05', alerts.view())));
      },
    },
    {
      path: '/mgmt/restart',
      rt: 'edge.mgmt.restart',
      methods: {
        POST: g('/mgmt/restart', 'admin', (req) => {
          // Answer first; the graceful stop starts once the response is on the wire.
          setTimeout(() => ctx.requestRestart(`requested over /mgmt/restart by ${req.source}`), 200).unref();
          return text('2.04', 'restarting');
        }),
      },
    },
    {
      // Refused payloads (docs/readings.md): newest first, `limit`, `device`, `before` (id) to page.
      path: '/mgmt/deadletters',
      rt: 'edge.mgmt.deadletters',
      ct: [50],
      methods: {
        GET: g('/mgmt/deadletters', 'read', (req) => {
          const store = ctx.deadletters;
          if (!store) return json('2.05', { enabled: false, entries: [] });
          const limit = Number(req.query['limit'] ?? 50);
          const before = Number(req.query['before']);
          const device = req.query['device'];
          if (device !== undefined && !isValidDeviceId(device)) return text('4.00', 'device id not allowed');
          const entries = store.list({
            limit: Number.isFinite(limit) ? limit : 50,
            ...(device !== undefined ? { deviceId: device } : {}),
            ...(Number.isInteger(before) ? { beforeId: before } : {}),
          });
          return json('2.05', { enabled: true, ...store.stats(), entries });
        }),
      },
    },
    {
      path: '/mgmt/deadletters/{id}',
      hidden: true,
      methods: {
        GET: g('/mgmt/deadletters/{id}', 'read', (_req, p) => {
          const id = Number(p['id']);
          if (!Number.isSafeInteger(id) || id < 1) return text('4.00', 'dead-letter id must be a positive integer');
          const d = ctx.deadletters?.get(id);
          if (!d) return text('4.04', `no dead letter ${id}`);
          const { payload, ...rest } = d;
          const asText = payload.toString('utf8');
          return json('2.05', {
            ...rest,
            payloadBase64: payload.toString('base64'),
            // The payload as text too when it is valid UTF-8 (most refused payloads are JSON).
            payloadText: Buffer.from(asText, 'utf8').equals(payload) ? asText : null,
          });
        }),
      },
    },
    {
      // An operator who knows the cloud is back need not wait for the uplink's backoff.
      path: '/mgmt/uplink/reconnect',
      rt: 'edge.mgmt.uplink.reconnect',
      ct: [50],
      methods: {
        POST: g('/mgmt/uplink/reconnect', 'admin', () => {
          const reconnect = api.registry.get('uplinkReconnect');
          return reconnect ? json('2.04', reconnect()) : notBuilt('the uplink');
        }),
      },
    },
    {
      path: '/mgmt/audit',
      rt: 'edge.mgmt.audit',
      ct: [50],
      methods: {
        GET: g('/mgmt/audit', 'read', (req) => {
          const limit = Number(req.query['limit'] ?? 100);
          return json('2.05', { entries: api.audit.recent(Number.isFinite(limit) ? limit : 100) });
        }),
      },
    },
  ];
}
