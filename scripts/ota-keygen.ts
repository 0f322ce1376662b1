/**
 * Makes an ed25519 key pair for signing OTA manifests (docs/ota.md §Keys).
 * Run: node dist/scripts/ota-keygen.js NAME   → NAME.key (private, mode 0600; keep it off the boards)
 * and prints the public key for `ota.trusted_keys` in the gateway config.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { generateRawKeyPair } from '../src/ota/sign.js';

const name = process.argv[2];
if (!name || name.startsWith('-')) {
  process.stderr.write('usage: ota-keygen NAME   (writes NAME.key, prints the public key)\n');
  process.exit(2);
}
const file = `${name}.key`;
if (existsSync(file)) {
  process.stderr.write(`${file} exists; refusing to overwrite a signing key\n`);
  process.exit(1);
}
const k = generateRawKeyPair();
writeFileSync(
  file,
  JSON.stringify({ privateKey: k.privateKey, publicKey: k.publicKey, keyId: k.keyId }, null, 2) + '\n',
  {
    mode: 0o600,
    flag: 'wx',
  },
);
process.stdout.write(`${file}: private key (key id ${k.keyId}); keep it secret and off the boards.\n`);
process.stdout.write(`public key for ota.trusted_keys:\n  - "${k.publicKey}"\n`);
