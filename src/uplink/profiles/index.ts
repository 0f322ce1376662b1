import { join } from 'node:path';
import type { ConfigIssue } from '../../config/load.js';
import { GatewayError } from '../../errors.js';
import { codecFormat, jsonFormat } from '../formats.js';
import { formatFor } from '../topics.js';
import type { UplinkConfig } from '../config.js';
import { awsIotProfile } from './aws-iot.js';
import { azureIotHubProfile } from './azure-iot-hub.js';
import { mqttProfile } from './mqtt.js';
import { sparkplugProfile } from './sparkplug-b.js';
import type { CloudProfile } from './types.js';

export type {
  CloudProfile,
  Downlink,
  DownlinkProps,
  ProfileLink,
  ProfileMessage,
  ReplyOptions,
  ReplyTopics,
  WirePublish,
} from './types.js';
export { PROFILE_NAMES, type ProfileName } from './config.js';
export { MSG_ID_PROPERTY } from './mqtt.js';

/**
 * The cloud profile `uplink.profile` names, built from the uplink config (docs/cloud-profiles.md).
 * Throws GatewayError EGW_UPLINK_PROFILE when the config cannot work with it (checked at start).
 */
export function createProfile(
  c: UplinkConfig,
  gatewayId: string,
  nowMs?: () => number,
  /** The gateway's data directory, for what a profile keeps across restarts (Sparkplug's bdSeq). */
  dataDir?: string,
): CloudProfile {
  switch (c.profile) {
    case 'aws-iot': {
      const thingName = c.aws.thing_name || gatewayId;
      return awsIotProfile({
        prefix: c.topic_prefix || `edge/${thingName}`,
        thingName,
        url: c.url,
        hasClientCert: c.cert_file !== undefined && c.key_file !== undefined,
        sessionExpiryS: c.downlink.enabled ? c.downlink.session_expiry_s : undefined,
      });
    }
    case 'azure-iot-hub':
      return azureIotHubProfile({
        hub: c.azure.hub,
        deviceId: c.azure.device_id || gatewayId,
        deviceKey: c.azure.device_key ?? '',
        ttlS: c.azure.sas_ttl_s,
        apiVersion: c.azure.api_version,
        url: c.url,
        ...(nowMs ? { nowMs } : {}),
      });
    case 'sparkplug-b':
      return sparkplugProfile({
        groupId: c.sparkplug.group_id,
        edgeNodeId: c.sparkplug.edge_node_id || gatewayId,
        ...(nowMs ? { nowMs } : {}),
        ...(dataDir ? { bdSeqFile: join(dataDir, 'sparkplug-bdseq') } : {}),
      });
    case 'mqtt': {
      const pick = formatFor(c.payload_format_rules, c.payload_format);
      return mqttProfile({
        prefix: c.topic_prefix || `edge/${gatewayId}`,
        clientId: c.client_id || `edge-${gatewayId}`,
        format: (topic) => (pick(topic) === 'json' ? jsonFormat : codecFormat),
        sessionExpiryS: c.downlink.enabled ? c.downlink.session_expiry_s : undefined,
      });
    }
  }
}

/** `check-config` and PUT /mgmt/config report what createProfile would refuse at start. */
export function profileIssues(c: UplinkConfig, gatewayId: string): ConfigIssue[] {
  if (!c.enabled) return [];
  try {
    createProfile(c, gatewayId);
    return [];
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return [{ path: 'uplink.profile', message: err.message }];
  }
}
