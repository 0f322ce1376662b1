import { Type, type Static } from '@sinclair/typebox';
import { section, Secret } from '../../config/sections.js';

export const PROFILE_NAMES = ['mqtt', 'aws-iot', 'azure-iot-hub', 'sparkplug-b'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** Keys of `uplink` that choose and configure a cloud profile (docs/cloud-profiles.md). */
export const profileConfigProps = {
  profile: Type.Union(
    PROFILE_NAMES.map((n) => Type.Literal(n)),
    {
      default: 'mqtt',
      description:
        'Cloud profile (docs/cloud-profiles.md): mqtt = plain MQTT 5 to any broker or cluster; aws-iot = AWS IoT Core (mTLS, thing topics, JSON, 128 KB); azure-iot-hub = Azure IoT Hub (MQTT 3.1.1, SAS token, devices/{id}/messages/events/, twin, 256 KB); sparkplug-b = Eclipse Sparkplug B 3.0 (protobuf, births/deaths, aliases).',
    },
  ),
  aws: section(
    {
      thing_name: Type.String({
        default: '',
        maxLength: 128,
        pattern: '^[A-Za-z0-9:_-]*$',
        description: 'AWS IoT thing name; the MQTT client id and part of the topics. Empty = gateway.id.',
      }),
    },
    'aws-iot profile: url mqtts://{endpoint}-ats.iot.{region}.amazonaws.com:8883 with ca_file (Amazon Root CA), cert_file and key_file of the thing.',
  ),
  azure: section(
    {
      hub: Type.String({
        default: '',
        maxLength: 256,
        description: 'IoT Hub host name, e.g. myhub.azure-devices.net (the url is mqtts://{hub}:8883).',
      }),
      device_id: Type.String({
        default: '',
        maxLength: 128,
        pattern: "^[A-Za-z0-9\\-.%_*?!(),:=@$']*$",
        description: 'Device identity registered in the hub; the MQTT client id. Empty = gateway.id.',
      }),
      device_key: Type.Optional(
        Secret('Base64 symmetric key of the device identity (use !env or !file); signs the SAS token.'),
      ),
      sas_ttl_s: Type.Integer({
        minimum: 10,
        maximum: 31536000,
        default: 3600,
        description:
          'SAS tokens expire on multiples of this many seconds, at least this long after they are made; the uplink reconnects with a fresh token at the start of each period (plus up to a quarter of it, at random).',
      }),
      api_version: Type.String({ default: '2021-04-12', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }),
    },
    'azure-iot-hub profile: device identity and SAS token.',
  ),
  sparkplug: section(
    {
      group_id: Type.String({
        default: 'edge',
        minLength: 1,
        maxLength: 64,
        pattern: '^[^/+#]+$',
        description: 'Sparkplug group id (spBv1.0/{group_id}/...).',
      }),
      edge_node_id: Type.String({
        default: '',
        maxLength: 64,
        pattern: '^[^/+#]*$',
        description: 'Sparkplug edge node id. Empty = gateway.id.',
      }),
    },
    'sparkplug-b profile: the edge node (the gateway) and its devices (device ids) under spBv1.0/{group_id}/.',
  ),
};

export const ProfileSectionSchema = Type.Object(profileConfigProps);
export type ProfileConfig = Static<typeof ProfileSectionSchema>;
