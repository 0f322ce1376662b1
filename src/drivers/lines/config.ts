import { Type, type Static } from '@sinclair/typebox';
import { commonDriverKeys, serialPortKeys } from '../common-config.js';

const ValueName = Type.String({
  pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$',
  description: 'Value (metric) name in the reading.',
});

/** One value taken from a line: renamed, scaled, with a unit. `value = raw * scale + offset`. */
const fieldMapKeys = {
  name: ValueName,
  unit: Type.Optional(Type.String({ maxLength: 32, description: 'Unit, e.g. °C, %, hPa.' })),
  scale: Type.Number({ default: 1, description: 'Multiplier applied to the raw value.' }),
  offset: Type.Number({ default: 0, description: 'Added after scaling.' }),
};
export const FieldMap = Type.Object(fieldMapKeys, { additionalProperties: false });
const JsonField = Type.Object(
  { key: Type.String({ minLength: 1, maxLength: 64, description: 'JSON key.' }), ...fieldMapKeys },
  { additionalProperties: false },
);
export type FieldMap = Static<typeof FieldMap>;

/** A CSV column: position i of the line maps to columns[i]; `name: null` skips the column. */
export const CsvColumn = Type.Object(
  {
    ...fieldMapKeys,
    name: Type.Union([ValueName, Type.Null()], { description: 'Value name, or null to skip the column.' }),
  },
  { additionalProperties: false },
);
export type CsvColumn = Static<typeof CsvColumn>;
export type JsonField = Static<typeof JsonField>;

export const SerialLinesConfigSchema = Type.Object(
  {
    ...commonDriverKeys('serial-lines'),
    ...serialPortKeys(9600),
    format: Type.Union([Type.Literal('json'), Type.Literal('csv')], {
      default: 'json',
      description: 'json: one JSON object per line; csv: separated values mapped by position (columns).',
    }),
    delimiter: Type.String({
      minLength: 1,
      maxLength: 4,
      default: '\n',
      description: 'Line delimiter; a trailing \\r is stripped.',
    }),
    max_line_length: Type.Integer({
      minimum: 8,
      maximum: 65536,
      default: 1024,
      description: 'Longer lines are discarded up to the next delimiter and counted.',
    }),
    separator: Type.String({ minLength: 1, maxLength: 1, default: ',', description: 'CSV separator.' }),
    skip_lines_matching: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Regular expression; matching lines (headers, banners) are ignored, not counted as bad.',
      }),
    ),
    columns: Type.Optional(
      Type.Array(CsvColumn, { minItems: 1, maxItems: 256, description: 'CSV: one entry per column.' }),
    ),
    fields: Type.Optional(
      Type.Array(JsonField, {
        minItems: 1,
        maxItems: 256,
        description: 'JSON: which keys to take and how; when absent every numeric/boolean key is taken as is.',
      }),
    ),
    stale_after_ms: Type.Integer({
      minimum: 0,
      maximum: 86400000,
      default: 0,
      description: 'Report the device offline ("silent") when no valid line arrived for this long; 0 disables.',
    }),
  },
  {
    additionalProperties: false,
    // A CSV line means nothing without the column map.
    if: { properties: { format: { const: 'csv' } }, required: ['format'] },
    then: { properties: { columns: { type: 'array' } }, required: ['columns'] },
  },
);
export type SerialLinesConfig = Static<typeof SerialLinesConfigSchema>;
