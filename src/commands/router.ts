import type { CommandResult } from '../drivers/types.js';
import type { Logger } from '../log/logger.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import type { Publisher } from '../publisher/types.js';

export type { CommandResult };

/** Something that executes `commands/{deviceId}` for the devices it owns (drivers today; plugins, rules later). */
export interface CommandHandler {
  readonly name: string;
  ownsDevice(deviceId: string): boolean;
  /** Never rejects; null when it turns out not to own the device. */
  handleCommand(deviceId: string, body: unknown): Promise<CommandResult | null>;
}

/** Where `commands/+` is seen (BrokerService.subscribe). */
export interface CommandSource {
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): void;
}

const PREFIX = 'commands/';

/**
 * Routes `commands/{deviceId}` to the first handler that owns the device; the outcome goes out
 * on `devices/{deviceId}/command_result` through the publisher (local only: it answers whoever
 * sent the command on this broker). A command for a device nobody here owns is left alone: the
 * device itself may be subscribed to its topic.
 */
export class CommandRouter {
  private readonly handlers: CommandHandler[] = [];
  private publisher: Publisher | undefined;
  readonly counters = { handled: 0, invalid: 0 };

  constructor(private readonly opts: { log: Logger }) {}

  add(handler: CommandHandler): void {
    this.handlers.push(handler);
  }

  /** Handler names, in routing order (for tests and /mgmt). */
  names(): string[] {
    return this.handlers.map((h) => h.name);
  }

  /** Subscribes to `commands/+` (before the broker starts); results go out through `publisher`. */
  attach(source: CommandSource, publisher: Publisher): void {
    if (this.publisher) return;
    this.publisher = publisher;
    source.subscribe(`${PREFIX}+`, (topic, payload) => void this.route(topic, payload));
  }

  /** True when a handler here (a driver) executes commands for this device. */
  owns(deviceId: string): boolean {
    return this.handlers.some((h) => h.ownsDevice(deviceId));
  }

  /**
   * Executes a command already parsed (the cloud downlink): the owning handler's result, or null
   * when no handler here owns the device. The result also goes out locally, as for a local command.
   */
  async execute(deviceId: string, body: unknown): Promise<CommandResult | null> {
    const handler = this.handlers.find((h) => h.ownsDevice(deviceId));
    if (!handler) return null;
    const result = await handler.handleCommand(deviceId, body);
    if (!result) return null;
    this.counters.handled++;
    this.opts.log.info(
      { deviceId, handler: handler.name, ok: result.ok, error: result.error, origin: 'cloud' },
      'device command handled',
    );
    await this.reply(deviceId, result);
    return result;
  }

  /** One command; resolves when the result is published (or nothing was ours to do). */
  async route(topic: string, payload: Buffer): Promise<void> {
    const deviceId = topic.slice(PREFIX.length);
    if (!isValidDeviceId(deviceId)) return;
    const handler = this.handlers.find((h) => h.ownsDevice(deviceId));
    if (!handler) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      this.counters.invalid++;
      return this.reply(deviceId, { ok: false, error: 'command payload is not JSON' });
    }
    const result = await handler.handleCommand(deviceId, body);
    if (!result) return;
    this.counters.handled++;
    this.opts.log.info(
      { deviceId, handler: handler.name, ok: result.ok, error: result.error },
      'device command handled',
    );
    return this.reply(deviceId, result);
  }

  private async reply(deviceId: string, result: CommandResult): Promise<void> {
    try {
      await this.publisher?.publish({
        topic: `devices/${deviceId}/command_result`,
        payload: JSON.stringify(result),
        qos: 1,
        uplink: false,
        source: 'system',
      });
    } catch (err) {
      this.opts.log.warn({ err, deviceId }, 'cannot publish command result');
    }
  }
}
