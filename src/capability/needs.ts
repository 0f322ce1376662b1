import type { Db } from '../store/db.js';

/** A module that declared `ownsTables` gets the handle; anything else is a wiring bug. */
export function needDb(db: Db | undefined, module: string): Db {
  if (!db) throw new Error(`module ${module} owns tables but was built without the database`);
  return db;
}

/** A seam of an earlier module; missing means the module list is out of order. */
export function needSeam<T>(value: T | undefined, seam: string, module: string): T {
  if (value === undefined) throw new Error(`module ${module} needs "${seam}" from an earlier module in the list`);
  return value;
}
