import { createHash } from 'node:crypto';
import type { CommandResult } from '../commands/router.js';
import type { Logger } from '../log/logger.js';
import type { AuditLog } from '../mgmt/audit.js';
import type { UplinkConfig, GatewayCommand } from './config.js';
import {
  DownlinkPolicy,
  expired,
  isGatewayCommand,
  MAX_CONFIG_COMMAND_BYTES,
  parseCommand,
  validResponseTopic,
  type CommandProps,
  type Refusal,
} from './downlink-parse.js';
import type { DownlinkStore } from './downlink-store.js';
import type { Downlink as Incoming, ReplyTopics } from './profiles/types.js';

export type DownlinkConfig = UplinkConfig['downlink'];

/**
 * Publishes one reply to the cloud (QoS 1) through the profile (`CloudProfile.commandResult`:
 * topic mapping, MQTT 5 properties); settles on PUBACK, rejects when offline or refused.
 */
export type CloudSend = (
  topic: string,
  payload: string,
  opts: { retain?: boolean; correlationData?: Buffer | undefined; msgId?: string },
) => Promise<void>;

/** Where device commands go: a driver that owns the device, else the device's own `commands/{id}`. */
export interface DeviceCommandTarget {
  /** The owning handler's result; null when no handler here owns the device. */
  execute(deviceId: string, body: unknown): Promise<CommandResult | null>;
  /** Publishes the payload on the local broker's `commands/{deviceId}` (QoS 1). */
  deliverLocal(deviceId: string, payload: Buffer): Promise<void>;
}

/** A gateway command's outcome; `after` runs once the result is on its way (restart, reconnect). */
export interface GatewayOutcome {
  ok: boolean;
  error?: string;
  result?: unknown;
  after?: () => void;
}

export type GatewayRunner = (name: GatewayCommand, args: Record<string, unknown>) => Promise<GatewayOutcome>;

/** The /mgmt audit log (src/mgmt/audit.ts): cloud commands are recorded beside the local writes. */
export type AuditSink = Pick<AuditLog, 'record'>;

export interface DownlinkOptions {
  config: DownlinkConfig;
  /** The profile's result topics (used when a command names no response topic). */
  replies: ReplyTopics;
  log: Logger;
  store: DownlinkStore;
  audit: AuditSink;
  devices: DeviceCommandTarget;
  gateway: GatewayRunner;
  /** Desired config documents (the twin). */
  desired(payload: Buffer, version: number | undefined): Promise<void>;
  /** A desired document the allow-list refused: reported on config/reported by the twin. */
  desiredDenied(code: string, error: string): Promise<void>;
  send: CloudSend;
  wallClock?: () => number;
}

/** msg-id of a command's result: the same for every copy of it (dedupe key hashed, fixed length). */
function resultId(key: string): string {
  return `r-${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;
}

/** The result document of a command (docs/uplink.md §Command results). */
interface ResultDoc {
  id?: string;
  deviceId?: string;
  command?: string;
  ok: boolean;
  /** done | failed | delivered | refused | unknown */
  status: string;
  code?: string;
  error?: string;
  detail?: unknown;
  result?: unknown;
  via?: string;
}

/**
 * Commands from the cloud: device commands (`{prefix}/commands/{deviceId}`) and gateway commands
 * (MQTT 5 request/response). Each is size-checked, parsed, authorised by uplink.downlink.allow,
 * recorded by id before its PUBACK (so a redelivery is answered, never executed twice), executed,
 * audited like a /mgmt write, and answered with a result. Refusals carry a code and a reason.
 */
export class Downlink {
  private readonly policy: DownlinkPolicy;
  private readonly now: () => number;
  readonly counters = { received: 0, executed: 0, refused: 0, duplicates: 0 };

  constructor(private readonly o: DownlinkOptions) {
    this.policy = new DownlinkPolicy(o.config.allow);
    this.now = o.wallClock ?? Date.now;
    // The previous process died while executing these: say so, once, rather than run them again.
    for (const row of o.store.interrupted) {
      const doc: ResultDoc = {
        ok: false,
        status: 'unknown',
        code: 'EGW_DOWNLINK_INTERRUPTED',
        error: 'the gateway stopped while executing this command; it may or may not have taken effect',
      };
      o.store.finish(row.key, JSON.stringify(doc));
    }
  }

  /** Results not yet acknowledged by the cloud (stored), sent again after a (re)connect. */
  async resendUnsent(): Promise<void> {
    for (const r of this.o.store.unsent()) {
      if (!r.result || !r.topic) continue;
      try {
        await this.o.send(r.topic, r.result, { correlationData: r.corr ?? undefined, msgId: resultId(r.key) });
        this.o.store.markSent(r.key);
      } catch {
        return; // offline again: the next connect retries
      }
    }
  }

  /**
   * One downlink as the profile parsed it (`Uplink.onDownlink`), whatever the profile. The part
   * before the first await runs before mqtt.js sends the PUBACK.
   */
  async handle(t: Incoming): Promise<void> {
    const props: CommandProps = t.props ?? {};
    const payload = t.payload;
    this.counters.received++;
    switch (t.kind) {
      case 'config-desired': {
        const denied = this.policy.gatewayCommand('config.desired');
        if (denied) {
          this.audit('config/desired', denied.outcome, denied.code, denied.error);
          this.counters.refused++;
          // The twin reports it (config/reported, the shape docs/uplink.md gives) and keeps it until
          // the cloud has it, so a refusal sent while the link drops is not lost.
          await this.o.desiredDenied(denied.code, denied.error);
          return;
        }
        return this.o.desired(payload, t.version);
      }
      case 'bad-device-id': {
        const r: Refusal = {
          code: 'EGW_DOWNLINK_INVALID',
          error: 'device id not allowed (1-64 characters of A-Z a-z 0-9 _ . : -, starting with a letter or digit)',
          outcome: 'invalid',
        };
        this.audit(`commands/${t.raw.slice(0, 64)}`, r.outcome, r.code, r.error);
        const to = validResponseTopic(props.responseTopic)
          ? props.responseTopic
          : this.o.replies.gatewayCommandResult();
        return this.refuse(to, props, r, { deviceId: t.raw.slice(0, 64) });
      }
      case 'device-command':
        return this.deviceCommand(t.deviceId, payload, props);
      case 'gateway-command':
        return this.gatewayCommand(payload, props);
    }
  }

  private async deviceCommand(deviceId: string, payload: Buffer, props: CommandProps): Promise<void> {
    const resource = `commands/${deviceId}`;
    const to = validResponseTopic(props.responseTopic)
      ? props.responseTopic
      : this.o.replies.deviceCommandResult(deviceId);
    const p = parseCommand(payload, props, this.o.config.max_command_bytes);
    if (!p.ok) {
      this.audit(resource, p.refusal.outcome, p.refusal.code, p.refusal.error);
      return this.refuse(to, props, p.refusal, { deviceId });
    }
    const { id, key, body, ts } = p.value;
    const denied = this.policy.device(deviceId);
    if (denied) {
      this.audit(resource, denied.outcome, denied.code, `${id}: ${denied.error}`);
      return this.refuse(to, props, denied, { id, deviceId });
    }
    if (this.duplicate(`d:${deviceId}:${key}`, to, props, resource, id)) return;
    const fullKey = `d:${deviceId}:${key}`;
    const old = expired(ts, this.o.config.command_max_age_s, this.now());
    if (old) {
      this.audit(resource, old.outcome, old.code, `${id}: ${old.error}`);
      return this.complete(fullKey, to, props, {
        id,
        deviceId,
        ok: false,
        status: 'refused',
        code: old.code,
        error: old.error,
      });
    }
    let doc: ResultDoc;
    try {
      const r = await this.o.devices.execute(deviceId, body);
      if (r) {
        doc = { id, deviceId, ok: r.ok, status: r.ok ? 'done' : 'failed', via: 'driver' };
        if (r.error !== undefined) doc.error = r.error;
        if (r.detail !== undefined) doc.detail = r.detail;
      } else {
        await this.o.devices.deliverLocal(deviceId, payload);
        doc = { id, deviceId, ok: true, status: 'delivered', via: 'local-mqtt' };
      }
    } catch (err) {
      doc = { id, deviceId, ok: false, status: 'failed', error: (err as Error).message };
    }
    this.counters.executed++;
    this.audit(
      resource,
      doc.ok ? 'ok' : 'failed',
      doc.ok ? 'ok' : 'EGW_DOWNLINK_FAILED',
      doc.error ? `${id}: ${doc.error}` : id,
    );
    this.o.log.info({ deviceId, id, ok: doc.ok, status: doc.status, error: doc.error }, 'cloud device command');
    return this.complete(fullKey, to, props, doc);
  }

  private async gatewayCommand(payload: Buffer, props: CommandProps): Promise<void> {
    const to = validResponseTopic(props.responseTopic) ? props.responseTopic : this.o.replies.gatewayCommandResult();
    const p = parseCommand(payload, props, MAX_CONFIG_COMMAND_BYTES);
    if (!p.ok) {
      this.audit('gateway', p.refusal.outcome, p.refusal.code, p.refusal.error);
      return this.refuse(to, props, p.refusal, {});
    }
    const { id, key, body, ts } = p.value;
    const name = body['command'];
    if (!isGatewayCommand(name)) {
      const r: Refusal = {
        code: 'EGW_DOWNLINK_INVALID',
        error: `unknown gateway command ${JSON.stringify(String(name)).slice(0, 80)}`,
        outcome: 'invalid',
      };
      this.audit('gateway', r.outcome, r.code, r.error);
      return this.refuse(to, props, r, { id });
    }
    const resource = `gateway/${name}`;
    // A config.apply is as large as a config; every other gateway command is small.
    if (name !== 'config.apply' && payload.length > this.o.config.max_command_bytes) {
      const r: Refusal = {
        code: 'EGW_DOWNLINK_INVALID',
        error: `payload of ${payload.length} B exceeds ${this.o.config.max_command_bytes} B`,
        outcome: 'invalid',
      };
      this.audit(resource, r.outcome, r.code, r.error);
      return this.refuse(to, props, r, { id, command: name });
    }
    const denied = this.policy.gatewayCommand(name);
    if (denied) {
      this.audit(resource, denied.outcome, denied.code, denied.error);
      return this.refuse(to, props, denied, { id, command: name });
    }
    const fullKey = `g:${key}`;
    if (this.duplicate(fullKey, to, props, resource, id)) return;
    const old = expired(ts, this.o.config.command_max_age_s, this.now());
    if (old) {
      this.audit(resource, old.outcome, old.code, `${id}: ${old.error}`);
      return this.complete(fullKey, to, props, {
        id,
        command: name,
        ok: false,
        status: 'refused',
        code: old.code,
        error: old.error,
      });
    }
    const args = body['args'];
    let out: GatewayOutcome;
    try {
      out = await this.o.gateway(
        name,
        typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {},
      );
    } catch (err) {
      out = { ok: false, error: (err as Error).message };
    }
    this.counters.executed++;
    const doc: ResultDoc = { id, command: name, ok: out.ok, status: out.ok ? 'done' : 'failed' };
    if (out.error !== undefined) doc.error = out.error;
    if (out.result !== undefined) doc.result = out.result;
    this.audit(
      resource,
      out.ok ? 'ok' : 'failed',
      out.ok ? 'ok' : 'EGW_DOWNLINK_FAILED',
      out.error ? `${id}: ${out.error}` : id,
    );
    this.o.log.info({ command: name, id, ok: out.ok, error: out.error }, 'cloud gateway command');
    await this.complete(fullKey, to, props, doc);
    if (out.after) setTimeout(out.after, 200).unref();
  }

  /**
   * True when the key was seen before: a QoS 1 redelivery or a cloud retry. A finished one gets
   * its stored result again; one still running is left to finish (its result follows).
   */
  private duplicate(key: string, to: string, props: CommandProps, resource: string, id: string): boolean {
    const seen = this.o.store.begin(key, to, props.correlationData);
    if (!seen) return false;
    this.counters.duplicates++;
    this.audit(
      resource,
      'duplicate',
      'ok',
      `${id}: already ${seen.state === 'done' ? 'executed; result sent again' : 'executing'}`,
    );
    if (seen.state === 'done' && seen.result && seen.topic) {
      void this.o.send(seen.topic, seen.result, { correlationData: seen.corr ?? undefined, msgId: resultId(key) }).then(
        () => this.o.store.markSent(key),
        () => undefined,
      );
    }
    return true;
  }

  private async complete(key: string, to: string, props: CommandProps, doc: ResultDoc): Promise<void> {
    const text = JSON.stringify(doc);
    this.o.store.finish(key, text);
    try {
      await this.o.send(to, text, { correlationData: props.correlationData, msgId: resultId(key) });
      this.o.store.markSent(key);
    } catch (err) {
      // Kept unsent in the store: resendUnsent() publishes it after the next connect.
      this.o.log.debug({ err, key }, 'command result not sent yet');
    }
  }

  private refuse(to: string, props: CommandProps, r: Refusal, extra: Partial<ResultDoc>): Promise<void> {
    this.counters.refused++;
    this.o.log.warn({ code: r.code, reason: r.error, ...extra }, 'cloud command refused');
    return this.sendQuiet(
      to,
      { ...extra, ok: false, status: 'refused', code: r.code, error: r.error },
      props.correlationData,
    );
  }

  private async sendQuiet(to: string, doc: ResultDoc, corr: Buffer | undefined, retain = false): Promise<void> {
    try {
      await this.o.send(to, JSON.stringify(doc), { correlationData: corr, retain });
    } catch {
      /* offline: a refusal is not stored; the sender sees no result and may retry */
    }
  }

  private audit(resource: string, outcome: string, code: string, detail: string | null): void {
    this.o.audit.record({ source: 'cloud', method: 'MQTT', resource, outcome, code, detail });
  }
}
