// Debian's mosquitto as a TLS cloud broker for the uplink tests: one TLS listener (client certificate
// as identity, or a password file) and one plain loopback listener for the test's subscriber.
import { startMosquitto, stopMosquitto } from '../helpers/mosquitto.js';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Pki } from './tls-certs.js';
import { freePort } from './uplink-cloud.js';

export type TlsCloudAuth = { kind: 'certificate' } | { kind: 'password'; username: string; password: string };

export class TlsCloud {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'egw-tlscloud-'));
  readonly log: string[] = [];

  private constructor(
    readonly tlsPort: number,
    readonly plainPort: number,
  ) {}

  static async start(pki: Pki, auth: TlsCloudAuth): Promise<TlsCloud> {
    const c = new TlsCloud(await freePort(), await freePort());
    const tls = [
      `listener ${c.tlsPort} 127.0.0.1`,
      `cafile ${pki.ca}`,
      `certfile ${pki.serverCert}`,
      `keyfile ${pki.serverKey}`,
    ];
    if (auth.kind === 'certificate') {
      tls.push('require_certificate true', 'use_identity_as_username true', 'allow_anonymous false');
    } else {
      const pw = join(c.dir, 'passwd');
      execFileSync('mosquitto_passwd', ['-b', '-c', pw, auth.username, auth.password], {
        stdio: 'ignore',
        timeout: 10000,
      });
      tls.push('require_certificate false', `password_file ${pw}`, 'allow_anonymous false');
    }
    const conf = [
      // Each listener keeps its own auth settings.
      'per_listener_settings true',
      // Running as root, mosquitto would switch to user mosquitto and lose access to the temp dir.
      `user ${userInfo().username}`,
      'max_inflight_messages 0',
      'max_queued_messages 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      ...tls,
      `listener ${c.plainPort} 127.0.0.1`,
      'allow_anonymous true',
      '',
    ].join('\n');
    const path = join(c.dir, 'mosquitto.conf');
    writeFileSync(path, conf);
    try {
      c.child = (await startMosquitto(path, [c.tlsPort, c.plainPort], c.log)).child;
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get tlsUrl(): string {
    return `mqtts://127.0.0.1:${this.tlsPort}`;
  }

  /** For the test's subscriber (anonymous, plain). */
  get plainUrl(): string {
    return `mqtt://127.0.0.1:${this.plainPort}`;
  }

  async close(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    await stopMosquitto(c);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
