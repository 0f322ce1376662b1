import { Counter } from 'prom-client';
import type { ModuleContext } from '../capability/types.js';
import type { Service } from '../lifecycle/service.js';
import { AuditLog } from '../mgmt/audit.js';
import type { Db } from '../store/db.js';
import { Downlink, type AuditSink, type CloudSend, type GatewayRunner } from './downlink.js';
import { DownlinkStore } from './downlink-store.js';
import { Twin } from './twin.js';
import type { Uplink } from './uplink.js';

/**
 * Wires the downlink and the twin (uplink.downlink.enabled) to the gateway's seams: the command
 * router, the local broker, the /mgmt registry (config, OTA, plugins), restart. Seams are read when
 * a command arrives, not now (the modules after the uplink are not built yet). Whatever the cloud
 * profile, commands come in through `Uplink.onDownlink` (the profile parsed them) and results and
 * state go out through the profile (`commandResult`, `reportState`) with `Uplink.send`.
 */
export function buildDownlink(ctx: ModuleContext, db: Db, up: Uplink): Service {
  const uplink = () => up;
  const profile = up.profile;
  const { config } = ctx;
  const d = config.uplink.downlink;
  const log = ctx.log.child({ mod: 'downlink' });
  const store = new DownlinkStore(db, d.dedupe_max);
  // The /mgmt audit table: cloud commands sit beside the CoAP writes in GET /mgmt/audit; every
  // audited command also counts in edge_gateway_downlink_commands_total{kind, outcome}.
  const table = new AuditLog(db, config.mgmt.audit_max_rows);
  const counter = new Counter({
    name: 'edge_gateway_downlink_commands_total',
    help: 'Commands and desired configs from the cloud, by kind (device, gateway, desired) and outcome (ok, failed, denied, invalid, expired, duplicate, ignored).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [ctx.metrics],
  });
  const audit: AuditSink = {
    record(e) {
      table.record(e);
      const kind = e.resource.startsWith('commands/')
        ? 'device'
        : e.resource === 'config/desired'
          ? 'desired'
          : 'gateway';
      counter.inc({ kind, outcome: e.outcome });
    },
  };
  // Offline: refused before the profile shapes the PUBLISH (a Sparkplug NDATA takes a seq number,
  // and a gap in seq makes the host application ask for a rebirth).
  const offline = () => Promise.reject(new Error('uplink offline'));
  const send: CloudSend = (to, json, o) => {
    if (!up.isOnline) return offline();
    let w;
    try {
      w = profile.commandResult(to, json, o);
    } catch (err) {
      return Promise.reject(err as Error); // over the profile's limits (e.g. an AWS topic): kept unsent
    }
    return up.send(w);
  };
  const twin = new Twin({
    replies: profile.replies,
    sendState: (doc, msgId) => (up.isOnline ? up.send(profile.reportState(doc, msgId)) : offline()),
    store,
    log,
    audit,
    send,
    intervalMs: d.state_interval_ms,
    sources: {
      gatewayId: config.gateway.id,
      version: ctx.version,
      services: () => {
        const out: Record<string, string> = {};
        for (const [name, s] of Object.entries(ctx.health().services)) out[name] = s.state;
        return out;
      },
      uplink: () => ({ state: uplink().isOnline ? 'online' : 'offline', url: config.uplink.url }),
      ota: () => ctx.mgmt.get('ota')?.state() ?? null,
      plugins: () => ctx.mgmt.get('plugins')?.() ?? null,
      config: () => ctx.mgmt.get('config'),
    },
  });
  const notBuilt = (what: string) => ({ ok: false, error: `${what} is not available in this build` });
  const gateway: GatewayRunner = async (name, args) => {
    switch (name) {
      case 'ota.check':
      case 'ota.apply': {
        const ota = ctx.mgmt.get('ota');
        if (!ota) return notBuilt('OTA');
        return { ok: true, result: name === 'ota.check' ? await ota.check() : await ota.apply() };
      }
      case 'config.apply': {
        const c = ctx.mgmt.get('config');
        if (!c) return notBuilt('config apply (mgmt.enabled is off)');
        const cfg = args['config'];
        const yaml = args['yaml'];
        const text =
          typeof yaml === 'string'
            ? yaml
            : typeof cfg === 'object' && cfg !== null && !Array.isArray(cfg)
              ? JSON.stringify(cfg)
              : undefined;
        if (text === undefined) return { ok: false, error: 'args.config (object) or args.yaml (string) is required' };
        const r = c.apply(text, 'cloud');
        if (!r.ok) return { ok: false, error: `${r.error}: config refused`, result: { errors: r.errors } };
        twin.noteCloudApply();
        void twin.publishState();
        return { ok: true, result: { applied: r.applied, restartRequired: r.restartRequired } };
      }
      case 'config.desired':
        return { ok: false, error: 'desired config goes to the config/desired topic, not as a command' };
      case 'uplink.reconnect':
        return { ok: true, result: { state: 'reconnecting' }, after: () => uplink().forceReconnect() };
      case 'restart':
        return {
          ok: true,
          result: { state: 'restarting' },
          after: () => ctx.requestRestart('requested by the cloud (gateway command restart)'),
        };
      case 'plugins.reload': {
        const reload = ctx.mgmt.get('pluginsReload');
        if (!reload) return notBuilt('plugins');
        return { ok: true, result: await reload() };
      }
    }
  };
  const downlink = new Downlink({
    config: d,
    replies: profile.replies,
    log,
    store,
    audit,
    send,
    gateway,
    desired: (payload, version) => twin.desired(payload, version),
    desiredDenied: (code, error) => twin.denied(code, error),
    devices: {
      execute: (id, body) => ctx.commands.execute(id, body),
      deliverLocal: async (id, payload) => {
        const broker = ctx.provided.broker;
        if (!broker) throw new Error('no driver owns this device and the local broker is off');
        await broker.publish({ topic: `commands/${id}`, payload, qos: 1, retain: false });
      },
    },
  });
  up.onConnected(() => {
    void twin.onConnect();
    void downlink.resendUnsent();
  });
  up.onDownlink((m) => {
    downlink.handle(m).catch((err: unknown) => log.error({ err, kind: m.kind }, 'downlink handler failed'));
  });
  const service: Service = {
    name: 'downlink',
    start: async () => twin.start(),
    stop: async () => twin.stop(),
    health: () => ({
      ok: true,
      state: 'enabled',
      detail: { ...downlink.counters, allow: d.allow.length, config: { ...twin.configSync } },
    }),
  };
  return service;
}
