import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { GatewayError } from '../errors.js';
import type { Driver, DriverContext, DriverType } from '../drivers/types.js';
import type { PluginDriverType } from './api.js';

type XEntry = { id: string; type: string; options?: unknown };

/**
 * Driver types plugins provide. check-config and the driver manager need every `x-` type before
 * any plugin is imported (import is async, config checks are not), so the plugins module
 * registers a proxy per `driver_types:` name of each enabled entry; the proxy creates drivers
 * from whatever the plugin registered by the time the drivers start.
 */
export class PluginDriverBridge {
  private readonly impls = new Map<string, { plugin: string; type: PluginDriverType }>();

  provide(plugin: string, type: PluginDriverType): () => void {
    const prev = this.impls.get(type.type);
    if (prev && prev.plugin !== plugin)
      throw new GatewayError(
        'EGW_DRIVER_TYPE',
        `driver type ${type.type} is already provided by plugin ${prev.plugin}`,
      );
    const entry = { plugin, type };
    this.impls.set(type.type, entry);
    return () => {
      if (this.impls.get(type.type) === entry) this.impls.delete(type.type);
    };
  }

  get(name: string): { plugin: string; type: PluginDriverType } | undefined {
    return this.impls.get(name);
  }
}

/** A DriverType standing in for a plugin's; `options` are checked against the plugin's schema in create(). */
export function proxyDriverType(name: string, bridge: PluginDriverBridge): DriverType<XEntry> {
  return {
    type: name,
    schema: Type.Unknown(),
    source: 'plugin',
    transport: 'serial',
    create(config: XEntry, ctx: DriverContext): Driver {
      const impl = bridge.get(name);
      if (!impl)
        throw new GatewayError('EGW_DRIVER_TYPE', `driver type ${name}: its plugin is not ready (see /mgmt/plugins)`);
      const options = structuredClone(config.options ?? {});
      if (impl.type.optionsSchema) {
        const validate = new Ajv({ useDefaults: true, strict: false, allErrors: true }).compile(
          impl.type.optionsSchema,
        );
        if (!validate(options))
          throw new GatewayError(
            'EGW_DRIVER_CONFIG',
            `driver ${config.id} (${name}): options not valid: ${(validate.errors ?? []).map((e) => `${e.instancePath || '.'} ${e.message ?? ''}`).join('; ')}`,
          );
      }
      const driver = impl.type.create(
        { id: config.id, options },
        {
          id: config.id,
          signal: ctx.signal,
          emit: (samples) =>
            ctx.emit(
              samples.map((s) => ({
                ...(s.deviceId !== undefined ? { deviceId: s.deviceId } : {}),
                values: s.values,
                quality: s.quality ?? 'good',
              })),
            ),
          setConnected: (c, reason) => ctx.setConnected(c, reason),
        },
      );
      return {
        start: () => driver.start(),
        stop: () => driver.stop(),
        devices: () => driver.devices?.() ?? [config.id],
      };
    },
  };
}
