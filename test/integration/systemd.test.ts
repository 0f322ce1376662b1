import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayProcess, MAIN, isolatedConfig, tempDir } from '../helpers/gateway-process.js';
import { readServiceSection, systemdRestarts } from '../helpers/systemd-unit.js';
import { EXIT } from '../../src/lifecycle/exit-codes.js';

const UNIT = new URL('../../../systemd/edge-gateway.service', import.meta.url).pathname;
const LISTENER = new URL('../../../test/fixtures/notify_listener.py', import.meta.url).pathname;

interface Note {
  t: number;
  msg?: Record<string, string>;
  listening?: string;
}

test('systemd-analyze verify accepts the unit and its OTA rollback unit', () => {
  // The trial script is installed at a fixed path by scripts/install.sh; verify checks that every
  // Exec path exists, so the copies point at the repository's script (nothing else changes).
  const dir = mkdtempSync(join(tmpdir(), 'egw-unit-'));
  try {
    const trial = join(process.cwd(), 'systemd', 'edge-gateway-trial');
    const units = ['edge-gateway.service', 'edge-gateway-rollback.service'].map((u) => {
      const text = readFileSync(join('systemd', u), 'utf8');
      assert.ok(text.includes('/usr/local/lib/edge-gateway/edge-gateway-trial'), `${u} runs the fixed trial script`);
      writeFileSync(join(dir, u), text.replaceAll('/usr/local/lib/edge-gateway/edge-gateway-trial', trial));
      return join(dir, u);
    });
    const r = spawnSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.error, undefined, `systemd-analyze missing? ${String(r.error)}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', r.stderr);
    const unit = readFileSync(UNIT, 'utf8');
    assert.match(unit, /\nExecStartPre=\/usr\/local\/lib\/edge-gateway\/edge-gateway-trial \/opt\/edge-gateway\n/);
    assert.match(unit, /\nOnFailure=edge-gateway-rollback\.service\n/);
    assert.match(unit, /\nReadWritePaths=[^\n]*\/opt\/edge-gateway/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unit is Type=notify with watchdog, restart limits, a dedicated user and hardening', () => {
  const unit = spawnSync('cat', [UNIT], { encoding: 'utf8' }).stdout;
  for (const line of [
    'Type=notify',
    'NotifyAccess=all',
    'Restart=on-failure',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'PrivateTmp=yes',
    'User=edge-gateway',
  ]) {
    assert.ok(unit.includes(`\n${line}\n`), line);
  }
  assert.match(unit, /\nWatchdogSec=\d+s\n/);
  assert.match(unit, /\nStartLimitBurst=\d+\n/);
  assert.match(unit, /\nReadWritePaths=\/var\/lib\/edge-gateway/);
  assert.match(unit, /\nExecStart=\/usr\/bin\/node (--\S+ )*\S+main\.js /, 'node runs directly, no npm or shell');
});

test('READY, STATUS and WATCHDOG reach NOTIFY_SOCKET; pings stop while the event loop is blocked', async () => {
  const tmp = tempDir('egw-sd-');
  const sock = join(tmp.dir, 'notify.sock');
  const listener = spawn('python3', [LISTENER, sock, '60'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const notes: Note[] = [];
  const listening = new Promise<void>((resolve) => {
    createInterface({ input: listener.stdout! }).on('line', (line) => {
      const n = JSON.parse(line) as Note;
      notes.push(n);
      if (n.listening) resolve();
    });
  });
  let gw: GatewayProcess | undefined;
  try {
    await listening;
    const cfg = tmp.file('gw.yaml', isolatedConfig(join(tmp.dir, 'data')));
    // A test-only preload: SIGUSR2 blocks the event loop for 1.5 s, as a runaway computation would.
    const blocker = tmp.file(
      'block.mjs',
      `process.on('SIGUSR2', () => {
         const start = Date.now();
         while (Date.now() - start < 1500) {}
         process.stderr.write(JSON.stringify({ blockStart: start, blockEnd: Date.now() }) + '\\n');
       });\n`,
    );
    gw = new GatewayProcess(['--config', cfg], {
      NOTIFY_SOCKET: sock,
      WATCHDOG_USEC: '400000',
      NODE_OPTIONS: `--import ${blocker}`,
    });
    await gw.ready();
    const waitFor = async (pred: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      return pred();
    };
    const msgs = (): (Record<string, string> & { t: number })[] =>
      notes.filter((n) => n.msg).map((n) => Object.assign({}, n.msg!, { t: n.t }));
    assert.ok(await waitFor(() => msgs().some((m) => m['READY'] === '1'), 10000), 'READY=1');
    const ready = msgs().find((m) => m['READY'] === '1')!;
    assert.match(ready['STATUS'] ?? '', /metrics listening/, 'STATUS= carries a one-line summary');
    assert.equal(ready['MAINPID'], String(gw.child.pid));
    assert.ok(await waitFor(() => msgs().filter((m) => m['WATCHDOG'] === '1').length >= 3, 10000), '3 watchdog pings');

    gw.child.kill('SIGUSR2');
    assert.ok(await waitFor(() => gw!.stderr.some((l) => l.includes('blockEnd')), 10000), 'the loop was blocked');
    const { blockStart, blockEnd } = JSON.parse(gw.stderr.find((l) => l.includes('blockEnd'))!) as Record<
      string,
      number
    >;
    // Pings resume after the block...
    assert.ok(
      await waitFor(() => msgs().some((m) => m['WATCHDOG'] === '1' && m.t > blockEnd! + 100), 5000),
      'pings resume',
    );
    // ...but none was sent while it lasted (a ping spawned just before the block may land up to ~300 ms in).
    const during = msgs().filter((m) => m['WATCHDOG'] === '1' && m.t > blockStart! + 300 && m.t < blockEnd!);
    assert.deepEqual(during, [], 'no WATCHDOG=1 while the event loop was blocked');

    assert.equal(await gw.stop('SIGTERM'), 0);
    assert.ok(await waitFor(() => msgs().some((m) => m['STOPPING'] === '1'), 5000), 'STOPPING=1 on shutdown');
  } finally {
    if (gw) await gw.stop('SIGKILL');
    listener.stdin!.end();
    listener.kill();
    tmp.cleanup();
  }
});

test('without NOTIFY_SOCKET nothing is sent and nothing fails', async () => {
  const tmp = tempDir('egw-sd-');
  try {
    const gw = GatewayProcess.start(tmp.file('gw.yaml', isolatedConfig(join(tmp.dir, 'data'))), {
      NOTIFY_SOCKET: '',
      WATCHDOG_USEC: '200000',
    });
    await gw.ready();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await gw.stop(), 0);
    assert.ok(!gw.logs.some((l) => /systemd/.test(l.msg)), 'no systemd log lines');
  } finally {
    tmp.cleanup();
  }
});

test('the unit restarts a requested restart (exit 75) and crashes, and leaves a systemctl stop down', () => {
  const unit = readServiceSection(UNIT);
  assert.deepEqual(unit.get('Restart'), ['on-failure']);
  assert.ok(
    (unit.get('RestartForceExitStatus') ?? []).join(' ').split(/\s+/).includes(String(EXIT.RESTART)),
    'RestartForceExitStatus= lists EXIT.RESTART',
  );
  // The model of systemd's decision, checked on the cases it must get right before it is trusted.
  assert.equal(systemdRestarts(new Map([['Restart', ['on-failure']]]), { code: 0 }), false, 'the original bug');
  assert.equal(systemdRestarts(new Map([['Restart', ['on-failure']]]), { code: 1 }), true);
  assert.equal(systemdRestarts(new Map([['Restart', ['on-failure']]]), { signal: 'SIGTERM' }), false);
  assert.equal(systemdRestarts(new Map([['Restart', ['on-failure']]]), { signal: 'SIGKILL' }), true);
  // The shipped unit.
  assert.equal(systemdRestarts(unit, { code: EXIT.RESTART }), true, 'requested restart comes back');
  assert.equal(systemdRestarts(unit, { code: EXIT.FATAL }), true, 'uncaught exception');
  assert.equal(systemdRestarts(unit, { code: EXIT.START_FAILED }), true, 'failed start (bounded by StartLimitBurst)');
  assert.equal(systemdRestarts(unit, { signal: 'SIGABRT' }), true, 'watchdog abort');
  assert.equal(systemdRestarts(unit, { code: EXIT.OK }), false, 'clean stop');
  assert.equal(systemdRestarts(unit, { code: EXIT.OK }, true), false, 'systemctl stop');
  assert.equal(systemdRestarts(unit, { code: EXIT.RESTART }, true), false, 'systemctl stop wins over a restart');
});

test('ctl restart: the gateway stops gracefully and exits with the status the unit restarts on', async () => {
  const tmp = tempDir('egw-sd-');
  const admin = 'admin-token-for-restart-test-0123456789';
  try {
    const cfg = tmp.file(
      'gw.yaml',
      isolatedConfig(join(tmp.dir, 'data')).replace(
        'coap:\n  enabled: false',
        `coap:\n  host: 127.0.0.1\n  port: 0\nmgmt:\n  read_token: read-token-for-restart-test-0123\n  admin_token: ${admin}`,
      ),
    );
    const gw = GatewayProcess.start(cfg, { NOTIFY_SOCKET: '' });
    await gw.ready();
    const port = (await gw.waitForLog((l) => l.msg === 'CoAP listening'))['port'] as number;
    const exited = new Promise<number | null>((r) => gw.child.once('exit', (c) => r(c)));
    const ctl = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [MAIN, 'ctl', '--host', `127.0.0.1:${port}`, '--token', admin, 'restart'],
        { timeout: 20000, env: { ...process.env, EDGE_GATEWAY_TOKEN: '' } },
        (err, _out, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stderr }),
      ),
    );
    assert.equal(ctl.code, 0, ctl.stderr);
    const code = await exited;
    assert.equal(code, EXIT.RESTART);
    assert.ok(
      gw.logs.some((l) => l.msg === 'stopped'),
      'graceful stop before the exit',
    );
    assert.equal(systemdRestarts(readServiceSection(UNIT), { code: code! }), true, 'systemd starts it again');
  } finally {
    tmp.cleanup();
  }
});

test('npm start and the unit run node with one and the same set of V8 flags', () => {
  const pkg = JSON.parse(
    spawnSync('cat', [new URL('../../../package.json', import.meta.url).pathname], { encoding: 'utf8' }).stdout,
  ) as {
    scripts: Record<string, string>;
  };
  const flags = (cmd: string) =>
    [...cmd.matchAll(/(?:^|\s)(--[a-z0-9-]+(?:=\S+)?)(?=\s)/g)].map((m) => m[1]).filter((f) => f !== '--config');
  const fromNpm = flags(pkg.scripts['start']!.replace(/dist\/src\/main\.js.*$/, ' '));
  const fromUnit = flags(
    readServiceSection(UNIT)
      .get('ExecStart')!
      .at(-1)!
      .replace(/\S+main\.js.*$/, ' '),
  );
  assert.ok(fromNpm.length > 0, 'npm start sets V8 flags');
  assert.deepEqual(fromUnit, fromNpm);
});
