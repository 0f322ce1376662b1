import { ConfigSchema } from './schema.js';

/** What a redacted secret reads as in `GET /mgmt/config` and in logs. */
export const REDACTED = '[redacted]';

export type ConfigPath = (string | number)[];

interface SchemaNode {
  'x-secret'?: boolean;
  properties?: Record<string, unknown>;
  patternProperties?: Record<string, unknown>;
  additionalProperties?: unknown;
  items?: unknown;
  prefixItems?: unknown[];
  allOf?: unknown[];
  anyOf?: unknown[];
  oneOf?: unknown[];
  if?: unknown;
  then?: unknown;
  else?: unknown;
  $ref?: string;
}

const BRANCHES = ['allOf', 'anyOf', 'oneOf'] as const;
const CONDITIONALS = ['if', 'then', 'else'] as const;

/**
 * Paths of every value in `value` that the schema marks `x-secret`, wherever the schema puts it:
 * properties, additional/pattern properties, array items, and every branch of allOf/anyOf/oneOf
 * and if/then/else. A branch is followed whether or not it applies to this value: redacting a
 * value too many is harmless, missing one leaks a secret to read tokens.
 */
export function secretPaths(value: unknown, schema: unknown = ConfigSchema): ConfigPath[] {
  const out = new Map<string, ConfigPath>();
  walk(value, schema, [], out);
  return [...out.values()];
}

function walk(value: unknown, schema: unknown, path: ConfigPath, out: Map<string, ConfigPath>): void {
  if (value === undefined || typeof schema !== 'object' || schema === null) return;
  const s = schema as SchemaNode;
  // An unresolved reference could hide a secret: fail loudly (the caller answers 5.00), never leak.
  if (s.$ref !== undefined) throw new Error(`secret redaction cannot follow $ref ${s.$ref}`);
  if (s['x-secret'] === true) {
    out.set(JSON.stringify(path), path);
    return;
  }
  for (const k of BRANCHES) for (const sub of s[k] ?? []) walk(value, sub, path, out);
  for (const k of CONDITIONALS) walk(value, s[k], path, out);
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      const tuple = s.prefixItems?.[i];
      walk(v, tuple ?? (Array.isArray(s.items) ? s.items[i] : s.items), [...path, i], out);
    });
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [k, v] of Object.entries(value)) {
    const p = [...path, k];
    const own = s.properties?.[k];
    if (own !== undefined) walk(v, own, p, out);
    let matchedPattern = false;
    for (const [re, sub] of Object.entries(s.patternProperties ?? {})) {
      if (new RegExp(re, 'u').test(k)) {
        matchedPattern = true;
        walk(v, sub, p, out);
      }
    }
    if (own === undefined && !matchedPattern) walk(v, s.additionalProperties, p, out);
  }
}

/** A copy of `config` with every schema secret replaced by `[redacted]`, for /mgmt/config and logs. */
export function redactSecrets(config: unknown, schema: unknown = ConfigSchema): unknown {
  const paths = secretPaths(config, schema);
  if (paths.length === 0) return config;
  const copy = structuredClone(config) as unknown;
  for (const p of paths) setAt(copy, p, REDACTED);
  return copy;
}

function setAt(root: unknown, path: ConfigPath, v: unknown): void {
  if (path.length === 0) return;
  let node = root as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = v;
}

export function pathText(path: ConfigPath): string {
  return path.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : acc ? `${acc}.${s}` : s), '');
}
