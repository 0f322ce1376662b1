import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { planWrites } from '../../../src/drivers/modbus/commands.js';
import { ModbusRtuConfigSchema, type ModbusRtuConfig } from '../../../src/drivers/modbus/config.js';

const config = Value.Default(ModbusRtuConfigSchema, {
  type: 'modbus-rtu',
  id: 'plc',
  path: '/dev/null',
  slaves: [
    {
      unit: 1,
      device: 'boiler',
      poll: [
        { name: 'setpoint', address: 10, type: 'uint16', scale: 0.1, writable: true, max: 100 },
        { name: 'pump', function: 'coil', address: 0, writable: true },
        { name: 'temp', address: 0, type: 'float32' },
      ].map((p) => Value.Default(ModbusRtuConfigSchema.properties.slaves.items.properties.poll.items, p)),
    },
  ],
}) as ModbusRtuConfig;

test('modbus command planning refuses hostile and malformed payloads before anything goes on the bus', () => {
  const refused = (payload: unknown, re: RegExp) => {
    const r = planWrites(config, 'boiler', payload);
    assert.equal(r.ok, false, JSON.stringify(payload));
    assert.match((r as { error: string }).error, re);
  };
  refused(null, /JSON object/);
  refused([1, 2], /JSON object/);
  refused('set', /JSON object/);
  refused({}, /needs "set"/);
  refused({ set: [] }, /needs "set"/);
  refused({ set: {} }, /needs "set"/);
  refused(JSON.parse('{"set": {"__proto__": 1}}'), /not in the poll map/);
  refused({ set: { constructor: 1 } }, /not in the poll map/);
  refused({ set: { temp: 1 } }, /not writable/);
  refused({ set: { setpoint: Number.NaN } }, /finite number/);
  refused({ set: { setpoint: Infinity } }, /finite number/);
  refused({ set: { setpoint: '42' } }, /finite number/);
  refused({ set: { setpoint: 1e300 } }, /above max/);
  refused({ set: { setpoint: -1 } }, /uint16|range|below/);
  refused({ set: { pump: 1 } }, /true or false/);
  // One bad key refuses the whole command (all-or-nothing), however many good keys come first.
  const many: Record<string, unknown> = { setpoint: 1 };
  for (let i = 0; i < 10000; i++) many[`x${i}`] = i;
  refused({ set: many }, /not in the poll map/);
  assert.equal(planWrites(config, 'nobody', { set: { setpoint: 1 } }).ok, false);
  const ok = planWrites(config, 'boiler', { set: { setpoint: 42.5, pump: false } });
  assert.deepEqual(ok, {
    ok: true,
    writes: [
      { unit: 1, name: 'setpoint', kind: 'registers', address: 10, words: [425] },
      { unit: 1, name: 'pump', kind: 'coil', address: 0, value: false },
    ],
  });
});
