// Writes config/gateway.schema.json from the TypeBox schema (the single source), so editors can
// validate gateway.yaml (e.g. `# yaml-language-server: $schema=gateway.schema.json`). Run by `npm run build`.
import { writeFileSync, readFileSync } from 'node:fs';
import { ConfigSchema } from '../src/config/schema.js';

/** Keys that have a default are optional to the person editing the YAML, whatever TypeBox says. */
function relaxRequired(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relaxRequired);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = relaxRequired(v);
  const props = out['properties'] as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out['required']) && props) {
    const req = (out['required'] as string[]).filter((k) => props[k]?.default === undefined);
    if (req.length) out['required'] = req;
    else delete out['required'];
  }
  return out;
}

export function schemaJson(): string {
  const doc = { $schema: 'http://json-schema.org/draft-07/schema#', ...(relaxRequired(ConfigSchema) as object) };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

const target = new URL('../../config/gateway.schema.json', import.meta.url);
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const text = schemaJson();
  let old = '';
  try {
    old = readFileSync(target, 'utf8');
  } catch {
    /* first run */
  }
  if (old !== text) writeFileSync(target, text);
}
