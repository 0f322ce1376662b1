#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { GatewayError } from './errors.js';
import type { DataDirLock } from './store/lock.js';
import { VERSION } from './version.js';

// Every command loads only what it needs (dynamic import): `--version` and `ctl` start in tens of
// milliseconds instead of loading the whole gateway (see scripts/bench-ctl.ts).

const USAGE = `edge-gateway ${VERSION}

Usage:
  edge-gateway [--config FILE]        run the gateway (default config/gateway.yaml)
  edge-gateway check-config FILE      validate a config; exit 1 listing every error with its line
  edge-gateway ctl COMMAND            manage a running gateway over CoAP (ctl --help)
  edge-gateway rules test --input F    run the config's rules over recorded readings (rules test --help)
  edge-gateway hash-password [PW]     print the scrypt hash for broker.users[].password_hash (PW from stdin if omitted)
  edge-gateway --version | --help
`;

/** Subcommands other than running the gateway; each module that adds one registers it here. */
const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  'check-config': checkConfig,
  // Loaded on demand: the management client needs none of the gateway's modules.
  ctl: async (args) => (await import('./ctl/main.js')).ctlCommand(args),
  'hash-password': async (args) => (await import('./broker/hash-password-cli.js')).hashPasswordCommand(args),
  rules: async (args) => (await import('./analytics/cli.js')).rulesCommand(args),
};

async function checkConfig(args: string[]): Promise<number> {
  const file = args[0];
  if (!file) {
    process.stderr.write('usage: edge-gateway check-config FILE\n');
    return 2;
  }
  const { loadConfigFile, parseConfig } = await import('./config/load.js');
  const { migrateConfigText } = await import('./config/migrate.js');
  const { checkAgainstModules } = await import('./capability/modules.js');
  try {
    const migration = existsSync(file) ? migrateConfigText(readFileSync(file, 'utf8')) : undefined;
    if (migration) {
      // check-config never writes: validate what the migration would produce and say so.
      parseConfig(migration.text, file, process.env, (c) => checkAgainstModules(c));
      process.stdout.write(`${file}: valid after migration to version ${migration.to} (done at next start)\n`);
      return 0;
    }
    loadConfigFile(file, process.env, (c) => checkAgainstModules(c));
    process.stdout.write(`${file}: configuration is valid\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
}

async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const configPath = values.config ?? 'config/gateway.yaml';
  const [
    { loadConfigFile, releaseValidator },
    { migrateConfigFile },
    { Gateway },
    { createLogger },
    { checkAgainstModules },
    { EXIT },
    { trimLibraryCaches },
    { lockDataDir },
  ] = await Promise.all([
    import('./config/load.js'),
    import('./config/migrate.js'),
    import('./gateway.js'),
    import('./log/logger.js'),
    import('./capability/modules.js'),
    import('./lifecycle/exit-codes.js'),
    import('./lifecycle/footprint.js'),
    import('./store/lock.js'),
  ]);
  let config;
  try {
    const migration = migrateConfigFile(configPath);
    if (migration) {
      process.stderr.write(
        `migrated ${configPath} from version ${migration.from} to ${migration.to} (backup: ${configPath}.v${migration.from}.bak): ${migration.steps.join('; ')}\n`,
      );
    }
    config = loadConfigFile(configPath, process.env, (c) => checkAgainstModules(c));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  const log = createLogger({ level: config.gateway.log_level });
  // One gateway per data directory, decided before the store or any port is opened.
  let lock: DataDirLock;
  try {
    lock = lockDataDir(config.gateway.data_dir);
  } catch (err) {
    process.stderr.write(`edge-gateway: ${(err as Error).message}\n`);
    log.fatal({ code: (err as GatewayError).code }, (err as Error).message);
    log.flush();
    return EXIT.START_FAILED;
  }
  let exiting = false;
  const fatal = (err: unknown, what: string) => {
    // Never a half-alive process: log, then exit non-zero so systemd restarts us.
    log.fatal({ err }, what);
    process.exit(EXIT.FATAL);
  };
  process.on('uncaughtException', (err) => fatal(err, 'uncaught exception'));
  process.on('unhandledRejection', (err) => fatal(err, 'unhandled promise rejection'));

  trimLibraryCaches();
  let gateway: InstanceType<typeof Gateway>;
  try {
    gateway = new Gateway({
      config,
      configPath,
      log,
      // Not 0: the unit restarts only on failure, or on this status (RestartForceExitStatus=).
      onRestart: (reason) => shutdown(`restart: ${reason}`, EXIT.RESTART),
    });
  } catch (err) {
    // The store opens here (EGW_STORE_OPEN, EGW_STORE_NEWER after a rollback...): a coded start
    // failure, not a usage error.
    process.stderr.write(`edge-gateway: ${(err as Error).message}\n`);
    log.fatal({ err, code: (err as GatewayError).code }, 'gateway failed to start');
    log.flush();
    lock.release();
    return EXIT.START_FAILED;
  }
  function shutdown(reason: string, code: number): void {
    if (exiting) return;
    exiting = true;
    log.info({ reason }, 'shutting down');
    // The bound is enforced here too: a stuck stop must not keep the process alive.
    const hard = setTimeout(() => {
      log.error({ code: 'EGW_SHUTDOWN_TIMEOUT' }, 'graceful shutdown timed out; exiting');
      process.exit(1);
    }, config!.gateway.shutdown_timeout_ms + 2000);
    hard.unref();
    gateway.stop().then(
      () => {
        lock.release();
        log.info('stopped');
        log.flush();
        process.exit(code);
      },
      (err: unknown) => fatal(err, 'shutdown failed'),
    );
  }
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => (exiting ? process.exit(130) : shutdown('SIGINT', 0)));
  try {
    await gateway.start();
  } catch (err) {
    log.fatal({ err, code: (err as GatewayError).code }, 'gateway failed to start');
    // Exit now: a retrying client or timer left by a half-started service must not keep us alive.
    log.flush();
    process.exit(EXIT.START_FAILED);
  }
  releaseValidator(); // the config is validated and frozen; memory back for the long run
  return -1; // keep running
}

async function main(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const cmd = first !== undefined ? COMMANDS[first] : undefined;
  let code: number;
  try {
    code = cmd ? await cmd(rest) : await run(argv);
  } catch (err) {
    process.stderr.write(`${String((err as Error).message ?? err)}\n\n${USAGE}`);
    code = 2;
  }
  if (code < 0) return; // the gateway keeps running
  process.exitCode = code;
  if (cmd) {
    // A subcommand is done: exit now rather than wait for a library's stray timer
    // (node-coap-client 2.1 re-arms a 1 s send-queue timer), once stdout/stderr are flushed.
    await Promise.all([flush(process.stdout), flush(process.stderr)]);
    process.exit(code);
  }
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

void main(process.argv.slice(2));
