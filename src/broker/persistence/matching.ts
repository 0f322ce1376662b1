import { createRequire } from 'node:module';

/**
 * Topic matching shared with aedes-persistence's memory backend: the same qlobber build, loaded
 * through aedes-persistence's own resolution so both backends always run the same code.
 */
const requireFromPersistence = createRequire(createRequire(import.meta.url).resolve('aedes-persistence'));

/** What the subscription trie stores and returns (aedes `subscriptionsByTopic` format). */
export interface TopicSubscription {
  clientId: string;
  topic: string;
  qos: number;
  rh?: number | undefined;
  rap?: boolean | undefined;
  nl?: boolean | undefined;
}

export interface QlobberSub {
  add(topic: string, sub: TopicSubscription): void;
  remove(topic: string, sub: { clientId: string; topic: string }): void;
  match(topic: string): TopicSubscription[];
  readonly subscriptionsCount: number;
}

interface QlobberTrue {
  add(pattern: string): void;
  test(topic: string): boolean;
}

type QlobberOptions = { wildcard_one: string; wildcard_some: string; separator: string };

const QlobberSubCtor = requireFromPersistence('qlobber/aedes/qlobber-sub') as new (o: QlobberOptions) => QlobberSub;
const { QlobberTrue: QlobberTrueCtor } = requireFromPersistence('qlobber') as {
  QlobberTrue: new (o: QlobberOptions) => QlobberTrue;
};
/** aedes-packet's Packet constructor (the memory backend wraps queued packets in it). */
export const Packet = requireFromPersistence('aedes-packet') as new (original: object) => Record<string, unknown>;

// Same options as aedes-persistence's memory backend (asyncPersistence.js).
const QLOBBER_OPTIONS: QlobberOptions = { wildcard_one: '+', wildcard_some: '#', separator: '/' };

export function newSubscriptionTrie(): QlobberSub {
  return new QlobberSubCtor(QLOBBER_OPTIONS);
}

function isLiteral(pattern: string): boolean {
  for (const level of pattern.split('/')) if (level === '+' || level === '#') return false;
  return true;
}

/**
 * Retained topics matching one subscription pattern, in `topics`' iteration order — exactly the
 * memory backend's `retainedMessagesByPattern` (a QlobberTrue holding the pattern, tested against
 * every stored topic, so `+`/`#` and the `$SYS` behaviour are qlobber's). A pattern with no
 * wildcard level can only match the identical topic, so it is answered with one lookup.
 */
export function* topicsMatching(topics: ReadonlySet<string>, pattern: string): Generator<string> {
  if (isLiteral(pattern)) {
    if (topics.has(pattern)) yield pattern;
    return;
  }
  const q = new QlobberTrueCtor(QLOBBER_OPTIONS);
  q.add(pattern);
  for (const topic of topics) if (q.test(topic)) yield topic;
}
