import { createHash, createPublicKey, verify as verifySig, type KeyObject } from 'node:crypto';
import semver from 'semver';

/**
 * The OTA manifest (docs/ota.md): what a release is, where its bundle is and what it runs on,
 * signed with ed25519. The signed envelope carries the manifest as the exact bytes that were
 * signed (a JSON string), so no canonical-JSON rules are needed: verify those bytes, then parse.
 * Raw ed25519 keys and no validity dates: boards without a battery-backed clock boot in 1970.
 */

export const MANIFEST_FORMAT = 1;
/** The envelope is small; anything larger is refused before it is parsed. */
export const MAX_ENVELOPE_BYTES = 64 * 1024;

export interface Target {
  /** `process.platform`, e.g. linux. */
  platform: string;
  /** `process.arch`, e.g. arm64, x64. */
  arch: string;
  /** `process.versions.modules` (Node ABI of native modules), e.g. "115" for Node 20. */
  node_abi: string;
}

export interface Manifest {
  format: 1;
  /** Semver of the release. */
  version: string;
  /** Bundle URL, absolute or relative to the manifest URL. */
  url: string;
  size: number;
  /** Lower-case hex sha256 of the bundle bytes. */
  sha256: string;
  target: Target;
  /** The release applies only on top of this version or newer (semver), if set. */
  min_version?: string;
  /** Staged rollout: a gateway takes it when hash(gateway id) mod 100 < rollout (0..100). */
  rollout: number;
  /** Signed permission to install a version not newer than the running one (anti-replay otherwise). */
  allow_downgrade?: boolean;
  notes?: string;
}

export interface Signature {
  /** First 16 hex digits of sha256(raw 32-byte public key). */
  key_id: string;
  /** base64 ed25519 signature of the `manifest` string's UTF-8 bytes. */
  sig: string;
}

/** What is published at the channel URL. */
export interface Envelope {
  manifest: string;
  signatures: Signature[];
}

export type OtaRefusal = 'envelope' | 'signature' | 'format' | 'target' | 'not_newer' | 'min_version' | 'rollout';

/** A manifest that must not be installed here; `reason` is for people, `kind` for code. */
export class ManifestError extends Error {
  constructor(
    readonly kind: OtaRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

export interface TrustedKey {
  id: string;
  key: KeyObject;
}

export function keyId(raw: Uint8Array): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** A trusted key from its raw 32 bytes in base64 (what scripts/ota-keygen prints). */
export function trustedKey(base64: string): TrustedKey {
  const raw = Buffer.from(base64.trim(), 'base64');
  if (raw.length !== 32) throw new RangeError(`an ed25519 public key is 32 bytes, this one is ${raw.length}`);
  return {
    id: keyId(raw),
    key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' }),
  };
}

export function currentTarget(): Target {
  return { platform: process.platform, arch: process.arch, node_abi: process.versions.modules };
}

/**
 * Verifies the envelope's signature with any trusted key, then parses and checks the manifest.
 * Nothing of the manifest is trusted (not even its URL) before a signature verifies.
 */
export function verifyEnvelope(bytes: Uint8Array, keys: readonly TrustedKey[]): Manifest {
  if (bytes.length > MAX_ENVELOPE_BYTES)
    throw new ManifestError('envelope', `manifest larger than ${MAX_ENVELOPE_BYTES} bytes`);
  let env: unknown;
  try {
    env = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ManifestError('envelope', 'manifest envelope is not JSON');
  }
  if (
    typeof env !== 'object' ||
    env === null ||
    typeof (env as Envelope).manifest !== 'string' ||
    !Array.isArray((env as Envelope).signatures)
  )
    throw new ManifestError('envelope', 'manifest envelope needs "manifest" (string) and "signatures" (array)');
  const { manifest, signatures } = env as Envelope;
  const signed = Buffer.from(manifest, 'utf8');
  let ok = false;
  for (const s of signatures.slice(0, 16)) {
    if (typeof s !== 'object' || s === null || typeof s.key_id !== 'string' || typeof s.sig !== 'string') continue;
    const k = keys.find((t) => t.id === s.key_id);
    if (!k) continue;
    const sig = Buffer.from(s.sig, 'base64');
    if (sig.length !== 64) continue;
    if (verifySig(null, signed, k.key, sig)) {
      ok = true;
      break;
    }
  }
  if (!ok)
    throw new ManifestError(
      'signature',
      keys.length === 0
        ? 'no trusted OTA key is configured (ota.trusted_keys)'
        : 'manifest signature does not verify with any trusted key',
    );
  let m: unknown;
  try {
    m = JSON.parse(manifest);
  } catch {
    throw new ManifestError('format', 'signed manifest is not JSON');
  }
  return checkManifest(m);
}

/** Shape checks of a (verified) manifest. */
export function checkManifest(m: unknown): Manifest {
  const bad = (msg: string) => new ManifestError('format', `manifest: ${msg}`);
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad('not an object');
  const o = m as Record<string, unknown>;
  if (o['format'] !== MANIFEST_FORMAT) throw bad(`format must be ${MANIFEST_FORMAT}`);
  if (typeof o['version'] !== 'string' || semver.valid(o['version']) === null) throw bad('version must be semver');
  if (typeof o['url'] !== 'string' || o['url'].length === 0 || o['url'].length > 2048) throw bad('url missing');
  if (typeof o['size'] !== 'number' || !Number.isSafeInteger(o['size']) || o['size'] <= 0)
    throw bad('size must be a positive integer');
  if (typeof o['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(o['sha256']))
    throw bad('sha256 must be 64 lower-case hex digits');
  const t = o['target'] as Record<string, unknown> | undefined;
  if (!t || typeof t['platform'] !== 'string' || typeof t['arch'] !== 'string' || typeof t['node_abi'] !== 'string')
    throw bad('target needs platform, arch and node_abi (strings)');
  if (
    o['min_version'] !== undefined &&
    (typeof o['min_version'] !== 'string' || semver.valid(o['min_version']) === null)
  )
    throw bad('min_version must be semver');
  const rollout = o['rollout'] ?? 100;
  if (typeof rollout !== 'number' || !Number.isInteger(rollout) || rollout < 0 || rollout > 100)
    throw bad('rollout must be an integer 0..100');
  if (o['allow_downgrade'] !== undefined && typeof o['allow_downgrade'] !== 'boolean')
    throw bad('allow_downgrade must be boolean');
  if (o['notes'] !== undefined && typeof o['notes'] !== 'string') throw bad('notes must be a string');
  const out: Manifest = {
    format: 1,
    version: o['version'],
    url: o['url'],
    size: o['size'],
    sha256: o['sha256'],
    target: { platform: t['platform'], arch: t['arch'], node_abi: t['node_abi'] },
    rollout,
  };
  if (o['min_version'] !== undefined) out.min_version = o['min_version'] as string;
  if (o['allow_downgrade'] !== undefined) out.allow_downgrade = o['allow_downgrade'] as boolean;
  if (o['notes'] !== undefined) out.notes = o['notes'] as string;
  return out;
}

/** Stable bucket 0..99 of a gateway id for staged rollouts (first 4 bytes of sha256, mod 100). */
export function rolloutBucket(gatewayId: string): number {
  return createHash('sha256').update(gatewayId).digest().readUInt32BE(0) % 100;
}

export interface ApplicabilityInput {
  running: string;
  gatewayId: string;
  target: Target;
}

/**
 * Whether this gateway should take the release: target first (a bundle for another arch or ABI
 * is never downloaded), then anti-replay (newer than running, unless a signed downgrade), the
 * minimum version it applies from, the rollout bucket.
 */
export function checkApplicable(m: Manifest, at: ApplicabilityInput): void {
  const t = m.target;
  if (t.platform !== at.target.platform || t.arch !== at.target.arch || t.node_abi !== at.target.node_abi)
    throw new ManifestError(
      'target',
      `bundle is for ${t.platform}-${t.arch} node ABI ${t.node_abi}; this gateway is ${at.target.platform}-${at.target.arch} ABI ${at.target.node_abi}`,
    );
  if (!semver.gt(m.version, at.running) && !(m.allow_downgrade === true && m.version !== at.running))
    throw new ManifestError('not_newer', `version ${m.version} is not newer than the running ${at.running}`);
  if (m.min_version !== undefined && semver.lt(at.running, m.min_version))
    throw new ManifestError('min_version', `${m.version} applies from ${m.min_version}; running ${at.running}`);
  const bucket = rolloutBucket(at.gatewayId);
  if (bucket >= m.rollout)
    throw new ManifestError('rollout', `staged rollout at ${m.rollout} %; this gateway's bucket is ${bucket}`);
}
