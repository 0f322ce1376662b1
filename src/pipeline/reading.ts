/**
 * The one normalised record that flows through the pipeline whatever its origin
 * (MQTT, CoAP, serial, downstream CoAP, vision). Declared once, imported everywhere.
 */

/** A value of a reading: numeric, boolean, text (bounded length), or explicitly absent (sensor dropout). */
export type ReadingValue = number | boolean | string | null;

export type Quality = 'good' | 'uncertain' | 'bad';

export type ReadingSource = 'mqtt' | 'coap' | 'serial' | 'coap-poll' | 'vision' | 'plugin' | 'simulated' | 'system';

export interface Reading {
  /** Checked at the boundary with isValidDeviceId. */
  deviceId: string;
  /** Wall-clock milliseconds since the epoch as reported by the source (data only, never used for timing). */
  ts: number;
  values: Record<string, ReadingValue>;
  quality: Quality;
  source: ReadingSource;
  /** Optional unit per value name, e.g. { temperature: "°C" }. */
  units?: Record<string, string>;
}

/** Device and camera ids: fixed charset and length, refused at the boundary (DESIGN: identifiers). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

/** Value names share the device-id charset but may be longer; they become metric labels and codec names. */
export const VALUE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
