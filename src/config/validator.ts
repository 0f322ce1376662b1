import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import { ConfigSchema } from './schema.js';

/**
 * The config validator: ajv code generated from the TypeBox schema. `npm run build` writes it once
 * (scripts/gen-config-validator.ts → dist/src/config/validator.generated.cjs, ajv "standalone" code)
 * because compiling it at every start allocated ~14 MB of short-lived heap — the larger part of the
 * gateway's start-up peak RSS (scripts/bench-footprint.ts). The generated file carries a hash of the
 * schema it was made from; a stale or missing file (a build that only ran tsc) falls back to
 * compiling here, so the validator always matches the schema in this process.
 */
export function newAjv(forStandaloneCode = false): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: true,
    allowUnionTypes: true,
    ...(forStandaloneCode ? { code: { source: true } } : {}),
  });
  ajv.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });
  // Annotation only: allow-list entries are parsed after validation (config/load.ts cidrProblems).
  ajv.addKeyword({ keyword: 'x-cidr', schemaType: 'boolean' });
  return ajv;
}

/** sha256 of the schema as JSON: what a generated validator must have been made from. */
export function schemaHash(): string {
  return createHash('sha256').update(JSON.stringify(ConfigSchema)).digest('hex');
}

export const GENERATED = './validator.generated.cjs';
const require = createRequire(import.meta.url);

export function loadValidator(): ValidateFunction {
  try {
    const generated = require(GENERATED) as ValidateFunction & { schemaHash?: string };
    if (typeof generated === 'function' && generated.schemaHash === schemaHash()) return generated;
  } catch {
    // Not generated (tsc-only build): compile below.
  }
  return newAjv().compile(ConfigSchema);
}

/** Lets the generated module (and its ~570 KB source) be collected once the gateway runs. */
export function unloadValidator(): void {
  try {
    delete require.cache[require.resolve(GENERATED)];
  } catch {
    // Never loaded.
  }
}
