import type { ModbusRtuConfig, PollEntry } from './config.js';
import { encodeValue, type RegisterType } from './decode.js';

/** A validated write, ready for the bus (FC5 single coil, FC6 single register, FC16 multiple registers). */
export type WritePlan =
  | { unit: number; name: string; kind: 'coil'; address: number; value: boolean }
  | { unit: number; name: string; kind: 'registers'; address: number; words: number[] };

export type PlanResult = { ok: true; writes: WritePlan[] } | { ok: false; error: string };

export function slaveDeviceId(driverId: string, slave: { unit: number; device?: string }): string {
  return slave.device ?? `${driverId}-${slave.unit}`;
}

/**
 * Validates a command against the declared map: `{"set": {"<name>": value, ...}}`. Only entries
 * marked writable, holding registers or coils, values of the right kind within min/max and within
 * the register type after reversing scale/offset. All-or-nothing: one bad key refuses the command.
 */
export function planWrites(c: ModbusRtuConfig, deviceId: string, payload: unknown): PlanResult {
  const slave = c.slaves.find((s) => slaveDeviceId(c.id, s) === deviceId);
  if (!slave) return { ok: false, error: `no slave with device id ${deviceId}` };
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    return { ok: false, error: 'command must be a JSON object {"set": {...}}' };
  const set = (payload as Record<string, unknown>)['set'];
  if (typeof set !== 'object' || set === null || Array.isArray(set) || Object.keys(set).length === 0) {
    return { ok: false, error: 'command needs "set": {name: value, ...}' };
  }
  const writes: WritePlan[] = [];
  for (const [name, value] of Object.entries(set as Record<string, unknown>)) {
    const e = slave.poll.find((p) => p.name === name && p.count === 1);
    if (!e) return { ok: false, error: `${name}: not in the poll map of ${deviceId} (or has count > 1)` };
    if (!e.writable) return { ok: false, error: `${name}: not writable (set writable: true in the config)` };
    const r = planOne(slave.unit, e, value);
    if (typeof r === 'string') return { ok: false, error: `${name}: ${r}` };
    writes.push(r);
  }
  return { ok: true, writes };
}

function planOne(unit: number, e: PollEntry, value: unknown): WritePlan | string {
  if (e.function === 'coil') {
    if (typeof value !== 'boolean') return 'a coil takes true or false';
    return { unit, name: e.name, kind: 'coil', address: e.address, value };
  }
  if (e.function !== 'holding') return `${e.function} ${e.function === 'input' ? 'registers' : 'inputs'} are read-only`;
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'a register takes a finite number';
  if (e.min !== undefined && value < e.min) return `${value} is below min ${e.min}`;
  if (e.max !== undefined && value > e.max) return `${value} is above max ${e.max}`;
  if (e.type === 'bool') return 'type bool applies to coils and discrete inputs only';
  const raw = (value - e.offset) / e.scale;
  try {
    return {
      unit,
      name: e.name,
      kind: 'registers',
      address: e.address,
      words: encodeValue(raw, e.type as RegisterType, e.word_order, e.byte_order),
    };
  } catch (err) {
    return (err as Error).message;
  }
}
