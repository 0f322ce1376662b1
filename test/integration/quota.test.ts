import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { freePort } from './uplink-cloud.js';
import { gatewayYaml, Publisher } from './uplink-scenarios.js';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

test('quota smaller than the backlog (cloud unreachable): LOW evicted first and counted, no CRITICAL row touched', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-quota-'));
  const brokerPort = await freePort();
  const deadCloud = `mqtt://127.0.0.1:${await freePort()}`; // nothing listens: the uplink stays offline
  const yaml = gatewayYaml(
    join(dir, 'data'),
    brokerPort,
    deadCloud,
    [
      'queue:',
      '  outbox: { max_bytes: 65536 }',
      '  rules:',
      '    - { topic: "sensors/alarm-1/data", class: CRITICAL }',
      '    - { topic: "sensors/bulk-1/data", class: LOW }',
    ].join('\n'),
  ).replace('metrics: { enabled: false }', 'metrics: { enabled: true, port: 0 }');
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, yaml);
  const gw = GatewayProcess.start(configPath);
  t.after(async () => {
    await gw.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await gw.ready(20000);
  const metricsPort = (await gw.waitForLog((l) => l.msg === 'metrics listening'))['port'] as number;
  const url = `mqtt://127.0.0.1:${brokerPort}`;
  const crit = new Publisher(url, 'alarm-1');
  const mid = new Publisher(url, 'plain-1');
  const low = new Publisher(url, 'bulk-1');
  t.after(() => Promise.all([crit.close(), mid.close(), low.close()]).then(() => undefined));
  await crit.run(200, 20000);
  await mid.run(200, 20000);
  // Readings that wait for the same commit share a row (~11 B per reading stored): 15,000 overflow 64 KiB.
  await low.run(15000, 60000);
  assert.equal(crit.acked.size + mid.acked.size + low.acked.size, 15400);
  await new Promise((r) => setTimeout(r, 200));
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const lowEvicted = metric(text, 'edge_gateway_queue_dropped_total', 'class="LOW",reason="quota"');
  const critEvicted = metric(text, 'edge_gateway_queue_dropped_total', 'class="CRITICAL",reason="quota"');
  const midEvicted = metric(text, 'edge_gateway_queue_dropped_total', 'class="MEDIUM",reason="quota"');
  const bytes = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'].reduce(
    (a, c) => a + metric(text, 'edge_gateway_queue_bytes', `class="${c}"`),
    0,
  );
  await gw.stop('SIGTERM');
  const db = new Database(join(dir, 'data', 'gateway.db'), { readonly: true });
  const rows = Object.fromEntries(
    (db.prepare('SELECT cls, sum(n) AS n FROM outbox GROUP BY cls').all() as { cls: number; n: number }[]).map((r) => [
      r.cls,
      r.n,
    ]),
  );
  db.close();
  t.diagnostic(
    `kept CRITICAL ${rows[0]} MEDIUM ${rows[2]} LOW ${rows[3] ?? 0}; evicted LOW ${lowEvicted}, MEDIUM ${midEvicted}, CRITICAL ${critEvicted}; stored ${bytes} B of 65536`,
  );
  assert.equal(rows[0], 200, 'every CRITICAL reading kept');
  assert.equal(rows[2], 200, 'MEDIUM untouched while LOW had rows');
  assert.equal(critEvicted, 0);
  assert.equal(midEvicted, 0);
  assert.ok(lowEvicted > 0);
  assert.equal(lowEvicted + (rows[3] ?? 0), 15000, 'every LOW reading is either kept or counted as evicted');
  assert.ok(bytes <= 65536);
});
