import { ConfigError, parseConfig, redactSecrets } from '../config/load.js';
import { json, text, type CoapReply, type Resource } from '../coap/router.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import type { ManagementApi } from './api.js';
import { changedPaths, redactedPaths, splitLive } from './apply.js';
import { writeFileAtomic } from './config-file.js';
import { FailureLimiter, resolveTokens } from './tokens.js';

/** Status notifications are also sent this often without a change, so `uptime` stays fresh. */
const STATUS_HEARTBEAT_MS = 60_000;
const MAX_CONFIG_BYTES = 256 * 1024;

/**
 * Queue depths for /mgmt/status (the contract's "queue depths"): `{ CLASS: depth }` when the
 * provider reports `classes: { CLASS: { depth } }`. Full detail stays at /mgmt/queues, so status
 * notifications fit one datagram (node-coap-client 2.1 mis-numbers Block2 follow-ups of a second
 * large notification, see docs/coap.md).
 */
function depthsOf(q: unknown): unknown {
  if (q === undefined || q === null) return null;
  const classes = (q as { classes?: unknown }).classes;
  if (typeof classes !== 'object' || classes === null) return q;
  const out: Record<string, unknown> = {};
  for (const [name, c] of Object.entries(classes)) out[name] = (c as { depth?: unknown }).depth ?? c;
  return out;
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
      uplink: api.providers.uplink?.() ?? { state: 'not configured' },
      queues: depthsOf(api.providers.queues?.()),
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

  const putConfig = (payloadText: string, contentFormat: number | undefined): CoapReply => {
    const path = ctx.configPath;
    if (!path) return text('5.01', 'the gateway was started without a config file; nothing to write');
    if (contentFormat !== undefined && contentFormat !== 0 && contentFormat !== 50) {
      return text('4.15', 'send the YAML (or JSON) config as text/plain (0) or application/json (50)');
    }
    if (payloadText.length > MAX_CONFIG_BYTES) return text('4.13', `config larger than ${MAX_CONFIG_BYTES} bytes`);
    let next;
    try {
      next = parseConfig(payloadText, 'PUT /mgmt/config');
    } catch (err) {
      if (err instanceof ConfigError) return json('4.00', { error: 'EGW_CONFIG_INVALID', errors: err.issues });
      throw err;
    }
    const placeholders = redactedPaths(next);
    if (placeholders.length > 0) {
      return json('4.00', {
        error: 'EGW_CONFIG_INVALID',
        errors: placeholders.map((p) => ({
          path: p,
          message: 'is "[redacted]" (from a GET); give the secret in full or with !env / !file',
        })),
      });
    }
    let backup: string | undefined;
    try {
      ({ backup } = writeFileAtomic(path, payloadText.endsWith('\n') ? payloadText : `${payloadText}\n`));
    } catch (err) {
      api.log.error(
        { err, file: path, code: 'EGW_MGMT_CONFIG_WRITE' },
        'writing the new configuration failed; the old file is intact',
      );
      return text(
        '5.00',
        `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'} (EGW_MGMT_CONFIG_WRITE)`,
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
    }
    api.current = next;
    if (live.includes('mgmt.status_min_interval_ms')) startTimer();
    api.restartRequired.clear();
    for (const p of restart) api.restartRequired.add(p);
    api.log.info({ applied: live, restartRequired: restart, file: path }, 'configuration changed over /mgmt/config');
    return json('2.04', { applied: live, restartRequired: restart, file: path, backup: backup ?? null });
  };

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
            api.providers.queues?.() ?? { enabled: false, classes: [], note: 'store-and-forward is not running' },
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
          json('2.05', api.providers.inspection?.() ?? { enabled: false, cameras: [] }),
        ),
      },
    },
    {
      path: '/mgmt/plugins',
      rt: 'edge.mgmt.plugins',
      ct: [50],
      methods: { GET: g('/mgmt/plugins', 'read', () => json('2.05', api.providers.plugins?.() ?? { plugins: [] })) },
    },
    {
      path: '/mgmt/ota',
      rt: 'edge.mgmt.ota',
      ct: [50],
      methods: {
        GET: g('/mgmt/ota', 'read', () =>
          json(
            '2.05',
            api.providers.ota?.state() ?? {
              enabled: false,
              current: ctx.version,
              note: 'OTA is not available in this build',
            },
          ),
        ),
        // POST ?action=check | apply (contract: "POST to check or apply").
        POST: g('/mgmt/ota', 'admin', async (req) => {
          const ota = api.providers.ota;
          if (!ota) return notBuilt('OTA');
          const action = req.query['action'] ?? 'check';
          if (action === 'check') return json('2.04', await ota.check());
          if (action === 'apply') return json('2.04', await ota.apply());
          return text('4.00', 'action must be check or apply');
        }),
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
