import { createRequire } from 'node:module';

/**
 * Memory the gateway does not need to keep (figures: heap snapshot of the idle default config,
 * scripts/bench-footprint.ts). Called once, before any MQTT packet is written.
 *
 * mqtt-packet 9.0.2 — the MQTT serializer of both aedes and mqtt.js — fills a cache of 65,536
 * two-byte Buffers (one per packet id) on its first write: 65,536 objects, 6.3 MB of old space for
 * the life of the process, to save one 2-byte allocation per packet. Its README documents the switch
 * (`writeToStream.cacheNumbers = false`). Resolved from each user of the library, so a second copy
 * (a different version under aedes or mqtt) is switched off too.
 */
export function trimLibraryCaches(): void {
  for (const owner of ['aedes', 'mqtt']) {
    try {
      const fromOwner = createRequire(import.meta.resolve(owner));
      const packet = fromOwner('mqtt-packet') as { writeToStream?: { cacheNumbers?: boolean } };
      if (packet.writeToStream) packet.writeToStream.cacheNumbers = false;
    } catch {
      // Not installed the way we expect: nothing to trim; the cache only costs memory.
    }
  }
}
