import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import semver from 'semver';
import { GatewayError } from '../errors.js';
import { PLUGIN_API_VERSION, type PluginCapabilities, type PluginDefinition } from './api.js';

/** Where a plugin entry's module is: `path` (file or folder) or `{dir}/{name}` (folder or `.js`); a folder means its index.js. */
export function resolvePluginFile(dir: string, name: string, path: string | undefined): string {
  let p = path === undefined ? join(dir, name) : isAbsolute(path) ? path : resolve(dir, path);
  // `{dir}/{name}` may be a folder or a single module file `{dir}/{name}.js`.
  if (path === undefined && !existsSync(p) && existsSync(`${p}.js`)) p = `${p}.js`;
  try {
    if (statSync(p).isDirectory()) {
      for (const f of ['index.js', 'index.mjs']) {
        try {
          if (statSync(join(p, f)).isFile()) return join(p, f);
        } catch {
          // try the next name
        }
      }
      throw new GatewayError('EGW_PLUGIN_LOAD', `plugin ${name}: folder ${p} has no index.js`);
    }
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError('EGW_PLUGIN_LOAD', `plugin ${name}: ${p} does not exist`);
  }
  return p;
}

/**
 * Imports a plugin module. `codeVersion` (bumped by reload only, so a retry re-uses the module)
 * busts Node's ESM cache so a reload gets the new code; the old module instance stays in memory:
 * ESM modules cannot be unloaded (docs/plugins.md).
 */
export async function importPlugin(file: string, codeVersion: number): Promise<unknown> {
  const url = `${pathToFileURL(file).href}?v=${codeVersion}`;
  const mod = (await import(url)) as { default?: unknown; plugin?: unknown };
  return mod.default ?? mod.plugin;
}

/** What the host needs of a definition, checked (a module's default export is `unknown`). */
export interface CheckedDefinition {
  name: string;
  version: string;
  apiVersion: string;
  capabilities: PluginCapabilities;
  configSchema: object | undefined;
}

/** Narrows a module export to a plugin definition and checks its name and apiVersion range. */
export function checkDefinition(value: unknown, expectedName: string): CheckedDefinition {
  if (typeof value !== 'object' || value === null)
    throw new GatewayError(
      'EGW_PLUGIN_LOAD',
      `plugin ${expectedName}: the module exports no plugin definition (export default definePlugin({...}))`,
    );
  const d = value as Partial<Record<keyof PluginDefinition, unknown>>;
  if (typeof d.name !== 'string' || typeof d.setup !== 'function' || typeof d.apiVersion !== 'string')
    throw new GatewayError(
      'EGW_PLUGIN_LOAD',
      `plugin ${expectedName}: the definition needs name, apiVersion and setup(ctx)`,
    );
  if (d.name !== expectedName)
    throw new GatewayError('EGW_PLUGIN_LOAD', `plugin entry ${expectedName} loads a plugin named ${d.name}`);
  if (semver.validRange(d.apiVersion) === null)
    throw new GatewayError(
      'EGW_PLUGIN_API_VERSION',
      `plugin ${d.name}: apiVersion ${JSON.stringify(d.apiVersion)} is not a semver range`,
    );
  if (!semver.satisfies(PLUGIN_API_VERSION, d.apiVersion))
    throw new GatewayError(
      'EGW_PLUGIN_API_VERSION',
      `plugin ${d.name} was built for plugin API ${d.apiVersion}; this gateway implements ${PLUGIN_API_VERSION}. Refusing to load it: install a release of the plugin built for ${semver.major(PLUGIN_API_VERSION)}.x`,
    );
  const caps = d.capabilities;
  if (caps !== undefined && (typeof caps !== 'object' || caps === null))
    throw new GatewayError('EGW_PLUGIN_LOAD', `plugin ${d.name}: capabilities must be an object`);
  const schema = d.configSchema;
  if (schema !== undefined && (typeof schema !== 'object' || schema === null))
    throw new GatewayError('EGW_PLUGIN_LOAD', `plugin ${d.name}: configSchema must be a JSON Schema object`);
  return {
    name: d.name,
    version: typeof d.version === 'string' ? d.version.slice(0, 64) : '0.0.0',
    apiVersion: d.apiVersion,
    capabilities: (caps ?? {}) as PluginCapabilities,
    configSchema: schema ?? undefined,
  };
}

/**
 * Validates an entry's config against the plugin's schema (defaults applied, every error with
 * its path) and deep-freezes it. ajv reads TypeBox schemas as the JSON Schema they are.
 */
export function validatePluginConfig(
  name: string,
  schema: object | undefined,
  config: Record<string, unknown>,
): object {
  const value = structuredClone(config);
  if (schema) {
    const ajv = new Ajv({ useDefaults: true, strict: false, allErrors: true });
    let validate;
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw new GatewayError(
        'EGW_PLUGIN_LOAD',
        `plugin ${name}: configSchema does not compile: ${(err as Error).message}`,
      );
    }
    if (!validate(value)) {
      const lines = (validate.errors ?? [])
        .slice(0, 20)
        .map((e) => `  plugins.${name}.config${e.instancePath.replace(/\//g, '.')}: ${e.message ?? 'invalid'}`);
      throw new GatewayError('EGW_PLUGIN_CONFIG', `plugin ${name}: config is not valid:\n${lines.join('\n')}`);
    }
  }
  return deepFreeze(value);
}

export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
