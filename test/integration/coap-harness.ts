import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import type { CoapServer } from '../../src/coap/server.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log/logger.js';

export const READ = 'read-token-for-tests-0123456789';
export const ADMIN = 'admin-token-for-tests-9876543210';

export function configYaml(dataDir: string, extra = ''): string {
  return `version: 1
gateway:
  id: gw-test
  data_dir: ${dataDir}
  log_level: warn
broker:
  enabled: false
metrics:
  enabled: false
coap:
  host: 127.0.0.1
  port: 0
mgmt:
  read_token: ${READ}
  admin_token: ${ADMIN}
${extra}`;
}

/** A real gateway in this process (CoAP on an ephemeral port), its config file and data dir. */
export interface Harness {
  gateway: Gateway;
  port: number;
  dir: string;
  configPath: string;
  restarts: string[];
  url(path: string): string;
  close(): Promise<void>;
}

export async function startGateway(extra = '', yaml?: (dataDir: string) => string): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-coap-'));
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, (yaml ?? ((d) => configYaml(d, extra)))(join(dir, 'data')));
  const config = loadConfigFile(configPath);
  const restarts: string[] = [];
  const gateway = new Gateway({
    config,
    configPath,
    log: createLogger({ level: config.gateway.log_level }),
    onRestart: (r) => restarts.push(r),
  });
  await gateway.start();
  const coap = gateway.services.find((s) => s.name === 'coap') as CoapServer;
  const port = coap.port!;
  return {
    gateway,
    port,
    dir,
    configPath,
    restarts,
    url: (path) => `coap://127.0.0.1:${port}${path}`,
    close: async () => {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ClientResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Runs libcoap's coap-client-notls (Debian libcoap3-bin) with a time bound. */
export function coapClient(args: string[], timeoutMs = 10000): Promise<ClientResult> {
  return new Promise((resolve) => {
    execFile(
      'coap-client-notls',
      args,
      { timeout: timeoutMs, encoding: 'buffer', maxBuffer: 4 << 20 },
      (err, stdout, stderr) => {
        resolve({
          stdout: stdout.toString('utf8'),
          stderr: stderr.toString('utf8'),
          code: err ? ((err as { code?: number }).code ?? null) : 0,
        });
      },
    );
  });
}
