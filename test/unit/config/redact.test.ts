// Redaction of every secret the schema declares, wherever it sits (properties, items, if/then,
// anyOf...). The schema is walked here by its own code, independent of src/config/redact.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config/load.js';
import { REDACTED, redactSecrets, secretPaths } from '../../../src/config/redact.js';
import { ConfigSchema } from '../../../src/config/schema.js';

type Step = { key: string } | { index: number } | { merge: Record<string, unknown> };

/** Consts an `if` requires (`properties: { type: { const: 'coap' } }`), so the witness takes that branch. */
function constsOf(cond: unknown): Record<string, unknown> {
  const props = (cond as { properties?: Record<string, { const?: unknown }> } | undefined)?.properties ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(props)) if (v && 'const' in v) out[k] = v.const;
  return out;
}

/** Every `x-secret` in the schema, as the steps that build a config value reaching it. */
function* secretsIn(schema: unknown, steps: Step[] = []): Generator<Step[]> {
  if (typeof schema !== 'object' || schema === null) return;
  const s = schema as Record<string, unknown>;
  if (s['x-secret'] === true) {
    yield steps;
    return;
  }
  for (const [k, sub] of Object.entries((s['properties'] as Record<string, unknown>) ?? {}))
    yield* secretsIn(sub, [...steps, { key: k }]);
  if (typeof s['additionalProperties'] === 'object')
    yield* secretsIn(s['additionalProperties'], [...steps, { key: 'any-key' }]);
  if (typeof s['items'] === 'object') yield* secretsIn(s['items'], [...steps, { index: 0 }]);
  for (const k of ['allOf', 'anyOf', 'oneOf'])
    for (const sub of (s[k] as unknown[] | undefined) ?? []) yield* secretsIn(sub, steps);
  if (s['then']) yield* secretsIn(s['then'], [...steps, { merge: constsOf(s['if']) }]);
  if (s['else']) yield* secretsIn(s['else'], steps);
}

function witness(steps: Step[], secret: string): { value: unknown; path: (string | number)[] } {
  let value: unknown = secret;
  for (const st of [...steps].reverse()) {
    if ('key' in st) value = { [st.key]: value };
    else if ('index' in st) value = [value];
    else value = { ...st.merge, ...(value as object) };
  }
  const path = steps.flatMap((st): (string | number)[] => ('key' in st ? [st.key] : 'index' in st ? [st.index] : []));
  return { value, path };
}

function at(v: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], v);
}

describe('secret redaction', () => {
  const found = [...secretsIn(ConfigSchema)].map((steps, i) => ({ steps, ...witness(steps, `SECRET-${i}-x9`) }));

  it('the schema walk finds the secrets, including the downstream CoAP psk.key inside if/then', () => {
    const paths = found.map((f) => f.path.join('.'));
    for (const p of [
      'mgmt.read_token',
      'mgmt.admin_token',
      'uplink.password',
      'drivers.0.psk.key',
      'broker.users.0.password_hash',
    ])
      assert.ok(paths.includes(p), `${p} not found among ${paths.join(', ')}`);
  });

  for (const f of found) {
    it(`redacts ${f.path.join('.')}`, () => {
      const secret = String(at(f.value, f.path));
      const red = redactSecrets(f.value);
      assert.equal(at(red, f.path), REDACTED);
      assert.ok(!JSON.stringify(red).includes(secret), 'the secret text appears in the redacted copy');
      assert.ok(secretPaths(f.value).some((p) => p.join('.') === f.path.join('.')));
      assert.equal(at(f.value, f.path), secret, 'the original is not modified');
    });
  }

  it('a real config: every secret of a validated file is redacted, other values kept', () => {
    const c = parseConfig(
      [
        'version: 1',
        'mgmt: { read_token: rt-123456, admin_token: at-123456 }',
        'uplink: { url: "mqtts://cloud.example:8883", password: up-123456 }',
        'drivers:',
        '  - { type: simulated, id: sim-1 }',
        '  - type: coap',
        '    id: tank-3',
        '    url: coaps://10.0.0.7/level',
        '    psk: { identity: gw-1, key: psk-123456 }',
      ].join('\n'),
    );
    const text = JSON.stringify(redactSecrets(c));
    for (const s of ['rt-123456', 'at-123456', 'up-123456', 'psk-123456']) assert.ok(!text.includes(s), s);
    assert.ok(text.includes('"identity":"gw-1"'));
    assert.deepEqual(
      secretPaths(c)
        .map((p) => p.join('.'))
        .sort(),
      ['drivers.1.psk.key', 'mgmt.admin_token', 'mgmt.read_token', 'uplink.password'],
    );
  });

  it('an unresolvable $ref fails loudly instead of leaking', () => {
    assert.throws(() => redactSecrets({ a: 1 }, { properties: { a: { $ref: '#/x' } } }), /\$ref/);
  });
});
