/** The verdict of one part (docs/vision.md "Decision"). */
export type Verdict = 'good' | 'defective' | 'uncertain';

/** Numerically stable softmax (max subtracted before exp), in double. */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const e: number[] = new Array<number>(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    e[i] = Math.exp(logits[i]! - max);
    sum += e[i]!;
  }
  for (let i = 0; i < e.length; i++) e[i] = e[i]! / sum;
  return e;
}

export interface DecisionPolicy {
  labels: readonly string[];
  goodLabels: readonly string[];
  /** Per defect label: probability needed for "defective". */
  defectThresholds: Readonly<Record<string, number>>;
  defaultDefectThreshold: number;
  /** A good top label below this probability is "uncertain". */
  uncertainBelow: number;
  /** How many of the highest scores the decision reports (0 or absent = every label). */
  topScores?: number;
}

export interface Decision {
  label: string;
  verdict: Verdict;
  confidence: number;
  scores: Record<string, number>;
}

/**
 * - defective: some defect label's probability ≥ its threshold (the most probable such label is
 *   reported, even when a good label scores higher — a reject is the safe error on a line);
 * - good: otherwise, when the top label is good with probability ≥ uncertainBelow;
 * - uncertain: everything else (a defect label on top but under its threshold, or a weak good).
 */
export function decide(logits: ArrayLike<number>, p: DecisionPolicy): Decision {
  if (logits.length !== p.labels.length) throw new Error(`${logits.length} scores for ${p.labels.length} labels`);
  const probs = softmax(logits);
  const scores = topScores(probs, p.labels, p.topScores ?? 0);
  let top = 0;
  let defect = -1;
  for (let i = 0; i < probs.length; i++) {
    const label = p.labels[i]!;
    if (probs[i]! > probs[top]!) top = i;
    if (!p.goodLabels.includes(label)) {
      const th = p.defectThresholds[label] ?? p.defaultDefectThreshold;
      if (probs[i]! >= th && (defect < 0 || probs[i]! > probs[defect]!)) defect = i;
    }
  }
  if (defect >= 0) return { label: p.labels[defect]!, verdict: 'defective', confidence: probs[defect]!, scores };
  const label = p.labels[top]!;
  const good = p.goodLabels.includes(label) && probs[top]! >= p.uncertainBelow;
  return { label, verdict: good ? 'good' : 'uncertain', confidence: probs[top]!, scores };
}

/**
 * The `n` highest probabilities by label, highest first (every label when `n` is 0 or covers them
 * all; ties keep label order). A 1000-class model reports its top 10 by default: all 1000 would
 * cost ~25 KB of JSON per part on the uplink and ~0.4 ms of main-thread time per frame.
 */
export function topScores(probs: readonly number[], labels: readonly string[], n: number): Record<string, number> {
  const out: Record<string, number> = {};
  if (n <= 0 || n >= probs.length) {
    // Highest first here too, so a reader sees the same order either way.
    const order = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
    for (const i of order) out[labels[i]!] = probs[i]!;
    return out;
  }
  // Partial selection: keep the n best seen so far in a small sorted array (n ≪ labels).
  const best: number[] = [];
  for (let i = 0; i < probs.length; i++) {
    const v = probs[i]!;
    if (best.length === n && v <= probs[best[n - 1]!]!) continue;
    let k = best.length === n ? n - 1 : best.length;
    while (k > 0 && probs[best[k - 1]!]! < v) {
      best[k] = best[k - 1]!;
      k--;
    }
    best[k] = i;
  }
  for (const i of best) out[labels[i]!] = probs[i]!;
  return out;
}
