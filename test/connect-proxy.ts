/**
 * A CONNECT proxy on 127.0.0.1 for tests of proxy support: tunnels to loopback targets only
 * (anything else gets 403), and records what it saw so a test can prove traffic went through
 * it — the tunnels asked for, the local ports of its upstream sockets (which the target sees
 * as client ports), and any request sent to it in the clear (answered 502).
 */
import http from 'node:http';
import net from 'node:net';

export interface ConnectProxy {
  url: string;
  /** `host:port` of each CONNECT, in order. */
  tunnels: string[];
  upstreamPorts: Set<number>;
  /** URLs of plain (non-CONNECT) requests. */
  plain: string[];
  close(): void;
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  const tunnels: string[] = [];
  const upstreamPorts = new Set<number>();
  const plain: string[] = [];
  const server = http.createServer((req, res) => {
    plain.push(req.url ?? '');
    res.writeHead(502).end();
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const [host, port] = (req.url ?? '').split(':');
    if (host !== '127.0.0.1') {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    tunnels.push(req.url ?? '');
    const up = net.connect(Number(port), host, () => {
      upstreamPorts.add(up.localPort ?? -1);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    tunnels, upstreamPorts, plain,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
