import { Type, type Static } from '@sinclair/typebox';

export const DriverConfigSchema = Type.Object(
  {
    type: Type.String({ minLength: 1 }),
    id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' }),
  },
  { additionalProperties: true },
);
export const DriversConfigSchema = Type.Array(DriverConfigSchema, { default: [], description: 'Sensor drivers.' });
export type DriversConfig = Static<typeof DriversConfigSchema>;
