// mosquitto playing a cloud profile's broker (AWS IoT, Azure IoT Hub, a Sparkplug server): one
// listener with the profile's auth and ACL (TLS, client certificates or a password file) for the
// gateway, one plain anonymous loopback listener for the test, which plays the cloud side.
// stop()/start() take the cloud away and bring it back on the same ports (outage tests).
import { startMosquitto, stopMosquitto } from '../helpers/mosquitto.js';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Pki } from './tls-certs.js';
import { freePort } from './uplink-cloud.js';

export interface ProfileCloudOptions {
  /** TLS for the gateway's listener. */
  pki?: Pki;
  /** Client certificate as identity (AWS IoT), user name = certificate CN. */
  certificateAuth?: boolean;
  /** One user in a password file (Azure IoT Hub: user name and SAS token). */
  password?: { username: string; password: string };
  /** mosquitto ACL file lines for the gateway's listener. */
  acl?: string[];
}

export class ProfileCloud {
  private child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'egw-profcloud-'));
  readonly log: string[] = [];
  private conf = '';

  private constructor(
    readonly port: number,
    readonly testPort: number,
    private readonly opts: ProfileCloudOptions,
  ) {}

  static async start(opts: ProfileCloudOptions): Promise<ProfileCloud> {
    const c = new ProfileCloud(await freePort(), await freePort(), opts);
    c.writeConf();
    await c.start();
    return c;
  }

  get url(): string {
    return `${this.opts.pki ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  get testUrl(): string {
    return `mqtt://127.0.0.1:${this.testPort}`;
  }

  /** Replaces the one user's password and makes mosquitto re-read it (SIGHUP), as a hub rotating keys would. */
  setPassword(username: string, password: string): void {
    execFileSync('mosquitto_passwd', ['-b', '-c', join(this.dir, 'passwd'), username, password], {
      stdio: 'ignore',
      timeout: 10000,
    });
    this.child?.kill('SIGHUP');
  }

  private writeConf(): void {
    const o = this.opts;
    const lines = [
      'per_listener_settings true',
      `user ${userInfo().username}`,
      'max_inflight_messages 0',
      'max_queued_messages 0',
      // The test's persistent session also gets QoS 0 messages (Sparkplug births) sent while it reconnects.
      'queue_qos0_messages true',
      'persistence true',
      `persistence_location ${this.dir}/`,
      'autosave_interval 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      ...(process.env['EGW_TEST_MOSQ_DEBUG'] ? ['log_type all'] : []),
      `listener ${this.port} 127.0.0.1`,
    ];
    if (o.pki) lines.push(`cafile ${o.pki.ca}`, `certfile ${o.pki.serverCert}`, `keyfile ${o.pki.serverKey}`);
    if (o.certificateAuth) {
      lines.push('require_certificate true', 'use_identity_as_username true', 'allow_anonymous false');
    } else if (o.password) {
      execFileSync(
        'mosquitto_passwd',
        ['-b', '-c', join(this.dir, 'passwd'), o.password.username, o.password.password],
        {
          stdio: 'ignore',
          timeout: 10000,
        },
      );
      lines.push(`password_file ${join(this.dir, 'passwd')}`, 'allow_anonymous false');
    } else {
      lines.push('allow_anonymous true');
    }
    if (o.acl) {
      writeFileSync(join(this.dir, 'acl'), o.acl.join('\n') + '\n');
      lines.push(`acl_file ${join(this.dir, 'acl')}`);
    }
    lines.push(`listener ${this.testPort} 127.0.0.1`, 'allow_anonymous true', '');
    this.conf = join(this.dir, 'mosquitto.conf');
    writeFileSync(this.conf, lines.join('\n'));
  }

  async start(): Promise<void> {
    if (this.child && this.child.exitCode === null) return;
    this.child = (await startMosquitto(this.conf, [this.port, this.testPort], this.log)).child;
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    await stopMosquitto(c);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Got {
  topic: string;
  payload: Buffer;
  msgId: string | undefined;
  /** performance.now() at arrival. */
  at: number;
}

/** The test's cloud-side client on the plain listener: records what it receives on `filters`. */
export class CloudSide {
  readonly got: Got[] = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const id = packet.properties?.userProperties?.['msg-id'];
      this.got.push({ topic, payload, msgId: typeof id === 'string' ? id : undefined, at: performance.now() });
    });
  }

  static async connect(url: string, filters: string[]): Promise<CloudSide> {
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      reconnectPeriod: 100,
      clean: false,
      clientId: `cloud-${Math.random().toString(16).slice(2)}`,
      properties: { sessionExpiryInterval: 3600 },
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      setTimeout(() => reject(new Error('cloud side cannot connect')), 5000).unref();
    });
    await client.subscribeAsync(filters, { qos: 1 });
    return new CloudSide(client);
  }

  async waitFor<T>(pick: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const v = pick();
      if (v !== undefined) return v;
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
