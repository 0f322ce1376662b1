import { createPrivateKey, generateKeyPairSync, sign as signBytes } from 'node:crypto';
import { keyId, type Envelope, type Manifest } from './manifest.js';

/** A raw ed25519 key pair in base64 (32-byte seed, 32-byte public key), as ota-keygen writes them. */
export interface RawKeyPair {
  privateKey: string;
  publicKey: string;
  keyId: string;
}

export function generateRawKeyPair(): RawKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const priv = privateKey.export({ format: 'jwk' });
  const pub = publicKey.export({ format: 'jwk' });
  const raw = Buffer.from(pub.x!, 'base64url');
  return {
    privateKey: Buffer.from(priv.d!, 'base64url').toString('base64'),
    publicKey: raw.toString('base64'),
    keyId: keyId(raw),
  };
}

/** Signs a manifest with one or more raw private keys (base64 seed + its public key). */
export function signManifest(manifest: Manifest, keys: readonly { privateKey: string; publicKey: string }[]): Envelope {
  const text = JSON.stringify(manifest, null, 2);
  const bytes = Buffer.from(text, 'utf8');
  return {
    manifest: text,
    signatures: keys.map((k) => {
      const pub = Buffer.from(k.publicKey, 'base64');
      const key = createPrivateKey({
        key: {
          kty: 'OKP',
          crv: 'Ed25519',
          d: Buffer.from(k.privateKey, 'base64').toString('base64url'),
          x: pub.toString('base64url'),
        },
        format: 'jwk',
      });
      return { key_id: keyId(pub), sig: signBytes(null, bytes, key).toString('base64') };
    }),
  };
}
