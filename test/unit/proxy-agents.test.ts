/**
 * s3Agents (src/net/proxy.ts): the AWS SDK's agents when a proxy is configured. Real sockets on
 * 127.0.0.1: an https origin signed by a private CA (trusted through AWS_CA_BUNDLE) and a
 * CONNECT proxy that counts its tunnels. What matters to users behind a proxy: requests go
 * through it, NO_PROXY is honoured, and connections are kept alive — one tunnel and one TLS
 * handshake for many ranged GETs, not one per request.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { s3Agents } from '../../src/net/proxy.js';
import { startConnectProxy, type ConnectProxy } from '../connect-proxy.js';
import { makeTestCa } from '../test-ca.js';

let work: string;
let origin: https.Server;
let originUrl: string;
let originConnections = 0;
let proxy: ConnectProxy;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'proxy-agents-'));
  const ca = await makeTestCa(work, 'proxy-agents test CA');
  origin = https.createServer({ key: ca.keyPem, cert: ca.certPem }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${req.url}`);
  });
  origin.on('secureConnection', () => { originConnections++; });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  originUrl = `https://127.0.0.1:${(origin.address() as net.AddressInfo).port}`;

  proxy = await startConnectProxy();
});

after(async () => {
  proxy?.close();
  origin?.closeAllConnections();
  origin?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** GET `p` from the origin through `agent`; the body, and the socket it came on. */
function get(agent: http.Agent, p: string): Promise<{ body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${originUrl}${p}`, { agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ body, socket: req.socket! }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('through HTTPS_PROXY: one tunnel and one TLS connection serve many requests in turn', async () => {
  const tunnels = proxy.tunnels;
  tunnels.length = 0;
  originConnections = 0;
  const env = { HTTPS_PROXY: proxy.url, AWS_CA_BUNDLE: path.join(work, 'ca.pem') };
  const { httpsAgent } = s3Agents({ keepAlive: true, maxSockets: 8 }, env);
  try {
    for (let i = 0; i < 5; i++) {
      const r = await get(httpsAgent, `/k${i}`);
      assert.equal(r.body, `hello /k${i}`);
    }
    assert.deepEqual(tunnels, [new URL(originUrl).host], 'one CONNECT for five requests');
    assert.equal(originConnections, 1, 'one TLS handshake with the origin');

    // Requests at once take more tunnels, up to the pool's size, and all are answered.
    const many = await Promise.all(Array.from({ length: 4 }, (_, i) => get(httpsAgent, `/p${i}`)));
    assert.deepEqual(many.map((r) => r.body), ['/p0', '/p1', '/p2', '/p3'].map((p) => `hello ${p}`));
    assert.ok(tunnels.length >= 2 && tunnels.length <= 5, `tunnels: ${tunnels.length}`);
    assert.equal(originConnections, tunnels.length, 'every origin connection came through the proxy');
  } finally {
    httpsAgent.destroy();
  }
});

test('NO_PROXY: the origin is reached directly, and its connection is kept alive too', async () => {
  const tunnels = proxy.tunnels;
  tunnels.length = 0;
  originConnections = 0;
  const env = { HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1', AWS_CA_BUNDLE: path.join(work, 'ca.pem') };
  const { httpsAgent } = s3Agents({ keepAlive: true, maxSockets: 8 }, env);
  try {
    const sockets = new Set<net.Socket>();
    for (let i = 0; i < 3; i++) {
      const r = await get(httpsAgent, `/d${i}`);
      assert.equal(r.body, `hello /d${i}`);
      sockets.add(r.socket);
    }
    assert.deepEqual(tunnels, [], 'no tunnel for a NO_PROXY host');
    assert.equal(originConnections, 1);
    assert.equal(sockets.size, 1);
  } finally {
    httpsAgent.destroy();
  }
});
