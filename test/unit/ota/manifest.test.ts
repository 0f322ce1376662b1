import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkApplicable,
  currentTarget,
  ManifestError,
  rolloutBucket,
  trustedKey,
  verifyEnvelope,
  type Manifest,
} from '../../../src/ota/manifest.js';
import { generateRawKeyPair, signManifest } from '../../../src/ota/sign.js';

const manifest = (o: Partial<Manifest> = {}): Manifest => ({
  format: 1,
  version: '0.2.0',
  url: 'edge-gateway-0.2.0.tar.gz',
  size: 1000,
  sha256: 'a'.repeat(64),
  target: currentTarget(),
  rollout: 100,
  ...o,
});
const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));
const kind = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ManifestError, String(err));
    return err.kind;
  }
  return 'accepted';
};

test('a manifest signed by a trusted key verifies; by an unknown key, or with one changed byte, it does not', () => {
  const a = generateRawKeyPair();
  const b = generateRawKeyPair();
  const env = signManifest(manifest(), [a]);
  assert.equal(verifyEnvelope(bytes(env), [trustedKey(a.publicKey)]).version, '0.2.0');
  assert.equal(
    kind(() => verifyEnvelope(bytes(env), [trustedKey(b.publicKey)])),
    'signature',
  );
  assert.equal(
    kind(() => verifyEnvelope(bytes(env), [])),
    'signature',
  );
  const tampered = { ...env, manifest: env.manifest.replace('0.2.0', '0.2.1') };
  assert.equal(
    kind(() => verifyEnvelope(bytes(tampered), [trustedKey(a.publicKey)])),
    'signature',
  );
  // A signature copied under the trusted key's id does not help an attacker.
  const forged = { ...signManifest(manifest({ version: '9.9.9' }), [b]) };
  forged.signatures[0]!.key_id = trustedKey(a.publicKey).id;
  assert.equal(
    kind(() => verifyEnvelope(bytes(forged), [trustedKey(a.publicKey)])),
    'signature',
  );
});

test('key rotation: any one of several trusted keys suffices; a manifest may carry several signatures', () => {
  const oldKey = generateRawKeyPair();
  const newKey = generateRawKeyPair();
  const both = signManifest(manifest(), [newKey, oldKey]);
  assert.equal(verifyEnvelope(bytes(both), [trustedKey(oldKey.publicKey)]).version, '0.2.0');
  assert.equal(verifyEnvelope(bytes(both), [trustedKey(newKey.publicKey)]).version, '0.2.0');
});

test('hostile envelopes are refused as such, never thrown as something else', () => {
  const k = [trustedKey(generateRawKeyPair().publicKey)];
  for (const raw of [
    Buffer.from('not json'),
    bytes([]),
    bytes({ manifest: 1, signatures: [] }),
    bytes({ manifest: '{}', signatures: 'x' }),
    Buffer.alloc(70 * 1024, 0x20),
  ])
    assert.equal(
      kind(() => verifyEnvelope(raw, k)),
      'envelope',
    );
  assert.equal(
    kind(() => verifyEnvelope(bytes({ manifest: '{}', signatures: [null, 1, { key_id: 1 }] }), k)),
    'signature',
  );
  assert.throws(() => trustedKey('AAAA'), /32 bytes/);
});

test('a signed manifest with a bad shape is refused with the field named', () => {
  const a = generateRawKeyPair();
  const k = [trustedKey(a.publicKey)];
  const signedRaw = (m: unknown) => {
    const env = signManifest(m as Manifest, [a]);
    return bytes(env);
  };
  for (const [m, re] of [
    [{ ...manifest(), version: 'latest' }, /version must be semver/],
    [{ ...manifest(), sha256: 'XYZ' }, /sha256/],
    [{ ...manifest(), size: -1 }, /size/],
    [{ ...manifest(), rollout: 101 }, /rollout/],
    [{ ...manifest(), format: 2 }, /format/],
    [{ ...manifest(), target: { arch: 'arm64' } }, /target/],
  ] as const)
    assert.throws(() => verifyEnvelope(signedRaw(m), k), re);
});

test('applicability: target, anti-replay, signed downgrade, min_version, rollout bucket', () => {
  const here = { running: '0.2.0', gatewayId: 'gw-1', target: currentTarget() };
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.3.0' }), here)),
    'accepted',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.2.0' }), here)),
    'not_newer',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.1.0' }), here)),
    'not_newer',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.1.0', allow_downgrade: true }), here)),
    'accepted',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.2.0', allow_downgrade: true }), here)),
    'not_newer',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.3.0', target: { ...currentTarget(), arch: 'mips' } }), here)),
    'target',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.3.0', target: { ...currentTarget(), node_abi: '1' } }), here)),
    'target',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.3.0', min_version: '0.2.5' }), here)),
    'min_version',
  );
  const bucket = rolloutBucket('gw-1');
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.3.0', rollout: bucket }), here)),
    'rollout',
  );
  assert.equal(
    kind(() => checkApplicable(manifest({ version: '0.3.0', rollout: bucket + 1 }), here)),
    'accepted',
  );
  // Buckets spread: 1,000 ids land in every decile.
  const deciles = new Set(Array.from({ length: 1000 }, (_, i) => Math.floor(rolloutBucket(`gw-${i}`) / 10)));
  assert.equal(deciles.size, 10);
});
