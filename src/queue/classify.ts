import type { QueueConfig, QueueRule } from './config.js';
import { PRIORITIES, type Priority } from './types.js';

export interface Classification {
  /** Index into PRIORITIES (0 = CRITICAL). */
  cls: number;
  /** Time to live in ms on the gateway clock; 0 = never expires. */
  ttlMs: number;
}

/** MQTT topic filter match (MQTT 5 §4.7): `+` one level, `#` the rest (including the parent level). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') return true;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

interface CompiledRule {
  topic: string | undefined;
  sources: ReadonlySet<string> | undefined;
  label: string | undefined;
  cls: number;
  ttlMs: number | undefined;
}

/**
 * Topic patterns, sources and labels → class and TTL (first matching rule wins). Rules are compiled
 * once; results for label-less lookups are cached per (topic, source) because readings of one
 * device hit the same pair over and over (STYLE: precompute per topic).
 */
export class Classifier {
  private readonly rules: CompiledRule[];
  private readonly defaultCls: number;
  private readonly classTtlMs: number[];
  private readonly cache = new Map<string, Classification>();

  constructor(config: Pick<QueueConfig, 'rules' | 'default_class' | 'classes'>) {
    this.rules = config.rules.map((r: QueueRule) => ({
      topic: r.topic,
      sources: r.source ? new Set(r.source) : undefined,
      label: r.label,
      cls: PRIORITIES.indexOf(r.class as Priority),
      ttlMs: r.ttl_s === undefined ? undefined : r.ttl_s * 1000,
    }));
    this.defaultCls = PRIORITIES.indexOf(config.default_class as Priority);
    this.classTtlMs = PRIORITIES.map((p) => config.classes[p].ttl_s * 1000);
  }

  classify(
    topic: string,
    source: string | undefined,
    labels?: readonly string[],
    explicit?: Priority,
    ttlS?: number,
  ): Classification {
    let base: Classification;
    if (explicit !== undefined) {
      const cls = PRIORITIES.indexOf(explicit);
      base = { cls, ttlMs: this.classTtlMs[cls]! };
    } else if (labels === undefined || labels.length === 0) {
      const key = `${topic}\u0000${source ?? ''}`;
      let hit = this.cache.get(key);
      if (!hit) {
        hit = this.match(topic, source, undefined);
        if (this.cache.size > 10000) this.cache.clear(); // bounded: topics carry device ids
        this.cache.set(key, hit);
      }
      base = hit;
    } else {
      base = this.match(topic, source, labels);
    }
    return ttlS === undefined ? base : { cls: base.cls, ttlMs: ttlS * 1000 };
  }

  private match(topic: string, source: string | undefined, labels: readonly string[] | undefined): Classification {
    for (const r of this.rules) {
      if (r.topic !== undefined && !topicMatches(r.topic, topic)) continue;
      if (r.sources && (source === undefined || !r.sources.has(source))) continue;
      if (r.label !== undefined && !(labels ?? []).includes(r.label)) continue;
      return { cls: r.cls, ttlMs: r.ttlMs ?? this.classTtlMs[r.cls]! };
    }
    return { cls: this.defaultCls, ttlMs: this.classTtlMs[this.defaultCls]! };
  }
}
