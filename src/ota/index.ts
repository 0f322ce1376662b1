import type { CapabilityModule } from '../capability/types.js';
import { OtaClient } from './client.js';

export { OtaClient } from './client.js';

/** The longest POST /mgmt/ota?action=apply waits before answering with the state in progress. */
export const APPLY_ANSWER_MS = 5000;

/**
 * OTA self-update (docs/ota.md): periodic/on-demand checks of the signed manifest, download,
 * A/B activation, trial health window, rollback; /mgmt/ota state, check and apply. Near the end
 * of the module list: the trial window judges a gateway whose every other service has started.
 */
export const otaModule: CapabilityModule = {
  name: 'ota',
  enabled: (config) => config.ota.enabled,
  build(ctx) {
    const { config } = ctx;
    const ota = new OtaClient({
      config: config.ota,
      dataDir: config.gateway.data_dir,
      gatewayId: config.gateway.id,
      version: ctx.version,
      log: ctx.log.child({ mod: 'ota' }),
      ...(ctx.provided.publisher ? { publisher: ctx.provided.publisher } : {}),
      health: () => ctx.health(),
      // Read when asked: the uplink module is built before this one, or not at all.
      uplinkOnline: () => (ctx.provided.uplink ? ctx.provided.uplink.isOnline : null),
      requestRestart: (reason) => ctx.requestRestart(reason),
    });
    return {
      services: [ota],
      provides: { ota },
      mgmt: {
        resources: {
          ota: {
            state: () => ota.view(),
            check: () => ota.check(),
            // Answers with the state once activated or after APPLY_ANSWER_MS, whichever is first: a
            // large bundle takes longer than a CoAP client waits (`ctl ota` shows the progress).
            apply: () =>
              Promise.race([
                ota.apply(),
                new Promise<ReturnType<typeof ota.view>>((r) =>
                  setTimeout(() => r(ota.view()), APPLY_ANSWER_MS).unref(),
                ),
              ]),
          },
        },
      },
    };
  },
};
