import type { Resource } from './router.js';

/** One entry of an RFC 6690 link-format document. */
export interface Link {
  href: string;
  attrs: Record<string, string | number | true | number[]>;
}

/** Links for /.well-known/core: concrete paths only (RFC 6690 §4 lists resources, not templates). */
export function linksOf(resources: readonly Resource[]): Link[] {
  const links: Link[] = [];
  for (const r of resources) {
    if (r.hidden) continue;
    const attrs: Link['attrs'] = {};
    if (r.rt) attrs['rt'] = r.rt;
    if (r.if) attrs['if'] = r.if;
    if (r.ct && r.ct.length > 0) attrs['ct'] = r.ct.length === 1 ? r.ct[0]! : r.ct;
    if (r.obs) attrs['obs'] = true;
    if (r.title) attrs['title'] = r.title;
    const hrefs = r.path.includes('{') ? (r.instances?.() ?? []) : [r.path];
    for (const href of hrefs) links.push({ href, attrs });
  }
  return links;
}

/**
 * RFC 6690 §4.1 query filtering: one `name=value` pair; a value ending in `*` matches by prefix;
 * `href` filters on the target; multi-valued attributes (rt, if, ct) match if any value does.
 */
export function filterLinks(links: readonly Link[], query: Record<string, string>): Link[] {
  const entries = Object.entries(query).filter(([k]) => k !== 'token');
  if (entries.length === 0) return [...links];
  const [name, pattern] = entries[0]!;
  const matches = (v: string) => (pattern.endsWith('*') ? v.startsWith(pattern.slice(0, -1)) : v === pattern);
  return links.filter((l) => {
    if (name === 'href') return matches(l.href);
    const a = l.attrs[name];
    if (a === undefined) return false;
    if (a === true) return pattern === '' || pattern === '*';
    const values = Array.isArray(a) ? a.map(String) : String(a).split(' ');
    return values.some(matches);
  });
}

/** Serialises links (RFC 6690 §2): `</path>;rt="x";ct=50;obs`, comma separated. */
export function formatLinks(links: readonly Link[]): string {
  return links
    .map((l) => {
      const parts = [`<${l.href}>`];
      for (const [k, v] of Object.entries(l.attrs)) {
        if (v === true) parts.push(k);
        else if (Array.isArray(v)) parts.push(`${k}="${v.join(' ')}"`);
        else if (typeof v === 'number') parts.push(`${k}=${v}`);
        else parts.push(`${k}="${v.replace(/"/g, '')}"`);
      }
      return parts.join(';');
    })
    .join(',');
}
