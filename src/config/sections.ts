import { Type, type Static, type TObject, type TUnion } from '@sinclair/typebox';

/**
 * Helpers shared by every module's config section so all sections look alike:
 * closed objects (unknown keys are errors: they are typos) that default to `{}` so nested
 * defaults apply when a whole section is left out.
 */
export const section = <T extends Parameters<typeof Type.Object>[0]>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, default: {}, description });

export const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

/** A string that is redacted in `/mgmt/config` and never logged. */
export const Secret = (description: string) => Type.String({ 'x-secret': true, description });

export const Host = (def: string, description: string) => Type.String({ minLength: 1, default: def, description });

/** A CIDR block (`10.0.0.0/8`, `fd00::/8`) or one address; checked by `parseCidr` (config/cidr.ts). */
export const Cidr = () => Type.String({ 'x-cidr': true, minLength: 1, maxLength: 64 });

/** Loopback only: what every listener admits unless the config opens it (DESIGN: defaults). */
export const LOOPBACK_SOURCES = ['127.0.0.0/8', '::1/128'];

export const AllowSources = (description: string) =>
  Type.Array(Cidr(), { maxItems: 256, default: [...LOOPBACK_SOURCES], description });

/**
 * A union of closed objects discriminated by one literal key, written as if/then so that ajv
 * applies each branch's defaults (it ignores defaults inside anyOf/oneOf) and reports only the
 * matching branch's errors. The static type is the union of the branches.
 */
export function discriminated<K extends string, T extends TObject[]>(key: K, branches: [...T], description?: string) {
  const values = branches.map((b) => (b.properties[key] as unknown as { const: string }).const);
  return Type.Unsafe<Static<TUnion<T>>>({
    type: 'object',
    required: [key],
    properties: { [key]: { type: 'string', enum: values, description: `${key}: ${values.join(' | ')}` } },
    allOf: branches.map((b, i) => ({ if: { properties: { [key]: { const: values[i] } }, required: [key] }, then: b })),
    ...(description ? { description } : {}),
  });
}
