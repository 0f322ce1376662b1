import { Type, type TProperties } from '@sinclair/typebox';

/**
 * Keys every `drivers:` entry has, whatever its type. Each type's schema spreads these into its
 * own closed object, so an entry is checked against exactly one type's keys (see config.ts).
 */
export const commonDriverKeys = <T extends string>(type: T) => ({
  type: Type.Literal(type, { description: 'Driver type.' }),
  id: Type.String({
    pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$',
    description: 'Driver id; also the device id of its readings (sensors/{id}/data) unless the type says otherwise.',
  }),
  enabled: Type.Boolean({ default: true, description: 'false keeps the entry but does not start it.' }),
  buffer_size: Type.Integer({
    minimum: 1,
    maximum: 100000,
    default: 1000,
    description: 'Readings held while the pipeline is busy; beyond it the oldest are dropped and counted.',
  }),
});

export const Backoff = Type.Object(
  {
    initial_ms: Type.Integer({ minimum: 10, maximum: 600000, default: 500, description: 'First retry delay.' }),
    max_ms: Type.Integer({ minimum: 10, maximum: 3600000, default: 30000, description: 'Cap of the doubling delay.' }),
  },
  { additionalProperties: false, default: {}, description: 'Capped exponential backoff between reopen attempts.' },
);

/** Serial line settings shared by serial-lines, nmea and modbus-rtu. */
export const serialPortKeys = (defaultBaud: number) =>
  ({
    path: Type.String({ minLength: 1, description: 'Port device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...' }),
    baud: Type.Integer({ minimum: 50, maximum: 4000000, default: defaultBaud, description: 'Baud rate.' }),
    data_bits: Type.Union([Type.Literal(5), Type.Literal(6), Type.Literal(7), Type.Literal(8)], {
      default: 8,
      description: 'Data bits.',
    }),
    parity: Type.Union(
      [Type.Literal('none'), Type.Literal('even'), Type.Literal('odd'), Type.Literal('mark'), Type.Literal('space')],
      { default: 'none', description: 'Parity (mark/space are not supported by Linux termios).' },
    ),
    stop_bits: Type.Union([Type.Literal(1), Type.Literal(1.5), Type.Literal(2)], {
      default: 1,
      description: 'Stop bits.',
    }),
    rtscts: Type.Boolean({ default: false, description: 'RTS/CTS hardware flow control.' }),
    xon: Type.Boolean({ default: false, description: 'XON/XOFF software flow control (input).' }),
    xoff: Type.Boolean({ default: false, description: 'XON/XOFF software flow control (output).' }),
    hupcl: Type.Boolean({ default: true, description: 'Drop DTR on close.' }),
    rs485: Type.Object(
      {
        rts: Type.Optional(
          Type.Boolean({ description: 'Set RTS to this level after open (transceiver enable on some adapters).' }),
        ),
        dtr: Type.Optional(Type.Boolean({ description: 'Set DTR to this level after open.' })),
        low_latency: Type.Boolean({
          default: false,
          description: 'Linux ASYNC_LOW_LATENCY: shorter turnaround on RS-485 buses.',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          'RS-485 related line settings serialport exposes. Kernel RS-485 mode (TIOCSRS485) is not exposed by serialport 13; adapters with automatic direction control need nothing here.',
      },
    ),
    reconnect: Backoff,
  }) satisfies TProperties;
