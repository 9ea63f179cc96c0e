/**
 * A private CA and a server certificate it signed for 127.0.0.1, made with openssl, for tests
 * that need real TLS (private-CA trust, proxies, the lean GET path over https).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** PEM strings: the CA's certificate, and the leaf's key and certificate. */
export interface TestCa {
  caPem: string;
  keyPem: string;
  certPem: string;
}

/** Make a private CA named `name` and a leaf certificate for IP 127.0.0.1 in `dir` (ca.pem, leaf.key, leaf.pem). */
export async function makeTestCa(dir: string, name: string): Promise<TestCa> {
  const script = [
    'set -e',
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$CA_NAME"` +
      ' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.pem 2>/dev/null',
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 -keyout leaf.key -out leaf.csr 2>/dev/null',
    'printf "subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n" > ext',
    'openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out leaf.pem 2>/dev/null',
  ].join('\n');
  await new Promise<void>((resolve, reject) => {
    execFile('bash', ['-c', script], { cwd: dir, env: { ...process.env, CA_NAME: name }, timeout: 30_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`openssl: ${stderr || err.message}`));
      else resolve();
    });
  });
  const read = (f: string): Promise<string> => readFile(path.join(dir, f), 'utf8');
  return { caPem: await read('ca.pem'), keyPem: await read('leaf.key'), certPem: await read('leaf.pem') };
}
