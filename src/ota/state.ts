import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurable } from './durable.js';

/**
 * The OTA state machine, persisted (durably) in `{data_dir}/ota-state.json` so a kill at any point
 * resumes or settles (docs/ota.md §States):
 *   idle → downloading → downloaded → staging → activating → trial → committed
 *                                                                 ↘ rolled_back
 *   any step → failed (with a result code and reason); failed/committed/rolled_back → downloading
 */
export type OtaPhase =
  'idle' | 'downloading' | 'downloaded' | 'staging' | 'activating' | 'trial' | 'committed' | 'rolled_back' | 'failed';

/**
 * Update Result codes of the LwM2M Firmware Update object (OMA LwM2M 1.1, object 5, resource 5),
 * so device-management back ends read our state in their vocabulary.
 */
export const LWM2M_RESULT = {
  initial: 0,
  success: 1,
  not_enough_space: 2,
  out_of_ram: 3,
  connection_lost: 4,
  integrity_failure: 5,
  unsupported_package: 6,
  invalid_uri: 7,
  update_failed: 8,
  unsupported_protocol: 9,
} as const;
export type OtaResult = keyof typeof LWM2M_RESULT;

/** LwM2M object 5 resource 3: 0 Idle, 1 Downloading, 2 Downloaded, 3 Updating. */
export function lwm2mState(phase: OtaPhase): 0 | 1 | 2 | 3 {
  switch (phase) {
    case 'downloading':
      return 1;
    case 'downloaded':
      return 2;
    case 'staging':
    case 'activating':
    case 'trial':
      return 3;
    default:
      return 0;
  }
}

export interface OtaState {
  phase: OtaPhase;
  /** The release being installed (or last installed / rolled back). */
  version: string | null;
  /** The release that was running when it started. */
  from: string | null;
  result: OtaResult;
  reason: string | null;
  /** sha256 of the manifest envelope being applied. */
  manifest: string | null;
  progress: { received: number; total: number } | null;
  /** The uplink was online when the update started: the new release must reconnect to commit. */
  uplinkWasOnline: boolean;
  /** Envelopes (sha256) of releases rolled back here: not retried until a different manifest. */
  rejected: string[];
  /** Wall-clock ms of the last change (data only). */
  updated: number;
}

export const INITIAL_STATE: OtaState = {
  phase: 'idle',
  version: null,
  from: null,
  result: 'initial',
  reason: null,
  manifest: null,
  progress: null,
  uplinkWasOnline: false,
  rejected: [],
  updated: 0,
};

export function loadState(path: string): OtaState {
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as Partial<OtaState>;
    if (typeof s.phase !== 'string') return { ...INITIAL_STATE };
    return { ...INITIAL_STATE, ...s, rejected: Array.isArray(s.rejected) ? s.rejected.slice(-20) : [] };
  } catch {
    // Missing or unreadable (a durable write never leaves it half-written): start from idle.
    return { ...INITIAL_STATE };
  }
}

export function saveState(path: string, s: OtaState): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileDurable(path, JSON.stringify(s, null, 2), 0o600);
}
