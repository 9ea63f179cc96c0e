/**
 * A raw HTTP/1.1 server for transport tests: exact bytes on the wire, every odd answer. It
 * parses request heads (GETs only: no request bodies), hands each to `answer` with the asked
 * range, and keeps connections open unless `answer` closes them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { makeTestCa } from '../test-ca.js';

export interface Req { head: string; conn: number }
export type Answer = (req: Req, sock: net.Socket, range: [number, number]) => void;

/** A raw HTTP/1.1 server (HTTPS with `tlsOptions`): parses request heads, hands each to `answer`, keeps connections open. */
export async function scripted(answer: Answer, wholeLength: number, tlsOptions?: tls.TlsOptions): Promise<{ url: string; requests: Req[]; connections: () => number; close: () => Promise<void> }> {
  const requests: Req[] = [];
  let conns = 0;
  const sockets = new Set<net.Socket>();
  const onSocket = (sock: net.Socket): void => {
    const id = ++conns;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        const req = { head, conn: id };
        requests.push(req);
        const m = /range: bytes=(\d+)-(\d+)/i.exec(head);
        answer(req, sock, m ? [Number(m[1]), Number(m[2]) + 1] : [0, wholeLength]);
      }
    });
  };
  const server = tlsOptions ? tls.createServer(tlsOptions, onSocket) : net.createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `${tlsOptions ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    connections: () => conns,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}


/**
 * `scripted` over HTTPS, its certificate from a private CA made for it: `caPem` to trust, `caFile`
 * (for AWS_CA_BUNDLE); `close` also removes the CA's directory.
 */
export async function scriptedTls(answer: Answer, wholeLength: number): Promise<Awaited<ReturnType<typeof scripted>> & { caPem: string; caFile: string }> {
  const work = await mkdtemp(path.join(tmpdir(), 'scripted-tls-'));
  const ca = await makeTestCa(work, 'scripted-http test CA');
  const srv = await scripted(answer, wholeLength, { key: ca.keyPem, cert: ca.certPem });
  return {
    ...srv, caPem: ca.caPem, caFile: path.join(work, 'ca.pem'),
    close: async () => {
      await srv.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}
