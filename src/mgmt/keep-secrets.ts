import { isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { ConfigIssue } from '../config/load.js';
import { pathText, REDACTED, secretPaths, type ConfigPath } from '../config/redact.js';

export type KeepResult = { ok: true; text: string; kept: string[] } | { ok: false; errors: ConfigIssue[] };

/**
 * `ctl config get` → edit → `ctl config set`: the secrets come back as "[redacted]". Each one that
 * sits where the schema has a secret is replaced by the stored file's own node for it — a literal,
 * or `!env NAME` / `!file PATH` as written — so a round trip keeps the secret, in the form the
 * operator chose, and never writes a resolved secret where there was only a reference. List entries
 * with an `id` (drivers) or `username` (broker users) are matched by it, so reordering a list cannot
 * hand one entry's secret to another. A placeholder with nothing stored to keep is an error with its path and line.
 */
export function keepStoredSecrets(nextText: string, storedText: string | undefined): KeepResult {
  const lc = new LineCounter();
  // Before validation (a placeholder need not match a secret's pattern) and without the !env / !file
  // resolvers: tags stay as written (a warning each, ignored here). Broken YAML is left to the validator.
  const doc = parseDocument(nextText, { lineCounter: lc });
  const next = doc.errors.length > 0 ? undefined : toJs(doc);
  if (next === undefined) return { ok: true, text: nextText, kept: [] };
  const placeholders = secretPaths(next).filter((p) => valueAt(next, p) === REDACTED);
  if (placeholders.length === 0) return { ok: true, text: nextText, kept: [] };
  const stored = storedText === undefined ? undefined : parseDocument(storedText);
  const storedJs = stored ? toJs(stored) : undefined;
  const errors: ConfigIssue[] = [];
  const kept: string[] = [];
  for (const p of placeholders) {
    const sp = stored ? storedPath(p, next, storedJs) : undefined;
    const node = sp && stored ? (stored.getIn(sp, true) as Node | undefined) : undefined;
    if (!node || (isScalar(node) && node.value === REDACTED)) {
      const at = doc.getIn(p, true) as Node | undefined;
      errors.push({
        path: pathText(p),
        message: `is "${REDACTED}" but the stored config has no secret here to keep; give it in full or with !env / !file`,
        line: at?.range ? lc.linePos(at.range[0]).line : undefined,
      });
      continue;
    }
    doc.setIn(p, node.clone());
    kept.push(pathText(p));
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, text: doc.toString(), kept };
}

/** The document as plain values; an alias bomb or similar is left for the validator to report. */
function toJs(doc: Document): unknown {
  try {
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch {
    return undefined;
  }
}

function valueAt(root: unknown, path: ConfigPath): unknown {
  let v = root;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** Keys that name a list entry: drivers by `id`, broker users by `username`. */
const ENTRY_KEYS = ['id', 'username'] as const;

/** The same place in the stored config; list entries with a name are found by name, not position. */
function storedPath(path: ConfigPath, next: unknown, stored: unknown): ConfigPath | undefined {
  const out: ConfigPath = [];
  let n = next;
  let s = stored;
  for (const seg of path) {
    let sseg: string | number = seg;
    if (typeof seg === 'number' && Array.isArray(n) && Array.isArray(s)) {
      const entry = n[seg] as Record<string, unknown> | undefined;
      const key = ENTRY_KEYS.find((k) => typeof entry?.[k] === 'string');
      if (key) {
        const i = s.findIndex((e) => (e as Record<string, unknown> | null)?.[key] === entry![key]);
        if (i < 0) return undefined;
        sseg = i;
      }
    }
    out.push(sseg);
    n = (n as Record<string | number, unknown> | undefined)?.[seg];
    s = typeof s === 'object' && s !== null ? (s as Record<string | number, unknown>)[sseg] : undefined;
  }
  return out;
}
