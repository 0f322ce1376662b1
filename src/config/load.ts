import { readFileSync } from 'node:fs';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { GatewayError } from '../errors.js';
import { parseCidr } from './cidr.js';
import { ConfigSchema, type GatewayConfig } from './schema.js';
import { secretTags } from './secrets.js';
import { loadValidator, unloadValidator } from './validator.js';

export interface ConfigIssue {
  /** Dotted key path, e.g. `broker.port` or `drivers[0].baud`; empty for the document itself. */
  path: string;
  message: string;
  /** 1-based line in the YAML file, when the key or value can be located. */
  line?: number;
}

export class ConfigError extends GatewayError {
  constructor(
    readonly source: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super('EGW_CONFIG_INVALID', formatIssues(source, issues));
  }
}

export function formatIssues(source: string, issues: readonly ConfigIssue[]): string {
  const lines = issues.map((i) => `  ${i.path || '(root)'}: ${i.message}${i.line ? ` (line ${i.line})` : ''}`);
  return `Refusing to start because configuration ${source} is not valid (${issues.length} error${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

let validator: ValidateFunction | undefined;
function getValidator(): ValidateFunction {
  validator ??= loadValidator();
  return validator;
}

/**
 * Drops the validator (generated code and its source) once the gateway runs; a later validation
 * (PUT /mgmt/config) loads it again.
 */
export function releaseValidator(): void {
  validator = undefined;
  unloadValidator();
}

/**
 * Checks beyond the schema that need the rest of the program (e.g. driver types the capability
 * modules register); issues without a line get the line of their path.
 */
export type ConfigCheck = (config: GatewayConfig) => ConfigIssue[];

/** Parses and validates config text. Every problem is reported at once, each with path and line. */
export function parseConfig(
  text: string,
  source = 'config',
  env: NodeJS.ProcessEnv = process.env,
  check?: ConfigCheck,
): GatewayConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lc,
    customTags: secretTags(env),
    prettyErrors: false,
    uniqueKeys: true,
  });
  const issues: ConfigIssue[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    // A secret error (and most YAML errors) sits at a value: name its key path, not "(root)".
    issues.push({
      path: pathAt(doc.contents, e.pos[0]),
      message: e.message.split('\n')[0]!,
      line: lc.linePos(e.pos[0]).line,
    });
  }
  // A missing secret still lets the schema be checked, so every error is reported at once.
  if (doc.errors.some((e) => !e.message.includes('EGW_CONFIG_SECRET'))) throw new ConfigError(source, issues);
  const value: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(source, [{ path: '', message: 'must be a YAML mapping', line: 1 }]);
  }
  const validate = getValidator();
  if (!validate(value)) {
    for (const err of dedupe(validate.errors ?? [])) issues.push(toIssue(err, doc, lc));
  }
  // Source allow-lists: a hostile or mistyped block is an error with its path and line. Checked
  // here rather than as an ajv keyword so the validator stays generated code (src/config/validator.ts).
  for (const { path, reason } of cidrProblems(ConfigSchema, value)) {
    const pos = nodeStart(doc, fromDotted(path));
    issues.push({ path, message: reason, ...(pos === undefined ? {} : { line: lc.linePos(pos).line }) });
  }
  if (issues.length === 0 && check) {
    for (const i of check(value as GatewayConfig)) {
      const pos = i.line === undefined ? nodeStart(doc, fromDotted(i.path)) : undefined;
      issues.push(pos === undefined ? i : { ...i, line: lc.linePos(pos).line });
    }
  }
  if (issues.length > 0)
    throw new ConfigError(
      source,
      issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)),
    );
  return deepFreeze(value as GatewayConfig);
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env, check?: ConfigCheck): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new GatewayError('EGW_CONFIG_READ', `cannot read config ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(text, path, env, check);
}

/** Union branches each report their own error; keep one per path so the user sees one clear line. */
function dedupe(errors: readonly ErrorObject[]): ErrorObject[] {
  const seen = new Set<string>();
  const out: ErrorObject[] = [];
  for (const e of errors) {
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if') continue; // 'if': the failing 'then' branch reports the real errors
    const key = e.instancePath + (e.keyword === 'additionalProperties' ? String(e.params['additionalProperty']) : '');
    if (e.keyword === 'const' && seen.has(key)) continue;
    if (seen.has(key) && e.keyword !== 'required') continue;
    seen.add(key);
    out.push(e);
  }
  // Collapse a union of literals into one "must be one of" message.
  return out.map((e) => {
    if (e.keyword !== 'const') return e;
    const allowed = errors
      .filter((o) => o.instancePath === e.instancePath && o.keyword === 'const')
      .map((o) => JSON.stringify(o.params['allowedValue']));
    return allowed.length > 1 ? { ...e, message: `must be one of ${allowed.join(', ')}` } : e;
  });
}

function toIssue(err: ErrorObject, doc: Document, lc: LineCounter): ConfigIssue {
  const segments = err.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let message = err.message ?? 'is invalid';
  const keyPath = segments.map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  let pos: number | undefined;
  if (err.keyword === 'additionalProperties') {
    const extra = String(err.params['additionalProperty']);
    message = `unknown key "${extra}" (check the spelling; unknown keys are refused)`;
    pos = keyRange(doc, keyPath, extra);
    segments.push(extra);
  } else if (err.keyword === 'required') {
    message = `missing required key "${String(err.params['missingProperty'])}"`;
  }
  pos ??= nodeStart(doc, keyPath);
  return { path: toDotted(segments), message, line: pos === undefined ? undefined : lc.linePos(pos).line };
}

function nodeStart(doc: Document, path: (string | number)[]): number | undefined {
  // Walk up until a node exists: a defaulted section has no node, its nearest parent does.
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : (doc.getIn(path.slice(0, n), true) as Node | undefined);
    if (node && (isScalar(node) || isMap(node) || isSeq(node)) && node.range) {
      return n === path.length ? node.range[0] : (keyRange(doc, path.slice(0, n - 1), path[n - 1]!) ?? node.range[0]);
    }
  }
  return undefined;
}

function keyRange(doc: Document, parent: (string | number)[], key: string | number): number | undefined {
  const map = parent.length === 0 ? doc.contents : doc.getIn(parent, true);
  if (!isMap(map)) return undefined;
  for (const pair of map.items) {
    if (isScalar(pair.key) && String(pair.key.value) === String(key)) return pair.key.range?.[0];
  }
  return undefined;
}

/** `drivers[0].type` → ['drivers', 0, 'type']. */
function fromDotted(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** Every string the schema marks `x-cidr` that parseCidr refuses, with its dotted path (properties and items). */
function cidrProblems(schema: unknown, value: unknown, path = ''): { path: string; reason: string }[] {
  const sch = schema as { 'x-cidr'?: boolean; properties?: Record<string, unknown>; items?: unknown } | null;
  if (!sch || typeof sch !== 'object') return [];
  if (sch['x-cidr'] === true && typeof value === 'string') {
    const r = parseCidr(value);
    return r.ok ? [] : [{ path, reason: r.reason }];
  }
  const out: { path: string; reason: string }[] = [];
  if (sch.properties && value && typeof value === 'object' && !Array.isArray(value))
    for (const [k, sub] of Object.entries(sch.properties))
      out.push(...cidrProblems(sub, (value as Record<string, unknown>)[k], path ? `${path}.${k}` : k));
  if (sch.items && Array.isArray(value))
    value.forEach((v, i) => out.push(...cidrProblems(sch.items, v, `${path}[${i}]`)));
  return out;
}

/** Dotted key path of the innermost node whose range holds `pos` ('' when none does). */
function pathAt(node: unknown, pos: number, prefix: string[] = []): string {
  const inside = (n: unknown) => {
    const r = (n as { range?: [number, number, number] } | null)?.range;
    return r !== undefined && pos >= r[0] && pos < Math.max(r[1], r[0] + 1);
  };
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      // From the key to the end of the value: a tag (`!env X`) sits between them.
      const k = (pair.key as { range?: [number, number, number] } | null)?.range;
      const v = (pair.value as { range?: [number, number, number] } | null)?.range;
      if (k && v && pos >= k[0] && pos < Math.max(v[1], v[0] + 1)) return pathAt(pair.value, pos, [...prefix, key]);
    }
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++)
      if (inside(node.items[i])) return pathAt(node.items[i], pos, [...prefix, String(i)]);
  }
  return toDotted(prefix);
}

function toDotted(segments: string[]): string {
  return segments.reduce((acc, s) => (/^\d+$/.test(s) ? `${acc}[${s}]` : acc ? `${acc}.${s}` : s), '');
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

// Redaction walks the whole schema (if/then, anyOf, items...): see redact.ts.
export { redactSecrets } from './redact.js';
