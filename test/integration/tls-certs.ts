// Test PKI made with the openssl CLI into a temp dir (EC P-256: a few ms per key):
// a CA, a server certificate for 127.0.0.1/localhost, a client certificate CN=device-42 signed by
// the CA, and a second CA with its own CN=device-42 client (must be refused by the first CA).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** CN=device-42, signed by `ca`. */
  clientCert: string;
  clientKey: string;
  otherCa: string;
  /** CN=device-42, signed by `otherCa`. */
  otherClientCert: string;
  otherClientKey: string;
  cleanup(): void;
}

// A minimal config so the system openssl.cnf (distribution defaults) does not add extensions.
const CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'egw-pki-'));
  const cnf = join(dir, 'openssl.cnf');
  writeFileSync(cnf, CNF);
  const ossl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10000 });
  const key = (name: string) =>
    ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name);
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    ossl(
      'req',
      '-config',
      cnf,
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-subj',
      `/CN=${cn}`,
      '-days',
      '2',
      '-extensions',
      'ca_ext',
      '-out',
      `${name}.pem`,
    );
  };
  const leaf = (name: string, cn: string, caName: string, ext: string) => {
    key(`${name}.key`);
    ossl('req', '-config', cnf, '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    ossl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}.pem`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      cnf,
      '-extensions',
      ext,
      '-out',
      `${name}.pem`,
    );
  };
  ca('ca', 'edge-gateway test CA');
  leaf('server', 'localhost', 'ca', 'server_ext');
  leaf('client', 'device-42', 'ca', 'client_ext');
  ca('other-ca', 'some other CA');
  leaf('other-client', 'device-42', 'other-ca', 'client_ext');
  const p = (n: string) => join(dir, n);
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.pem'),
    otherClientCert: p('other-client.pem'),
    otherClientKey: p('other-client.key'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
