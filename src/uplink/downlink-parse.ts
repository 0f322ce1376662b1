import { GATEWAY_COMMANDS, type GatewayCommand } from './config.js';
import type { DownlinkProps } from './profiles/types.js';

/** Command ids (payload `id`): what the dedupe table keys by and results echo. */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
/** MQTT 5 correlation data accepted [MQTT-3.3.2.3.6]: binary, bounded here. */
export const MAX_CORRELATION_BYTES = 128;
/** Desired config and config.apply carry a whole config: the /mgmt PUT bound. */
export const MAX_CONFIG_COMMAND_BYTES = 256 * 1024;

/** Why a command is refused; `code` is documented in docs/errors.md. */
export interface Refusal {
  code: 'EGW_DOWNLINK_INVALID' | 'EGW_DOWNLINK_DENIED' | 'EGW_DOWNLINK_EXPIRED';
  error: string;
  /** Audit outcome. */
  outcome: 'invalid' | 'denied' | 'expired';
}

const invalid = (error: string): Refusal => ({ code: 'EGW_DOWNLINK_INVALID', error, outcome: 'invalid' });

export type Parsed<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/** The MQTT 5 properties of an incoming command that matter here (the profile's `Downlink.props`). */
export type CommandProps = DownlinkProps;

export interface ParsedCommand {
  /** Command id from the payload, or the correlation data / msg-id property when the payload has none. */
  id: string;
  /** Dedupe key: the correlation data when given (the MQTT 5 request/response identity), else `id`. */
  key: string;
  /** The JSON object as sent (handed to the driver / device unchanged). */
  body: Record<string, unknown>;
  ts: number | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Narrows a command payload: JSON object, bounded, with an id (payload `id`, correlation data or `msg-id`). */
export function parseCommand(payload: Buffer, props: CommandProps, maxBytes: number): Parsed<ParsedCommand> {
  if (payload.length > maxBytes)
    return { ok: false, refusal: invalid(`payload of ${payload.length} B exceeds ${maxBytes} B`) };
  const corr = props.correlationData;
  if (corr && corr.length > MAX_CORRELATION_BYTES)
    return { ok: false, refusal: invalid(`correlation data longer than ${MAX_CORRELATION_BYTES} B`) };
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, refusal: invalid('command payload is not JSON') };
  }
  if (!isObject(body)) return { ok: false, refusal: invalid('command payload must be a JSON object') };
  const rawId = body['id'];
  const msgId = props.userProperties?.['msg-id'];
  let id: string | undefined;
  if (rawId !== undefined) {
    if (typeof rawId !== 'string' || !COMMAND_ID_PATTERN.test(rawId))
      return { ok: false, refusal: invalid('"id" must be 1-128 characters of A-Z a-z 0-9 _ . : -') };
    id = rawId;
  } else if (typeof msgId === 'string' && COMMAND_ID_PATTERN.test(msgId)) id = msgId;
  else if (corr && corr.length > 0) id = corr.toString('hex');
  // At most once needs an identity: without one a QoS 1 redelivery could not be told from a new command.
  if (id === undefined)
    return {
      ok: false,
      refusal: invalid('a command needs an "id" (or MQTT 5 correlation data) so it runs at most once'),
    };
  const ts = body['ts'];
  if (ts !== undefined && (typeof ts !== 'number' || !Number.isFinite(ts)))
    return { ok: false, refusal: invalid('"ts" must be a number (ms since the epoch)') };
  const key = corr && corr.length > 0 ? `c:${corr.toString('hex')}` : `i:${id}`;
  return { ok: true, value: { id, key, body, ts } };
}

/** A response topic we may publish on: non-empty, no wildcards [MQTT-3.3.2-14], bounded. */
export function validResponseTopic(t: string | undefined): t is string {
  return typeof t === 'string' && t.length > 0 && Buffer.byteLength(t) <= 256 && !/[+#\u0000]/.test(t);
}

export function isGatewayCommand(name: unknown): name is GatewayCommand {
  return typeof name === 'string' && (GATEWAY_COMMANDS as readonly string[]).includes(name);
}

/**
 * uplink.downlink.allow compiled once: "device:*", "device:<id>", "device:<prefix>*" and the
 * gateway command names. Nothing is allowed unless listed (the default list is empty).
 */
export class DownlinkPolicy {
  private readonly anyDevice: boolean;
  private readonly devices = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly gateway = new Set<string>();

  constructor(allow: readonly string[]) {
    let any = false;
    for (const a of allow) {
      if (a === 'device:*') any = true;
      else if (a.startsWith('device:')) {
        const id = a.slice('device:'.length);
        if (id.endsWith('*')) this.prefixes.push(id.slice(0, -1));
        else this.devices.add(id);
      } else this.gateway.add(a);
    }
    this.anyDevice = any;
  }

  device(deviceId: string): Refusal | undefined {
    if (this.anyDevice || this.devices.has(deviceId) || this.prefixes.some((p) => deviceId.startsWith(p))) return;
    return {
      code: 'EGW_DOWNLINK_DENIED',
      error: `commands for device ${deviceId} are not allowed from the cloud (uplink.downlink.allow)`,
      outcome: 'denied',
    };
  }

  gatewayCommand(name: GatewayCommand): Refusal | undefined {
    if (this.gateway.has(name)) return;
    return {
      code: 'EGW_DOWNLINK_DENIED',
      error: `gateway command ${name} is not allowed from the cloud (uplink.downlink.allow)`,
      outcome: 'denied',
    };
  }
}

/**
 * A command older than `maxAgeS` by its own `ts` is refused, never executed: it was queued in the
 * session while the gateway was away and whoever sent it has long given up (a failure reported
 * now must not take effect later). Wall-clock data only; a board still in 1970 sees no command as old.
 */
export function expired(ts: number | undefined, maxAgeS: number, now: number): Refusal | undefined {
  if (ts === undefined || maxAgeS === 0 || now - ts <= maxAgeS * 1000) return;
  return {
    code: 'EGW_DOWNLINK_EXPIRED',
    error: `command is ${Math.round((now - ts) / 1000)} s old (uplink.downlink.command_max_age_s: ${maxAgeS}); not executed`,
    outcome: 'expired',
  };
}
