import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../../src/log/logger.js';
import { openDatabase } from '../../../src/store/db.js';
import { AuditLog } from '../../../src/mgmt/audit.js';
import type { ConfigApplyResult, ConfigOrigin, ConfigResource } from '../../../src/mgmt/registry.js';
import { DownlinkStore } from '../../../src/uplink/downlink-store.js';
import { prefixDownlink } from '../../../src/uplink/profiles/mqtt.js';
import { Twin } from '../../../src/uplink/twin.js';
import { readingsToJson } from '../../../src/uplink/formats.js';

const log = createLogger({ level: 'silent' });
const P = 'edge/gw1';

/** A config resource that keeps the "running" config as text and refuses any with "bad" in it. */
class FakeConfig implements ConfigResource {
  running = 'file';
  private readonly fns = new Set<(o: ConfigOrigin) => void>();
  apply(text: string, origin: ConfigOrigin): ConfigApplyResult {
    if (text.includes('bad'))
      return {
        ok: false,
        status: '4.00',
        error: 'EGW_CONFIG_INVALID',
        errors: [{ path: 'broker.port', message: 'must be <= 65535' }],
      };
    this.running = text;
    for (const f of this.fns) f(origin);
    return { ok: true, applied: ['gateway.log_level'], restartRequired: [], file: 'x', backup: null };
  }
  onApplied(fn: (o: ConfigOrigin) => void) {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  hash() {
    return this.running.length.toString(16);
  }
}

function rig() {
  const dir = mkdtempSync(join(tmpdir(), 'egw-twin-'));
  const db = openDatabase({ path: join(dir, 'gw.db'), durability: 'normal' });
  const config = new FakeConfig();
  const sent: { topic: string; doc: Record<string, unknown>; retain: boolean }[] = [];
  const make = () =>
    new Twin({
      replies: prefixDownlink(P).replies,
      sendState: async (doc) => void sent.push({ topic: `${P}/state`, doc, retain: true }),
      store: new DownlinkStore(db, 100),
      log,
      audit: new AuditLog(db, 100),
      intervalMs: 1000,
      send: async (topic, payload, o) =>
        void sent.push({ topic, doc: JSON.parse(payload) as Record<string, unknown>, retain: o.retain ?? false }),
      sources: {
        gatewayId: 'gw1',
        version: '1.2.3',
        services: () => ({ uplink: 'online' }),
        uplink: () => ({ state: 'online', url: 'mqtt://x' }),
        ota: () => null,
        plugins: () => null,
        config: () => config,
      },
    });
  const twin = make();
  twin.start();
  const reported = () => sent.filter((s) => s.topic === `${P}/config/reported`).map((s) => s.doc);
  return {
    twin,
    make,
    config,
    sent,
    reported,
    close: () => {
      twin.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const desired = (v: unknown, config: unknown = { gateway: { log_level: 'debug' } }) =>
  Buffer.from(JSON.stringify({ version: v, config }));

describe('twin: desired config and the conflict rule', () => {
  it('a desired config with an error is refused with every error reported (retained), nothing applied', async () => {
    const r = rig();
    try {
      await r.twin.desired(desired(1, { bad: true }));
      const rep = r.reported()[0]!;
      assert.equal(rep['status'], 'refused');
      assert.deepEqual(rep['errors'], [{ path: 'broker.port', message: 'must be <= 65535' }]);
      assert.equal(r.config.running, 'file');
      assert.ok(r.sent.every((s) => s.retain));
      await r.twin.desired(Buffer.from('{"version":'));
      await r.twin.desired(Buffer.from('{"config":{}}'));
      await r.twin.desired(desired(2, 'not an object'));
      const statuses = r.reported().map((d) => [d['status'], (d['errors'] as { path: string }[])[0]?.path]);
      assert.deepEqual(statuses.slice(1), [
        ['refused', ''],
        ['refused', 'version'],
        ['refused', 'config'],
      ]);
    } finally {
      r.close();
    }
  });

  it('a profile-versioned desired document (Azure twin: {"config"} with $version beside it) follows the same rule', async () => {
    const r = rig();
    try {
      const doc = Buffer.from(JSON.stringify({ config: { a: 'twin-7' } }));
      await r.twin.desired(doc, 7);
      assert.equal(r.reported()[0]!['status'], 'applied');
      assert.equal(r.reported()[0]!['version'], 7);
      assert.match(r.config.running, /twin-7/);
      await r.twin.desired(doc, 7); // the twin GET after a reconnect: the same version again
      assert.equal(r.reported()[1]!['status'], 'current');
      await r.twin.desired(Buffer.from(JSON.stringify({ config: { a: 'old' } })), 6);
      assert.equal(r.reported()[2]!['status'], 'stale');
      assert.match(r.config.running, /twin-7/);
      // A version in the document itself wins over the profile's.
      await r.twin.desired(desired(9, { a: 'doc-9' }), 8);
      assert.equal(r.reported()[3]!['version'], 9);
    } finally {
      r.close();
    }
  });

  it('a local edit after the last desired version wins over that version redelivered', async () => {
    const r = rig();
    try {
      await r.twin.desired(desired(1, { a: 'cloud-1' }));
      assert.equal(r.reported()[0]!['status'], 'applied');
      assert.match(r.config.running, /cloud-1/);
      r.config.apply('{"a":"local edit"}', 'local'); // PUT /mgmt/config
      assert.deepEqual({ ...r.twin.configSync }, { revision: 2, origin: 'local', desiredVersion: 1 });
      // The retained v1 comes again at the next reconnect: it does not undo the local edit.
      await r.twin.desired(desired(1, { a: 'cloud-1' }));
      assert.equal(r.reported()[1]!['status'], 'overridden');
      assert.match(r.config.running, /local edit/);
      // An older one neither.
      await r.twin.desired(desired(0.5));
      await r.twin.desired(desired(0));
      assert.match(r.config.running, /local edit/);
    } finally {
      r.close();
    }
  });

  it('a newer desired version wins over the local edit; the record survives a restart', async () => {
    const r = rig();
    try {
      await r.twin.desired(desired(1, { a: 'cloud-1' }));
      r.config.apply('{"a":"local edit"}', 'local');
      await r.twin.desired(desired(2, { a: 'cloud-2' }));
      assert.equal(r.reported()[1]!['status'], 'applied');
      assert.match(r.config.running, /cloud-2/);
      assert.deepEqual({ ...r.twin.configSync }, { revision: 3, origin: 'cloud', desiredVersion: 2 });
      // A refused version is consumed: the cloud sends a new one rather than the gateway retrying.
      await r.twin.desired(desired(3, { bad: 1 }));
      assert.equal(r.twin.configSync.desiredVersion, 3);
      const again = r.make();
      assert.deepEqual({ ...again.configSync }, { revision: 3, origin: 'cloud', desiredVersion: 3 });
      await again.desired(desired(2, { a: 'old' }));
      assert.equal(r.reported().at(-1)!['status'], 'stale');
      assert.match(r.config.running, /cloud-2/);
    } finally {
      r.close();
    }
  });

  it('the reported state is published (retained) only when it changed', async () => {
    const r = rig();
    try {
      await r.twin.publishState();
      await r.twin.publishState();
      const states = () => r.sent.filter((s) => s.topic === `${P}/state`);
      assert.equal(states().length, 1);
      const s = states()[0]!.doc;
      assert.equal(s['schema'], 1);
      assert.equal(s['version'], '1.2.3');
      assert.deepEqual(Object.keys(s), [
        'schema',
        'gatewayId',
        'version',
        'config',
        'services',
        'uplink',
        'ota',
        'plugins',
      ]);
      r.config.apply('{"x":1}', 'local');
      await r.twin.publishState();
      assert.equal(states().length, 2);
      assert.equal((states()[1]!.doc['config'] as { origin: string }).origin, 'local');
    } finally {
      r.close();
    }
  });
});

describe('JSON uplink payload', () => {
  it('one shape for one reading and a batch (the profiles’ too): id, topic, readings; plain JSON.parse reads both', () => {
    const one = JSON.parse(
      readingsToJson('m1', 'sensors/d1/data', [
        { deviceId: 'd1', ts: 1000, values: { t: 21.5, ok: true, s: 'x', n: null }, quality: 'good', source: 'mqtt' },
      ]),
    ) as Record<string, unknown>;
    assert.deepEqual(one, {
      id: 'm1',
      topic: 'sensors/d1/data',
      readings: [{ deviceId: 'd1', ts: 1000, values: { t: 21.5, ok: true, s: 'x', n: null }, quality: 'good' }],
    });
    const batch = JSON.parse(
      readingsToJson('m2', 'sensors/d1/data', [
        { deviceId: 'd1', ts: 1, values: { t: 1 }, quality: 'good', source: 'mqtt', units: { t: '°C' } },
        { deviceId: 'd1', ts: 2, values: { t: 2 }, quality: 'bad', source: 'mqtt' },
      ]),
    ) as Record<string, unknown>;
    assert.deepEqual(batch, {
      id: 'm2',
      topic: 'sensors/d1/data',
      readings: [
        { deviceId: 'd1', ts: 1, values: { t: 1 }, quality: 'good', units: { t: '°C' } },
        { deviceId: 'd1', ts: 2, values: { t: 2 }, quality: 'bad' },
      ],
    });
  });
});

describe('payload format per topic', () => {
  it('payload_format_rules: first matching filter wins, else the default; non-reading messages pass unchanged', async () => {
    const { formatFor } = await import('../../../src/uplink/topics.js');
    const { jsonFormat } = await import('../../../src/uplink/formats.js');
    const pick = formatFor(
      [
        { topic: 'sensors/pump-1/data', format: 'json' },
        { topic: 'sensors/#', format: 'codec' },
      ],
      'json',
    );
    assert.equal(pick('sensors/pump-1/data'), 'json');
    assert.equal(pick('sensors/pump-2/data'), 'codec');
    assert.equal(pick('alerts/x'), 'json');
    const alert = {
      id: 'm9',
      cls: 0,
      topic: 'alerts/x',
      payload: Buffer.from('{"level":"CRITICAL"}'),
      contentType: 'application/json',
      readings: 0,
      bytes: 0,
      t: 0,
      ttl: 0,
      seqs: [],
      claim: undefined,
      claimed: true,
    };
    const enc = jsonFormat.encode(alert);
    assert.equal(enc.payload.toString(), '{"level":"CRITICAL"}');
    assert.equal(enc.contentType, 'application/json');
  });
});
