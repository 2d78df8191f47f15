// A throwaway certificate authority made with openssl: a server certificate
// for 127.0.0.1 and client certificates by Common Name, for TLS tests.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface TestCa {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate and key signed by the CA, with this Common Name. */
  client(cn: string): { cert: string; key: string };
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function issue(dir: string, name: string, subject: string, extensions: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, extensions);
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', subject], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', cert, '-days', '2', '-sha256', '-extfile', ext], dir);
  return { cert, key };
}

export function makeTestCa(): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-ca-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=etcd-adapter test CA'], dir);
  const server = issue(dir, 'server', '/CN=server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  const clients = new Map<string, { cert: string; key: string }>();
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    serverCert: server.cert,
    serverKey: server.key,
    client(cn) {
      let c = clients.get(cn);
      if (!c) clients.set(cn, (c = issue(dir, `client-${cn}`, `/CN=${cn}`, 'extendedKeyUsage=clientAuth\n')));
      return c;
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
