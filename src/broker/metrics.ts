import { Counter, Gauge, type Registry } from 'prom-client';

const P = 'edge_gateway_mqtt_';

export type AuthFailure = 'bad_credentials' | 'not_authorized' | 'client_id' | 'keepalive' | 'certificate';
export type Dropped = 'max_connections' | 'connect_rate' | 'packet_too_large';
export type IngestFailure = 'invalid_payload' | 'device_id' | 'overload' | 'pipeline';

/**
 * Broker metrics on the gateway's registry. Label children are resolved once here: on the
 * publish path an increment is one property access, no label hashing.
 */
export class BrokerMetrics {
  readonly messagesIn: Counter.Internal;
  readonly messagesOut: Counter.Internal;
  readonly bytesIn: Counter.Internal;
  readonly bytesOut: Counter.Internal;
  readonly readings: Counter.Internal;
  readonly aclPublish: Counter.Internal;
  readonly aclSubscribe: Counter.Internal;
  readonly auth: Record<AuthFailure, Counter.Internal>;
  readonly dropped: Record<Dropped, Counter.Internal>;
  readonly ingest: Record<IngestFailure, Counter.Internal>;

  constructor(registry: Registry, connected: () => number) {
    const c = (name: string, help: string, labelNames: string[] = []) =>
      new Counter({ name: P + name, help, labelNames, registers: [registry] });
    new Gauge({
      name: `${P}clients_connected`,
      help: 'MQTT clients currently connected (CONNACK sent).',
      registers: [registry],
      collect() {
        this.set(connected());
      },
    });
    this.messagesIn = c(
      'messages_in_total',
      'PUBLISH packets received from clients (including refused ones).',
    ).labels();
    this.messagesOut = c('messages_out_total', 'PUBLISH packets delivered to clients.').labels();
    this.bytesIn = c('payload_bytes_in_total', 'Payload bytes received in PUBLISH packets.').labels();
    this.bytesOut = c('payload_bytes_out_total', 'Payload bytes delivered in PUBLISH packets.').labels();
    this.readings = c('readings_ingested_total', 'Readings from sensors/{id}/data committed by the pipeline.').labels();
    const acl = c('acl_denied_total', 'Publishes and subscriptions refused by the ACL.', ['action']);
    this.aclPublish = acl.labels('publish');
    this.aclSubscribe = acl.labels('subscribe');
    const auth = c('auth_failures_total', 'CONNECTs refused by authentication.', ['reason']);
    this.auth = {
      bad_credentials: auth.labels('bad_credentials'),
      not_authorized: auth.labels('not_authorized'),
      client_id: auth.labels('client_id'),
      keepalive: auth.labels('keepalive'),
      certificate: auth.labels('certificate'),
    };
    const dropped = c('connections_dropped_total', 'Connections closed by a broker limit.', ['reason']);
    this.dropped = {
      max_connections: dropped.labels('max_connections'),
      connect_rate: dropped.labels('connect_rate'),
      packet_too_large: dropped.labels('packet_too_large'),
    };
    const ingest = c('ingest_errors_total', 'sensors/{id}/data messages not turned into readings.', ['reason']);
    this.ingest = {
      invalid_payload: ingest.labels('invalid_payload'),
      device_id: ingest.labels('device_id'),
      overload: ingest.labels('overload'),
      pipeline: ingest.labels('pipeline'),
    };
  }
}
