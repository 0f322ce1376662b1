// Writes dist/src/config/validator.generated.cjs: the config validator as ajv standalone code, so the
// gateway does not compile it at every start (src/config/validator.ts says why). Run by `npm run build`.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Ajv, ValidateFunction } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';
import { ConfigSchema } from '../src/config/schema.js';
import { GENERATED, newAjv, schemaHash } from '../src/config/validator.js';

// ajv's standalone module is CommonJS; its function is module.exports or exports.default.
type Standalone = (ajv: Ajv, validate: ValidateFunction) => string;
const mod = standalone as unknown as { default?: Standalone };
const standaloneCode = (typeof mod === 'function' ? mod : mod.default) as Standalone;
const ajv = newAjv(true);
const validate = ajv.compile(ConfigSchema);
const code = `${standaloneCode(ajv, validate)}\nmodule.exports.schemaHash = ${JSON.stringify(schemaHash())};\n`;
const target = new URL(`../src/config/${GENERATED.slice(2)}`, import.meta.url);
let old = '';
try {
  old = readFileSync(target, 'utf8');
} catch {
  /* first build */
}
if (old !== code) writeFileSync(target, code);
