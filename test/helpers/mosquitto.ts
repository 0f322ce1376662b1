// Starting and stopping a real mosquitto for the tests that play the cloud (uplink-cloud, tls-cloud,
// profile-cloud): one config file in, the broker listening on every port out.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';

export interface Mosquitto {
  child: ChildProcess;
  /** Its stderr lines (with `log_dest stderr`), for the error message when it does not start. */
  log: string[];
}

function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((r) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

/**
 * Runs `mosquitto -c conf` and resolves once every port accepts (5 s bound); stops it and throws
 * otherwise. Its stderr lines are appended to `log` (kept across restarts by the caller).
 */
export async function startMosquitto(conf: string, ports: readonly number[], log: string[] = []): Promise<Mosquitto> {
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
  const deadline = Date.now() + 5000;
  for (const port of ports) {
    while (!(await accepts(port))) {
      if (Date.now() > deadline || child.exitCode !== null) {
        await stopMosquitto(child);
        throw new Error(`mosquitto did not start: ${log.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return { child, log };
}

/** SIGTERM (mosquitto saves persistent sessions), SIGKILL after 5 s; resolves when it has exited. */
export async function stopMosquitto(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}
