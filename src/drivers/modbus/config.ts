import { Type, type Static } from '@sinclair/typebox';
import { commonDriverKeys, serialPortKeys } from '../common-config.js';

const Order = (what: string) =>
  Type.Union([Type.Literal('big'), Type.Literal('little')], {
    default: 'big',
    description: `${what} order. Modbus itself is big-endian per register (Modbus Application Protocol v1.1b3 §4.2); many devices put the low word of 32-bit values first ("little" word order).`,
  });

/** One entry of a slave's poll map (Modbus Application Protocol v1.1b3 §6.1–6.4 for the read functions). */
export const PollEntrySchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,59}$',
      description: 'Value name; with count > 1, name.0, name.1...',
    }),
    function: Type.Union(
      [Type.Literal('holding'), Type.Literal('input'), Type.Literal('coil'), Type.Literal('discrete')],
      {
        default: 'holding',
        description: 'holding (FC3), input (FC4) registers; coil (FC1), discrete (FC2) inputs.',
      },
    ),
    address: Type.Integer({
      minimum: 0,
      maximum: 65535,
      description: 'Zero-based PDU address (register 40001 is address 0).',
    }),
    count: Type.Integer({ minimum: 1, maximum: 60, default: 1, description: 'Consecutive values of this type.' }),
    type: Type.Union(
      [
        Type.Literal('int16'),
        Type.Literal('uint16'),
        Type.Literal('int32'),
        Type.Literal('uint32'),
        Type.Literal('float32'),
        Type.Literal('bool'),
      ],
      { default: 'uint16', description: 'Register interpretation; coils and discrete inputs are always bool.' },
    ),
    word_order: Order('Word (register)'),
    byte_order: Order('Byte-within-register'),
    scale: Type.Number({ default: 1, description: 'value = raw * scale + offset.' }),
    offset: Type.Number({ default: 0 }),
    unit: Type.Optional(Type.String({ maxLength: 32 })),
    interval_ms: Type.Integer({ minimum: 50, maximum: 86400000, default: 1000, description: 'Poll interval.' }),
    writable: Type.Boolean({
      default: false,
      description: 'Allow writes from commands/{device} (holding registers and coils only).',
    }),
    min: Type.Optional(Type.Number({ description: 'Smallest value a command may write (engineering units).' })),
    max: Type.Optional(Type.Number({ description: 'Largest value a command may write (engineering units).' })),
  },
  { additionalProperties: false },
);
export type PollEntry = Static<typeof PollEntrySchema>;

export const SlaveSchema = Type.Object(
  {
    unit: Type.Integer({
      minimum: 1,
      maximum: 247,
      description: 'Slave (unit) address (Modbus over Serial Line v1.02 §2.2).',
    }),
    device: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$',
        description: 'Device id of its readings; default {driver id}-{unit}.',
      }),
    ),
    poll: Type.Array(PollEntrySchema, { minItems: 1, maxItems: 256 }),
  },
  { additionalProperties: false },
);
export type SlaveConfig = Static<typeof SlaveSchema>;

export const ModbusRtuConfigSchema = Type.Object(
  {
    ...commonDriverKeys('modbus-rtu'),
    ...serialPortKeys(9600),
    timeout_ms: Type.Integer({ minimum: 20, maximum: 60000, default: 500, description: 'Answer timeout per request.' }),
    retries: Type.Integer({
      minimum: 0,
      maximum: 10,
      default: 1,
      description: 'Retries after a timeout or CRC error.',
    }),
    offline_after: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 3,
      description:
        'Consecutive failed polls before a slave is reported offline. A poll stops at the first request without an answer, so a silent slave is offline within offline_after × max(I, F) + F, I its shortest interval_ms, F = (retries + 1) × timeout_ms, whatever the size of its map.',
    }),
    slaves: Type.Array(SlaveSchema, { minItems: 1, maxItems: 247 }),
  },
  { additionalProperties: false },
);
export type ModbusRtuConfig = Static<typeof ModbusRtuConfigSchema>;
