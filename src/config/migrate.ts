import { closeSync, copyFileSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { isMap, parseDocument, type Document } from 'yaml';
import { CONFIG_VERSION } from './schema.js';

/**
 * Config format migrations, oldest first. Each edits the parsed YAML document in place so the
 * user's comments and layout survive. Append-only: a released step is never changed.
 */
interface Migration {
  from: number;
  describe: string;
  apply(doc: Document): void;
}

const MIGRATIONS: readonly Migration[] = [
  {
    // Pre-release configs had no version key; their layout is version 1's.
    from: 0,
    describe: 'add the version key',
    apply(doc) {
      if (isMap(doc.contents)) doc.contents.items.unshift(doc.createPair('version', 1));
    },
  },
];

export interface MigrationResult {
  from: number;
  to: number;
  text: string;
  steps: string[];
}

function versionOf(doc: Document): number {
  const v: unknown = isMap(doc.contents) ? doc.get('version') : undefined;
  return v === undefined ? 0 : typeof v === 'number' ? v : NaN;
}

/**
 * Migrates config text to the current version. Returns undefined when nothing is to be done
 * (already current, newer, or not a mapping: validation reports those with their line).
 */
export function migrateConfigText(text: string): MigrationResult | undefined {
  const doc = parseDocument(text, { keepSourceTokens: false });
  if (doc.errors.length > 0 || !isMap(doc.contents)) return undefined;
  const from = versionOf(doc);
  if (!Number.isInteger(from) || from >= CONFIG_VERSION) return undefined;
  const steps: string[] = [];
  for (const m of MIGRATIONS) {
    if (m.from < from) continue;
    m.apply(doc);
    doc.set('version', m.from + 1);
    steps.push(`v${m.from}→v${m.from + 1}: ${m.describe}`);
  }
  return { from, to: versionOf(doc), text: doc.toString(), steps };
}

/**
 * Migrates a config file in place: the original is kept as `FILE.v{N}.bak`, the new text is
 * written to a temp file, fsynced and renamed over the original (atomic on POSIX).
 */
export function migrateConfigFile(path: string): MigrationResult | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined; // the loader reports an unreadable file with EGW_CONFIG_READ
  }
  const result = migrateConfigText(text);
  if (!result) return undefined;
  copyFileSync(path, `${path}.v${result.from}.bak`);
  writeFileAtomic(path, result.text);
  return result;
}

export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
