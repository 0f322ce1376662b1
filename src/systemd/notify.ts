import { spawn } from 'node:child_process';
import sdNotify from 'systemd-notify';
import type { Logger } from '../log/logger.js';

/**
 * systemd Type=notify integration. Node has no unix datagram sockets, so messages go through the
 * `systemd-notify` CLI as a child process (hence NotifyAccess=all in the unit; `--pid` names us as
 * the main process). READY/STATUS use the systemd-notify package; it has no watchdog option, so
 * WATCHDOG=1 spawns the CLI directly. Without NOTIFY_SOCKET everything here is a no-op.
 */
export class SystemdNotifier {
  private timer: NodeJS.Timeout | undefined;
  private readonly enabled: boolean;
  private failedOnce = false;

  constructor(
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.enabled = Boolean(env['NOTIFY_SOCKET']);
  }

  async ready(status: string): Promise<void> {
    if (!this.enabled) return;
    await sdNotify({ ready: true, status, pid: process.pid }).catch((err: unknown) => this.failed(err));
  }

  async status(status: string): Promise<void> {
    if (!this.enabled) return;
    await sdNotify({ status, pid: process.pid }).catch((err: unknown) => this.failed(err));
  }

  stopping(): void {
    if (this.enabled) this.send(['STOPPING=1']);
  }

  /**
   * Pings WATCHDOG=1 every WATCHDOG_USEC/2 while `healthy()` holds. A blocked event loop cannot
   * run this timer at all, and an unhealthy gateway skips the ping, so systemd restarts it.
   */
  startWatchdog(healthy: () => boolean): void {
    const usec = Number(this.env['WATCHDOG_USEC']);
    const pidOk = !this.env['WATCHDOG_PID'] || Number(this.env['WATCHDOG_PID']) === process.pid;
    if (!this.enabled || !Number.isFinite(usec) || usec <= 0 || !pidOk) return;
    const everyMs = Math.max(50, Math.floor(usec / 2000));
    this.timer = setInterval(() => {
      if (healthy()) this.send(['WATCHDOG=1']);
      else this.log.warn('watchdog ping skipped: gateway unhealthy');
    }, everyMs);
    this.timer.unref();
    this.log.info({ everyMs }, 'systemd watchdog enabled');
  }

  stopWatchdog(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private send(vars: string[]): void {
    const child = spawn('systemd-notify', [`--pid=${process.pid}`, ...vars], { stdio: 'ignore' });
    // The v252 CLI waits for the receiver to close its BARRIER fd; never let a stuck one pile up.
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    kill.unref();
    child.on('error', (err) => this.failed(err));
    child.on('exit', () => clearTimeout(kill));
  }

  private failed(err: unknown): void {
    if (this.failedOnce) return;
    this.failedOnce = true;
    this.log.error({ err }, 'cannot notify systemd (is the systemd-notify command installed?)');
  }
}
