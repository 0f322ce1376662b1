import { GatewayError } from '../errors.js';
import type { PluginCapabilities } from './api.js';

/**
 * MQTT topic filter matching ([MQTT-4.7.1]: `+` one level, `#` the rest, only as the last level)
 * used for the `publish` capability: a plugin may publish on a topic matched by one of its patterns.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Device globs (`kiln-*`, `*`): `*` matches any run of id characters. */
export function deviceMatches(glob: string, deviceId: string): boolean {
  if (!glob.includes('*')) return glob === deviceId;
  const re = new RegExp(
    `^${glob
      .split('*')
      .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(deviceId);
}

/** A topic a plugin may name: no wildcards, no `$` topics ([MQTT-4.7.2-1]), bounded, no empty first level. */
export function isPublishableTopic(topic: string): boolean {
  return (
    topic.length > 0 &&
    topic.length <= 256 &&
    !topic.startsWith('$') &&
    !topic.startsWith('/') &&
    !/[+#\u0000]/.test(topic)
  );
}

/** Precomputed checks of one plugin's declared capabilities. */
export class CapabilityGuard {
  constructor(
    private readonly plugin: string,
    private readonly caps: PluginCapabilities,
  ) {}

  publish(topic: string): void {
    if (!isPublishableTopic(topic))
      throw new GatewayError(
        'EGW_PLUGIN_CAPABILITY',
        `plugin ${this.plugin}: topic ${JSON.stringify(topic)} is not publishable`,
      );
    // commands go through command(), which checks the device capability.
    if (!(this.caps.publish ?? []).some((f) => topicMatches(f, topic)))
      throw new GatewayError(
        'EGW_PLUGIN_CAPABILITY',
        `plugin ${this.plugin} did not declare capability publish for topic ${topic} (declared: ${(this.caps.publish ?? []).join(', ') || 'none'})`,
      );
  }

  command(deviceId: string): void {
    if (!(this.caps.commands ?? []).some((g) => deviceMatches(g, deviceId)))
      throw new GatewayError(
        'EGW_PLUGIN_CAPABILITY',
        `plugin ${this.plugin} did not declare capability commands for device ${deviceId}`,
      );
  }

  coap(): void {
    if (this.caps.coapResources !== true)
      throw new GatewayError('EGW_PLUGIN_CAPABILITY', `plugin ${this.plugin} did not declare capability coapResources`);
  }

  driverType(type: string): void {
    if (!(this.caps.driverTypes ?? []).includes(type))
      throw new GatewayError('EGW_PLUGIN_CAPABILITY', `plugin ${this.plugin} did not declare driver type ${type}`);
  }

  transform(): void {
    if (this.caps.transform !== true)
      throw new GatewayError('EGW_PLUGIN_CAPABILITY', `plugin ${this.plugin} did not declare capability transform`);
  }
}
