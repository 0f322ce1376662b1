import { Counter, Gauge, type Registry } from 'prom-client';

/** The edge_gateway_driver_* metrics, registered once per gateway on the registry handed in. */
export class DriverMetrics {
  readonly up: Gauge<'driver' | 'type'>;
  readonly deviceUp: Gauge<'driver' | 'device'>;
  readonly readings: Counter<'driver'>;
  readonly dropped: Counter<'driver' | 'reason'>;
  readonly errors: Counter<'driver' | 'kind'>;
  readonly reconnects: Counter<'driver'>;
  readonly lastReading: Gauge<'driver'>;
  readonly buffered: Gauge<'driver'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.up = new Gauge({
      name: 'edge_gateway_driver_up',
      help: '1 when the driver link (port) is connected.',
      labelNames: ['driver', 'type'],
      registers,
    });
    this.deviceUp = new Gauge({
      name: 'edge_gateway_driver_device_up',
      help: '1 when a device behind a driver answers (e.g. a Modbus slave).',
      labelNames: ['driver', 'device'],
      registers,
    });
    this.readings = new Counter({
      name: 'edge_gateway_driver_readings_total',
      help: 'Readings accepted by the pipeline.',
      labelNames: ['driver'],
      registers,
    });
    this.dropped = new Counter({
      name: 'edge_gateway_driver_readings_dropped_total',
      help: 'Readings dropped: buffer_full (pipeline slower than the sensor), refused (pipeline refused them), stopped.',
      labelNames: ['driver', 'reason'],
      registers,
    });
    this.errors = new Counter({
      name: 'edge_gateway_driver_errors_total',
      help: 'Driver errors by kind: open, io, bad_line, overlong, checksum, crc, timeout, exception, command.',
      labelNames: ['driver', 'kind'],
      registers,
    });
    this.reconnects = new Counter({
      name: 'edge_gateway_driver_reconnects_total',
      help: 'Port reopen attempts.',
      labelNames: ['driver'],
      registers,
    });
    this.lastReading = new Gauge({
      name: 'edge_gateway_driver_last_reading_timestamp_seconds',
      help: 'Wall-clock time of the last reading a driver produced.',
      labelNames: ['driver'],
      registers,
    });
    this.buffered = new Gauge({
      name: 'edge_gateway_driver_buffered_readings',
      help: 'Readings waiting for the pipeline.',
      labelNames: ['driver'],
      registers,
    });
  }
}
