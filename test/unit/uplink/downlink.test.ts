import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../../src/log/logger.js';
import { openDatabase, type Db } from '../../../src/store/db.js';
import { AuditLog } from '../../../src/mgmt/audit.js';
import { Downlink, type GatewayRunner } from '../../../src/uplink/downlink.js';
import { DownlinkPolicy, expired, parseCommand } from '../../../src/uplink/downlink-parse.js';
import { DownlinkStore } from '../../../src/uplink/downlink-store.js';
import { prefixDownlink } from '../../../src/uplink/profiles/mqtt.js';
import { Twin } from '../../../src/uplink/twin.js';
import type { DownlinkProps } from '../../../src/uplink/profiles/types.js';
import type { CommandResult } from '../../../src/commands/router.js';

const log = createLogger({ level: 'silent' });
const P = 'edge/gw1';

interface Sent {
  topic: string;
  doc: Record<string, unknown>;
  corr: Buffer | undefined;
}

function rig(allow: string[], opts: { db?: Db; online?: () => boolean; maxBytes?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-downlink-'));
  const db = opts.db ?? openDatabase({ path: join(dir, 'gw.db'), durability: 'normal' });
  const store = new DownlinkStore(db, 1000);
  const audit = new AuditLog(db, 1000);
  const sent: Sent[] = [];
  const executed: { deviceId: string; body: unknown }[] = [];
  const local: { deviceId: string; payload: string }[] = [];
  const gatewayRuns: string[] = [];
  const gateway: GatewayRunner = async (name) => {
    gatewayRuns.push(name);
    return { ok: true, result: { did: name } };
  };
  // The mqtt profile's parsing (what Uplink.onDownlink hands the pipeline).
  const down = prefixDownlink(P);
  const send = async (topic: string, payload: string, o: { correlationData?: Buffer }) => {
    if (opts.online && !opts.online()) throw new Error('offline');
    sent.push({ topic, doc: JSON.parse(payload) as Record<string, unknown>, corr: o.correlationData });
  };
  // The real twin: a refused desired document is reported (and kept until sent) by it.
  const twin = new Twin({
    replies: down.replies,
    sendState: async () => undefined,
    store,
    log,
    audit,
    send,
    intervalMs: 1000,
    sources: {
      gatewayId: 'gw',
      version: '0',
      services: () => ({}),
      uplink: () => ({ state: 'online', url: '' }),
      ota: () => null,
      plugins: () => null,
      config: () => undefined,
    },
  });
  const dl = new Downlink({
    config: {
      enabled: true,
      allow,
      session_expiry_s: 60,
      max_command_bytes: opts.maxBytes ?? 1024,
      command_max_age_s: 60,
      dedupe_max: 1000,
      state_interval_ms: 1000,
    },
    replies: down.replies,
    log,
    store,
    audit,
    gateway,
    desired: async () => undefined,
    desiredDenied: (code, error) => twin.denied(code, error),
    devices: {
      execute: async (deviceId, body): Promise<CommandResult | null> => {
        if (deviceId !== 'boiler') return null;
        executed.push({ deviceId, body });
        return { ok: true };
      },
      deliverLocal: async (deviceId, payload) => void local.push({ deviceId, payload: payload.toString() }),
    },
    send,
  });
  const handle = async (topic: string, payload: Buffer, props: DownlinkProps): Promise<void> => {
    const d = down.inbound(topic, payload);
    if (d) await dl.handle({ ...d, props });
  };
  return {
    dl,
    twin,
    handle,
    db,
    sent,
    executed,
    local,
    gatewayRuns,
    audit,
    store,
    close: () => {
      if (!opts.db) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('downlink: parse and policy (pure)', () => {
  it('refuses malformed, oversized, id-less and badly typed commands with a reason', () => {
    const bad = (payload: Buffer, props = {}) => {
      const r = parseCommand(payload, props, 100);
      assert.equal(r.ok, false);
      return r.ok ? '' : r.refusal.error;
    };
    assert.match(bad(buf('{"id": "a",')), /not JSON/);
    assert.match(bad(buf('[1,2]')), /JSON object/);
    assert.match(bad(buf({ id: 'a', pad: 'x'.repeat(200) })), /exceeds 100 B/);
    assert.match(bad(buf({ set: { a: 1 } })), /needs an "id"/);
    assert.match(bad(buf({ id: 'a b/#' })), /"id" must be/);
    assert.match(bad(buf({ id: 7 })), /"id" must be/);
    assert.match(bad(buf({ id: 'a', ts: 'yesterday' })), /"ts" must be a number/);
    assert.match(bad(buf({ id: 'a' }), { correlationData: Buffer.alloc(200) }), /correlation data/);
    const ok = parseCommand(buf({ set: {} }), { correlationData: Buffer.from('abc') }, 100);
    assert.ok(ok.ok && ok.value.key === 'c:616263' && ok.value.id === '616263');
  });

  it('allow list: nothing by default; device ids, prefixes, "*", gateway names', () => {
    const none = new DownlinkPolicy([]);
    assert.ok(none.device('boiler'));
    assert.ok(none.gatewayCommand('restart'));
    const p = new DownlinkPolicy(['device:boiler', 'device:line1-*', 'config.apply']);
    assert.equal(p.device('boiler'), undefined);
    assert.equal(p.device('line1-pump'), undefined);
    assert.equal(p.device('line2-pump')?.code, 'EGW_DOWNLINK_DENIED');
    assert.equal(p.gatewayCommand('config.apply'), undefined);
    assert.equal(p.gatewayCommand('restart')?.code, 'EGW_DOWNLINK_DENIED');
    assert.equal(new DownlinkPolicy(['device:*']).device('anything'), undefined);
  });

  it('a command older than command_max_age_s is expired; no ts or a clock in 1970 is not', () => {
    assert.equal(expired(undefined, 60, 1e12), undefined);
    assert.equal(expired(1e12 - 61_000, 60, 1e12)?.code, 'EGW_DOWNLINK_EXPIRED');
    assert.equal(expired(1e12 - 59_000, 60, 1e12), undefined);
    assert.equal(expired(1e12, 60, 1000), undefined);
    assert.equal(expired(0, 0, 1e12), undefined);
  });
});

describe('downlink: commands', () => {
  it('a device command runs once; a redelivery (same id) gets the stored result, not a second run', async () => {
    const r = rig(['device:*']);
    try {
      const cmd = buf({ id: 'c1', set: { setpoint: 40 } });
      await r.handle(`${P}/commands/boiler`, cmd, {});
      await r.handle(`${P}/commands/boiler`, cmd, {});
      await new Promise((res) => setImmediate(res));
      assert.equal(r.executed.length, 1);
      assert.equal(r.sent.length, 2);
      assert.deepEqual(r.sent[0]!.doc, r.sent[1]!.doc);
      assert.equal(r.sent[0]!.topic, `${P}/devices/boiler/command_result`);
      assert.equal(r.sent[0]!.doc['status'], 'done');
      const audit = r.audit.recent(10).map((e) => e.outcome);
      assert.deepEqual(audit, ['duplicate', 'ok']);
    } finally {
      r.close();
    }
  });

  it('a device no driver owns gets the command on the local commands/{id}; result "delivered"', async () => {
    const r = rig(['device:lamp-*']);
    try {
      await r.handle(`${P}/commands/lamp-1`, buf({ id: 'x1', on: true }), {});
      assert.deepEqual(r.local, [{ deviceId: 'lamp-1', payload: '{"id":"x1","on":true}' }]);
      assert.equal(r.sent[0]!.doc['status'], 'delivered');
    } finally {
      r.close();
    }
  });

  it('hostile input: bad device id, not allowed, malformed, oversized, unknown gateway command: refused, audited, never run', async () => {
    const r = rig(['device:boiler']);
    try {
      await r.handle(`${P}/commands/../etc`, buf({ id: 'a' }), {});
      await r.handle(`${P}/commands/pump`, buf({ id: 'b' }), {});
      await r.handle(`${P}/commands/boiler`, buf('{"id":'), {});
      await r.handle(`${P}/commands/boiler`, buf({ id: 'd', pad: 'x'.repeat(2000) }), {});
      await r.handle(`${P}/gateway/commands`, buf({ id: 'e', command: 'rm -rf' }), {});
      await r.handle(`${P}/gateway/commands`, buf({ id: 'f', command: 'restart' }), {});
      await r.handle(`${P}/commands/boiler`, buf({ id: 'g', ts: Date.now() - 3_600_000, set: { a: 1 } }), {});
      assert.equal(r.executed.length, 0);
      assert.deepEqual(r.gatewayRuns, []);
      const codes = r.sent.map((s) => s.doc['code']);
      assert.deepEqual(codes, [
        'EGW_DOWNLINK_INVALID',
        'EGW_DOWNLINK_DENIED',
        'EGW_DOWNLINK_INVALID',
        'EGW_DOWNLINK_INVALID',
        'EGW_DOWNLINK_INVALID',
        'EGW_DOWNLINK_DENIED',
        'EGW_DOWNLINK_EXPIRED',
      ]);
      assert.ok(r.sent.every((s) => s.doc['ok'] === false && typeof s.doc['error'] === 'string'));
      assert.equal(r.sent[0]!.topic, `${P}/gateway/command_result`);
      const outcomes = r.audit
        .recent(20)
        .map((e) => e.outcome)
        .reverse();
      assert.deepEqual(outcomes, ['invalid', 'denied', 'invalid', 'invalid', 'invalid', 'denied', 'expired']);
      // An expired command is remembered: its redelivery is not executed either.
      await r.handle(`${P}/commands/boiler`, buf({ id: 'g', ts: Date.now() - 3_600_000, set: { a: 1 } }), {});
      assert.equal(r.executed.length, 0);
    } finally {
      r.close();
    }
  });

  it('desired config without config.desired in allow: refused on config/reported, audited, not applied', async () => {
    const r = rig(['device:*']);
    try {
      await r.handle(`${P}/config/desired`, buf({ version: 1, config: {} }), {});
      assert.equal(r.sent[0]!.topic, `${P}/config/reported`);
      assert.equal(r.sent[0]!.doc['status'], 'refused');
      assert.equal(r.sent[0]!.doc['code'], 'EGW_DOWNLINK_DENIED');
      assert.equal(r.audit.recent(1)[0]!.outcome, 'denied');
    } finally {
      r.close();
    }
  });

  it('a desired-config refusal that could not be sent (link down) is sent at the next connect', async () => {
    let online = false;
    const r = rig(['device:*'], { online: () => online });
    try {
      await r.handle(`${P}/config/desired`, buf({ version: 1, config: {} }), {});
      assert.equal(r.sent.length, 0, 'offline: nothing sent');
      online = true;
      await r.twin.onConnect();
      const rep = r.sent.filter((x) => x.topic === `${P}/config/reported`);
      assert.equal(rep.length, 1);
      assert.equal(rep[0]!.doc['status'], 'refused');
      assert.equal(rep[0]!.doc['code'], 'EGW_DOWNLINK_DENIED');
    } finally {
      r.close();
    }
  });

  it('a gateway command answers on the MQTT 5 response topic with the correlation data', async () => {
    const r = rig(['config.apply']);
    try {
      const corr = Buffer.from([1, 2, 3]);
      await r.handle(`${P}/gateway/commands`, buf({ command: 'config.apply', args: {} }), {
        responseTopic: 'cloud/replies/7',
        correlationData: corr,
      });
      assert.deepEqual(r.gatewayRuns, ['config.apply']);
      assert.equal(r.sent[0]!.topic, 'cloud/replies/7');
      assert.deepEqual(r.sent[0]!.corr, corr);
      assert.equal(r.sent[0]!.doc['ok'], true);
      assert.equal(r.sent[0]!.doc['id'], '010203');
      // A response topic with a wildcard is not one we publish on [MQTT-3.3.2-14]: the default topic instead.
      await r.handle(`${P}/gateway/commands`, buf({ id: 'k2', command: 'config.apply' }), { responseTopic: 'x/#' });
      assert.equal(r.sent[1]!.topic, `${P}/gateway/command_result`);
    } finally {
      r.close();
    }
  });

  it('a result that could not be sent (offline) is sent after the next connect, once; a restart keeps the ids', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-downlink-db-'));
    const db = openDatabase({ path: join(dir, 'gw.db'), durability: 'normal' });
    let online = false;
    try {
      const a = rig(['device:*'], { db, online: () => online });
      await a.handle(`${P}/commands/boiler`, buf({ id: 'r1', set: { a: 1 } }), {});
      assert.equal(a.sent.length, 0);
      online = true;
      await a.dl.resendUnsent();
      await a.dl.resendUnsent();
      assert.equal(a.sent.length, 1);
      assert.equal(a.sent[0]!.doc['id'], 'r1');
      // "Restart": a new Downlink on the same database; the redelivered command is not run again.
      const b = rig(['device:*'], { db });
      await b.handle(`${P}/commands/boiler`, buf({ id: 'r1', set: { a: 1 } }), {});
      await new Promise((res) => setImmediate(res));
      assert.equal(b.executed.length, 0);
      assert.equal(b.sent[0]!.doc['status'], 'done');
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a command pending when the process died is reported "unknown" at the next start, never run again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-downlink-db-'));
    const db = openDatabase({ path: join(dir, 'gw.db'), durability: 'normal' });
    try {
      new DownlinkStore(db, 100).begin('d:boiler:i:z1', `${P}/devices/boiler/command_result`, undefined);
      const b = rig(['device:*'], { db });
      await b.dl.resendUnsent();
      assert.equal(b.sent[0]!.doc['status'], 'unknown');
      assert.equal(b.sent[0]!.doc['code'], 'EGW_DOWNLINK_INTERRUPTED');
      await b.handle(`${P}/commands/boiler`, buf({ id: 'z1', set: { a: 1 } }), {});
      assert.equal(b.executed.length, 0);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('uplink.downlink config', () => {
  it('off by default with nothing allowed; an unknown allow entry is a config error with its path', async () => {
    const { parseConfig } = await import('../../../src/config/load.js');
    const c = parseConfig('version: 1\n');
    assert.equal(c.uplink.downlink.enabled, false);
    assert.deepEqual(c.uplink.downlink.allow, []);
    assert.equal(c.uplink.payload_format, 'codec');
    assert.throws(
      () => parseConfig("version: 1\nuplink:\n  downlink:\n    allow: ['device:ok-1', 'reboot', 'device:bad id']\n"),
      /uplink\.downlink\.allow\[1\][\s\S]*uplink\.downlink\.allow\[2\]/,
    );
    assert.throws(() => parseConfig('version: 1\nuplink: { payload_format: xml }\n'), /uplink\.payload_format/);
  });
});
