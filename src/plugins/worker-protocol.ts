/** Messages between a plugin worker (worker-entry.ts) and its host (worker.ts). Structured-clone only. */
import type { PluginCapabilities, PluginCoapReply, PluginReading, PublishOptions } from './api.js';

export interface WorkerInit {
  file: string;
  generation: number;
  name: string;
}

export type CallOp =
  | { op: 'publish'; topic: string; payload: unknown; opts: PublishOptions | undefined }
  | { op: 'command'; deviceId: string; payload: unknown }
  | { op: 'kvGet'; key: string }
  | { op: 'kvSet'; key: string; value: unknown }
  | { op: 'kvDelete'; key: string }
  | { op: 'kvKeys' }
  | { op: 'coap'; path: string; methods: string[] };

export type FromWorker =
  | {
      t: 'def';
      def: {
        name: unknown;
        version: unknown;
        apiVersion: unknown;
        capabilities: unknown;
        configSchema: unknown;
        hasSetup: boolean;
      } | null;
      error?: string;
    }
  | { t: 'ready' }
  | { t: 'setupError'; name: string; message: string; code?: string }
  | { t: 'hook'; kind: 'observe' | 'alert' | 'inspection' }
  | { t: 'call'; id: number; call: CallOp }
  | { t: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; obj: unknown; msg: string | undefined }
  | { t: 'metric'; op: 'counter' | 'gauge'; h: number; metric: string; help: string; labels: string[] }
  | { t: 'metricUpdate'; h: number; value: number; labels: Record<string, string> | undefined }
  | { t: 'done'; id: number; errors: string[] }
  | { t: 'timer'; ms: number; error?: string }
  | { t: 'coapRes'; id: number; reply: PluginCoapReply | null; error?: string }
  | { t: 'stopped' };

export type ToWorker =
  | { t: 'setup'; config: unknown; budgetMs: number }
  | { t: 'ret'; id: number; ok: boolean; value?: unknown; error?: { message: string; code?: string } }
  | { t: 'readings'; id: number; rs: PluginReading[] }
  | { t: 'alert'; id: number; doc: Record<string, unknown>; key: string }
  | { t: 'inspection'; id: number; doc: Record<string, unknown>; key: string }
  | { t: 'coap'; id: number; method: string; req: unknown }
  | { t: 'stop'; timeoutMs: number };

export type { PluginCapabilities };
