import { Value } from '@sinclair/typebox/value';
import { GatewayError } from '../errors.js';
import type { DriverType } from './types.js';

/**
 * The one place driver types are registered. Built-in types are added by builtin.ts; other
 * modules (src/drivers/coap) and plugins call register() before the driver manager starts.
 * Plugin types are named `x-<name>` and their schema describes the entry's `options` object.
 */
export class DriverTypeRegistry {
  private readonly types = new Map<string, DriverType<never>>();

  register<C extends { id: string; type: string }>(type: DriverType<C>): () => void {
    if (this.types.has(type.type))
      throw new GatewayError('EGW_DRIVER_TYPE', `driver type ${type.type} is already registered`);
    this.types.set(type.type, type as unknown as DriverType<never>);
    return () => this.types.delete(type.type);
  }

  get(name: string): DriverType<never> | undefined {
    return this.types.get(name);
  }

  names(): string[] {
    return [...this.types.keys()];
  }

  /** Checks a plugin entry's `options` against the type's schema (built-in entries were checked by the config loader). */
  checkOptions(type: DriverType<never>, options: unknown, path: string): unknown {
    const withDefaults = Value.Default(type.schema, structuredClone(options));
    const errors = [...Value.Errors(type.schema, withDefaults)].slice(0, 20);
    if (errors.length > 0) {
      const lines = errors.map((e) => `  ${path}.options${e.path.replace(/\//g, '.')}: ${e.message}`);
      throw new GatewayError('EGW_DRIVER_CONFIG', `driver options are not valid:\n${lines.join('\n')}`);
    }
    return withDefaults;
  }
}
