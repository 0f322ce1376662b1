import type { CapabilityModule } from '../capability/types.js';
import { StatusPage } from './page.js';
import { statusSourcesFrom, type StatusSources } from './sources.js';

export { StatusPage } from './page.js';

/** What a composition root other than the default may change (tests, a reverse-proxy setup). */
export interface StatusModuleOptions {
  /** The address the page assumes it is bound to (default metrics.host): beyond loopback it asks for a token. */
  bindHost?: string;
  /** Tokens accepted at login (default: the management read and admin tokens). */
  tokens?: () => readonly string[];
  assetsDir?: string;
  /** Extra sources (e.g. inspection images) over the ones the seams give. */
  sources?: Partial<StatusSources>;
  /** Receives the built page. */
  onPage?: (page: StatusPage) => void;
}

/**
 * The read-only status page (docs/status-page.md) on the metrics module's HTTP listener: built
 * from the seams of the modules before it; its routes go on (`provides.httpRoutes`) to the metrics
 * module, after it in the list, which serves them.
 */
export function statusModuleWith(o: StatusModuleOptions = {}): CapabilityModule {
  return {
    name: 'status',
    enabled: (config) => config.metrics.enabled && config.status_page.enabled,
    build(ctx) {
      const { provided: p } = ctx;
      const queues = ctx.mgmt.get('queues');
      const uplink = ctx.mgmt.get('uplink');
      const pluginsView = ctx.mgmt.get('plugins');
      const sources = statusSourcesFrom({
        health: () => ctx.health(),
        version: ctx.version,
        uptimeMs: () => ctx.uptimeMs(),
        devices: ctx.devices,
        latest: ctx.latest,
        queue: queues
          ? {
              snapshot: queues,
              uplinkState: uplink ?? (() => ({ state: 'disabled', url: null, inflight: 0 })),
              uplink: { health: () => ctx.health().services['uplink'] ?? { ok: false, state: 'disabled' } },
            }
          : undefined,
        history: p.history,
        deadletters: ctx.deadletters,
        alerts: p.alerts,
        ota: p.ota,
        ...(p.inspection
          ? {
              // The page shows kept review images as thumbnails (`images[].id`, served by reviewImage).
              inspection: () => {
                const v = p.inspection!.view() as { review?: { recent?: { file: string; ts: number }[] } | null };
                const images = (v.review?.recent ?? []).map((e) => ({ id: e.file, ts: e.ts }));
                return { ...(v as Record<string, unknown>), images };
              },
              inspectionImage: (id: string) => p.inspection!.reviewImage(id),
            }
          : {}),
        // The plugins module (before this one in the list) registered /mgmt/plugins; the page shows the same view.
        ...(pluginsView ? { plugins: () => ({ ...pluginsView() }) } : {}),
      });
      const page = new StatusPage({
        config: ctx.config.status_page,
        bindHost: o.bindHost ?? ctx.config.metrics.host,
        tokens: o.tokens ?? (() => p.mgmtTokens?.() ?? []),
        sources: { ...sources, ...o.sources },
        log: ctx.log.child({ mod: 'status' }),
        ...(o.assetsDir ? { assetsDir: o.assetsDir } : {}),
      });
      o.onPage?.(page);
      return { services: [page], provides: { httpRoutes: page.routes } };
    },
  };
}

export const statusModule = statusModuleWith();
