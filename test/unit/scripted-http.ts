/**
 * A raw HTTP/1.1 server for transport tests: exact bytes on the wire, every odd answer. It
 * parses request heads (GETs only: no request bodies), hands each to `answer` with the asked
 * range, and keeps connections open unless `answer` closes them.
 */
import net from 'node:net';
import tls from 'node:tls';

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

