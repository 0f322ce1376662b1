declare module 'systemd-notify' {
  import type { ChildProcess } from 'node:child_process';
  interface NotifyOptions {
    ready?: boolean;
    status?: string;
    pid?: number;
    booted?: boolean;
  }
  function notify(opts?: NotifyOptions): Promise<ChildProcess>;
  export default notify;
}
