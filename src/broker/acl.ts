/**
 * Per-client topic ACLs, the idea of Mosquitto's pattern ACLs: rules carry `{username}` and
 * `{clientid}` placeholders that are substituted once per client at connect, and the resulting
 * filters are split into levels then, so a publish costs one split and a few level compares.
 *
 * Semantics (order-independent): a matching `deny` rule refuses; otherwise some rule granting the
 * action must match; otherwise refused.
 */
export type Access = 'read' | 'write' | 'readwrite' | 'deny';

export interface AclRule {
  topic: string;
  access: Access;
}

export interface AclVars {
  username: string | undefined;
  clientid: string;
}

export interface CompiledAcl {
  readonly write: readonly string[][];
  readonly read: readonly string[][];
  readonly deny: readonly string[][];
}

/**
 * A value substituted into a filter must be one whole, literal level: an id containing `/`, `+`
 * or `#` would widen the rule to other devices' topics, so such a rule is dropped (as Mosquitto
 * does for pattern ACLs).
 */
function safeLevel(v: string | undefined): v is string {
  return v !== undefined && v.length > 0 && !/[/+#\u0000]/.test(v);
}

export function compileAcl(rules: readonly AclRule[], vars: AclVars): CompiledAcl {
  const write: string[][] = [];
  const read: string[][] = [];
  const deny: string[][] = [];
  for (const rule of rules) {
    let topic = rule.topic;
    if (topic.includes('{username}')) {
      if (!safeLevel(vars.username)) continue;
      topic = topic.replaceAll('{username}', vars.username);
    }
    if (topic.includes('{clientid}')) {
      if (!safeLevel(vars.clientid)) continue;
      topic = topic.replaceAll('{clientid}', vars.clientid);
    }
    const levels = topic.split('/');
    if (rule.access === 'deny') deny.push(levels);
    if (rule.access === 'write' || rule.access === 'readwrite') write.push(levels);
    if (rule.access === 'read' || rule.access === 'readwrite') read.push(levels);
  }
  return { write, read, deny };
}

/** Does a topic filter (levels) match a concrete topic name (levels)? MQTT 3.1.1 §4.7. */
export function filterMatches(filter: readonly string[], topic: readonly string[]): boolean {
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics beginning with '$'.
  if (topic[0]?.startsWith('$') && (filter[0] === '+' || filter[0] === '#')) return false;
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i]!;
    // '#' also matches the parent level: "sport/#" matches "sport" (§4.7.1.2).
    if (f === '#') return true;
    if (i >= topic.length) return false;
    if (f !== '+' && f !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

/** Does the rule filter allow everything the subscription filter can match? */
export function filterCovers(rule: readonly string[], sub: readonly string[]): boolean {
  if (sub[0]?.startsWith('$') && (rule[0] === '+' || rule[0] === '#')) return false;
  for (let i = 0; i < rule.length; i++) {
    const r = rule[i]!;
    if (r === '#') return true;
    if (i >= sub.length) return false;
    const s = sub[i]!;
    if (r === '+') {
      if (s === '#') return false;
      continue;
    }
    if (s !== r) return false; // a literal level covers neither '+' nor '#'
  }
  return rule.length === sub.length;
}

function anyMatch(filters: readonly string[][], topic: readonly string[]): boolean {
  for (const f of filters) if (filterMatches(f, topic)) return true;
  return false;
}

export function canPublish(acl: CompiledAcl, topic: string): boolean {
  const levels = topic.split('/');
  return !anyMatch(acl.deny, levels) && anyMatch(acl.write, levels);
}

/** A subscription is allowed when a read rule covers it and no deny rule covers it. */
export function canSubscribe(acl: CompiledAcl, filter: string): boolean {
  const levels = filter.split('/');
  for (const d of acl.deny) if (filterCovers(d, levels)) return false;
  for (const r of acl.read) if (filterCovers(r, levels)) return true;
  return false;
}

/**
 * Per-message check at delivery, needed only when deny rules exist: `read a/#` plus
 * `deny a/secret` lets a client subscribe to `a/#` but not receive `a/secret`.
 */
export function canReceive(acl: CompiledAcl, topic: string): boolean {
  return acl.deny.length === 0 || !anyMatch(acl.deny, topic.split('/'));
}
