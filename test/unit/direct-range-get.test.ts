/**
 * DirectRangeGetter against a scripted HTTP server (exact bytes on the wire, every odd answer)
 * and against the real local S3 (s3rver behind the SigV4-verifying gate), plus AwsObjectStore's
 * fall-back to the SDK when the fast path meets an answer it does not handle.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, mock, test } from 'node:test';
import { DirectGetUnsupported, DirectRangeGetter } from '../../src/s3/direct-range-get.js';
import { AwsObjectStore, isRetryableBodyError, toS3Error } from '../../src/s3/aws-object-store.js';
import { S3Error } from '../../src/s3/object-store.js';
import { S3Client } from '@aws-sdk/client-s3';
import { startStack, type Stack } from '../server/stack.js';
import { scripted, scriptedTls, type Answer } from './scripted-http.js';

const creds = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };
const OBJECT = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7 + 3) & 0xff));

function partial(sock: net.Socket, [s, e]: [number, number], extra = ''): void {
  sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${e - s}\r\nContent-Range: bytes ${s}-${e - 1}/${OBJECT.length}\r\nETag: "abc123"\r\n${extra}\r\n`);
  sock.write(OBJECT.subarray(s, e));
}

function s3error(sock: net.Socket, status: number, code: string, extraHeaders = ''): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>m</Message></Error>`;
  sock.write(`HTTP/1.1 ${status} X\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`);
}

const loc = { bucket: 'bkt', key: 'dir/a b+c(1)é.bin' };

/** Read `count` consecutive ranges of `size` bytes through `g`, each checked against OBJECT. */
async function readRanges(g: DirectRangeGetter, count: number, size: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const into = Buffer.alloc(size);
    await g.getInto(loc, i * size, (i + 1) * size, into);
    assert.ok(into.equals(OBJECT.subarray(i * size, (i + 1) * size)), `range ${i}`);
  }
}

/** Run `fn` with a getter for a scripted server that answers with `answer`; both closed after. */
/** Two reads after an answer the reader learns from: right bytes, and no second refusal (3 requests in all). */
async function twoReadsAfterOneRefusal(g: DirectRangeGetter, srv: Awaited<ReturnType<typeof scripted>>, learned: string): Promise<void> {
  const into = Buffer.alloc(100);
  await g.getInto(loc, 0, 100, into);
  assert.ok(into.equals(OBJECT.subarray(0, 100)));
  await g.getInto(loc, 100, 200, into);
  assert.equal(srv.requests.length, 3, learned);
}

async function onWire(answer: Answer, fn: (g: DirectRangeGetter, srv: Awaited<ReturnType<typeof scripted>>) => Promise<void>): Promise<void> {
  const srv = await scripted(answer, OBJECT.length);
  const g = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds });
  try {
    await fn(g, srv);
  } finally {
    g.destroy();
    await srv.close();
  }
}

describe('DirectRangeGetter on the wire', () => {
  test('reads ranges into the given buffer over one keep-alive connection, signed for the key as S3 encodes it', async () => {
    await onWire((_req, sock, r) => partial(sock, r), async (g, srv) => {
      for (const [s, e] of [[0, 100_000], [100_000, 250_000], [250_000, 300_000], [5, 6]] as const) {
        const into = Buffer.alloc(e - s + 10, 0xee);
        const { etag } = await g.getInto(loc, s, e, into);
        assert.equal(etag, 'abc123');
        assert.ok(into.subarray(0, e - s).equals(OBJECT.subarray(s, e)), `bytes ${s}-${e}`);
        assert.ok(into.subarray(e - s).every((b) => b === 0xee), 'nothing written past the range');
      }
      assert.equal(srv.connections(), 1, 'sequential GETs share one connection');
      const head = srv.requests[0]!.head;
      assert.match(head, /^GET \/bkt\/dir\/a%20b%2Bc%281%29%C3%A9\.bin HTTP\/1\.1/);
      assert.match(head, /authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-east-1\/s3\/aws4_request/i);
      assert.match(head, /x-amz-content-sha256: e3b0c442/i);
    });
  });

  test('stat: the size (Content-Range) and ETag, as HeadObject gives them, from a signed GET of the first byte', async () => {
    await onWire((_req, sock, r) => partial(sock, r), async (g, srv) => {
      assert.deepEqual(await g.stat(loc), { size: OBJECT.length, etag: 'abc123' });
      const head = srv.requests[0]!.head;
      assert.match(head, /^GET \/bkt\/dir\//);
      assert.match(head, /range: bytes=0-0\r\n/i);
      assert.match(head, /authorization: AWS4-HMAC-SHA256/i);
    });
  });

  test('parallel GETs each get their own connection, and the bytes land in the right buffers', async () => {
    await onWire((_req, sock, r) => setTimeout(() => partial(sock, r), 5), async (g, srv) => {
      const ranges = Array.from({ length: 12 }, (_, i) => [i * 25_000, (i + 1) * 25_000] as const);
      const bufs = ranges.map(([s, e]) => Buffer.alloc(e - s));
      await Promise.all(ranges.map(([s, e], i) => g.getInto(loc, s, e, bufs[i]!)));
      ranges.forEach(([s, e], i) => assert.ok(bufs[i]!.equals(OBJECT.subarray(s, e))));
      assert.equal(srv.connections(), 12);
    });
  });

  test('S3 error documents become S3Error with S3\'s code and status', async () => {
    const answers: Array<[number, string]> = [[400, 'ExpiredToken'], [403, 'AccessDenied'], [404, 'NoSuchKey'], [412, 'PreconditionFailed'], [503, 'SlowDown']];
    let n = 0;
    await onWire((_req, sock) => {
      const [status, code] = answers[n++ % answers.length]!;
      s3error(sock, status, code);
    }, async (g, srv) => {
      for (const [status, code] of answers) {
        const err = await g.getInto(loc, 0, 10, Buffer.alloc(10), { ifMatch: 'v1' }).then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof S3Error, `${code}: ${String(err)}`);
        assert.equal(err.code, code);
        assert.equal(err.status, status);
      }
      assert.equal(srv.connections(), 1, 'an error answer with a body of known length keeps the connection');
      assert.match(srv.requests[0]!.head, /if-match: "v1"/i);
    });
  });

  test('answers it does not handle are DirectGetUnsupported: chunked or unframed success, a redirect, a 200 to a range', async () => {
    const bad: Array<(sock: net.Socket, r: [number, number]) => void> = [
      (sock) => sock.write('HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
      (sock) => { sock.write('HTTP/1.1 206 Partial Content\r\n\r\nhello'); sock.end(); },
      (sock) => sock.write('HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n'),
      (sock) => sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${OBJECT.length}\r\n\r\n`),
    ];
    let n = 0;
    await onWire((_req, sock, r) => bad[n++]!(sock, r), async (g) => {
      for (let i = 0; i < bad.length; i++) {
        const err = await g.getInto(loc, 10, 15, Buffer.alloc(5)).then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof DirectGetUnsupported, `answer ${i}: ${String(err)}`);
        assert.equal(err.requestOnly, i === 2, `only the redirect (answer 2) is for this request only: answer ${i}`);
      }
      assert.equal(g.usable, false, 'an answer it cannot read turns the reader off for its callers');
    });
  });

  test('bytes of another range than asked for are InvalidRange: never used, and the reader stays in use', async () => {
    await onWire((_req, sock, [s, e]) => partial(sock, [s + 1, e + 1]), async (g) => {
      const into = Buffer.alloc(5, 0xee);
      await assert.rejects(g.getInto(loc, 10, 15, into), (e: unknown) => e instanceof S3Error && e.code === 'InvalidRange');
      assert.ok(into.every((b) => b === 0xee), 'not one of those bytes was written');
      assert.equal(g.usable, true);
    });
  });

  test('a redirect is handed over for that request only: the reader stays in use', async () => {
    await onWire((_req, sock) => sock.write('HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n'), async (g) => {
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)), (e: unknown) => e instanceof DirectGetUnsupported && e.requestOnly);
      assert.equal(g.usable, true);
    });
  });

  test('a server that keeps redirecting, or keeps refusing the clock, gets two tries, not a loop', async () => {
    let n = 0;
    await onWire((_req, sock) => s3error(sock, 301, 'PermanentRedirect', `x-amz-bucket-region: eu-west-${++n}\r\n`), async (g, srv) => {
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)), (e: unknown) => e instanceof DirectGetUnsupported);
      assert.equal(srv.requests.length, 2, 'the first redirect is followed, the second is handed to the SDK');
    });
    await onWire((_req, sock) => s3error(sock, 403, 'RequestTimeTooSkewed', `Date: ${new Date(Date.now() + 3600_000).toUTCString()}\r\n`), async (g, srv) => {
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)), (e: unknown) => e instanceof S3Error && e.code === 'RequestTimeTooSkewed');
      assert.equal(srv.requests.length, 2, 'signed again once with S3\'s clock, then given up');
    });
    await onWire((_req, sock) => s3error(sock, 403, 'RequestTimeTooSkewed'), async (g, srv) => {
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)), (e: unknown) => e instanceof S3Error && e.code === 'RequestTimeTooSkewed');
      assert.equal(srv.requests.length, 1, 'without a Date header there is no clock to take');
    });
  });

  test('error answers framed any way S3 frames them (chunked, until close) still give S3\'s code', async () => {
    const doc = (code: string): string => `<Error><Code>${code}</Code></Error>`;
    const answers: Array<(sock: net.Socket) => void> = [
      (sock) => {
        const body = doc('AccessDenied');
        sock.write(`HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n`);
        sock.write(`${(10).toString(16)}\r\n${body.slice(0, 10)}\r\n`);
        setTimeout(() => sock.write(`${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`), 10);
      },
      (sock) => { sock.write(`HTTP/1.1 503 Slow Down\r\nConnection: close\r\n\r\n${doc('SlowDown')}`); sock.end(); },
    ];
    let n = 0;
    await onWire((_req, sock) => answers[n++]!(sock), async (g) => {
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)), (e: unknown) => e instanceof S3Error && e.code === 'AccessDenied' && e.status === 403);
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)), (e: unknown) => e instanceof S3Error && e.code === 'SlowDown' && e.status === 503);
      assert.equal(g.usable, true, 'error answers never turn the reader off');
    });
  });

  test('a head that arrives a few bytes at a time is read right', async () => {
    await onWire((_req, sock, [s, e]) => {
      const head = `HTTP/1.1 206 Partial Content\r\nContent-Length: ${e - s}\r\nContent-Range: bytes ${s}-${e - 1}/${OBJECT.length}\r\nETag: "abc"\r\n\r\n`;
      const wire = Buffer.concat([Buffer.from(head), OBJECT.subarray(s, e)]);
      let at = 0;
      const drip = (): void => {
        if (sock.destroyed || at >= wire.length) return;
        const step = at < head.length + 20 ? 7 : 50_000;
        sock.write(wire.subarray(at, at + step));
        at += step;
        setTimeout(drip, 1);
      };
      drip();
    }, async (g) => {
      const into = Buffer.alloc(120_000);
      const { etag } = await g.getInto(loc, 1000, 121_000, into);
      assert.equal(etag, 'abc');
      assert.ok(into.equals(OBJECT.subarray(1000, 121_000)));
    });
  });

  test('a server that ends an idle keep-alive connection politely (FIN) costs no error and no wasted request (the FIN is seen before reuse here; the race with a pending close is not reproduced)', async () => {
    await onWire((_req, sock, r) => {
      partial(sock, r);
      setTimeout(() => sock.end(), 5); // an idle timeout on the server's side
    }, async (g, srv) => {
      for (let i = 0; i < 3; i++) {
        const into = Buffer.alloc(1000);
        await g.getInto(loc, i * 1000, (i + 1) * 1000, into);
        assert.ok(into.equals(OBJECT.subarray(i * 1000, (i + 1) * 1000)));
        await new Promise((r) => setTimeout(r, 50)); // the FIN arrives while the socket is idle
      }
      assert.equal(srv.requests.length, 3, 'no request was written to a socket the server had ended');
    });
  });

  test('RequestTimeTooSkewed: the request is signed again with S3\'s clock (from its Date header), once', async () => {
    const serverAhead = 3600_000;
    await onWire((req, sock, r) => {
      const amzDate = /x-amz-date: (\d{8}T\d{6}Z)/i.exec(req.head)![1]!;
      const signedAt = Date.parse(amzDate.replace(/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/, '$1-$2-$3T$4:$5:$6Z'));
      if (Math.abs(signedAt - (Date.now() + serverAhead)) > 5 * 60_000) {
        s3error(sock, 403, 'RequestTimeTooSkewed', `Date: ${new Date(Date.now() + serverAhead).toUTCString()}\r\n`);
      } else partial(sock, r);
    }, (g, srv) => twoReadsAfterOneRefusal(g, srv, 'one refusal, then the offset is kept'));
  });

  test('an object shorter than the range asked is InvalidRange, not a quiet short read', async () => {
    await onWire((_req, sock) => sock.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nContent-Range: bytes 10-12/13\r\n\r\nabc'), async (g) => {
      await assert.rejects(g.getInto(loc, 10, 15, Buffer.alloc(5)), (e: unknown) => e instanceof S3Error && e.code === 'InvalidRange');
    });
  });

  test('over TLS: the server is checked against the given CA (AWS_CA_BUNDLE), and refused without it', async () => {
    const srv = await scriptedTls((_req, sock, r) => partial(sock, r), OBJECT.length);
    const trusted = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds, ca: [srv.caPem] });
    const untrusted = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds });
    try {
      await readRanges(trusted, 3, 100_000);
      assert.equal(srv.connections(), 1, 'one TLS session for all three');
      await assert.rejects(untrusted.getInto(loc, 0, 10, Buffer.alloc(10)), (e: NodeJS.ErrnoException) => /certificate|self.signed|UNABLE_TO/i.test(`${e.code} ${e.message}`));
    } finally {
      trusted.destroy();
      untrusted.destroy();
      await srv.close();
    }
  });

  test('a redirect naming the bucket\'s region is followed once, signed for that region', async () => {
    await onWire((req, sock, r) => {
      if (/\/us-east-1\/s3/.test(req.head)) {
        // As S3 may send it: chunked; the region is in a header.
        const body = '<Error><Code>PermanentRedirect</Code></Error>';
        sock.write(`HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: eu-west-2\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
      }
      else partial(sock, r);
    }, async (g, srv) => {
      await twoReadsAfterOneRefusal(g, srv, 'the region is remembered for the bucket');
      assert.match(srv.requests[1]!.head, /Credential=AKIDTEST\/\d{8}\/eu-west-2\/s3/);
    });
  });

  test('a reused keep-alive socket that dies before answering is retried once on a new one; a new one is not', async () => {
    let dropFresh = false;
    const srv = await scripted((req, sock, r) => {
      const nth = srv.requests.filter((q) => q.conn === req.conn).length;
      // The server closes a connection when its second request arrives (an idle timeout racing
      // the request), and with dropFresh even the first.
      if (nth > 1 || dropFresh) sock.destroy();
      else partial(sock, r);
    }, OBJECT.length);
    const g = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds });
    try {
      await readRanges(g, 4, 1000);
      assert.equal(srv.connections(), 4, 'each GET after the first met a dead socket and took a new one');
      assert.equal(srv.requests.length, 7);
      dropFresh = true;
      const err = await g.getInto(loc, 0, 10, Buffer.alloc(10)).then(() => undefined, (e: NodeJS.ErrnoException) => e);
      assert.ok(err, 'a new connection that dies is an error for the caller (its retry loop backs off)');
      assert.equal(srv.requests.length, 9, 'one try on the reused socket, one on a new one, no more');
      assert.ok(isRetryableBodyError(err), 'the caller\'s retry loop takes it from there');
      // No idle socket is left: this GET starts on a new connection, which dies, and is not retried.
      await assert.rejects(g.getInto(loc, 0, 10, Buffer.alloc(10)));
      assert.equal(srv.requests.length, 10, 'a fresh connection that dies is not retried here');
    } finally {
      g.destroy();
      await srv.close();
    }
  });

  test('a body cut short rejects as a premature close; an abort rejects at once; neither writes afterwards', async () => {
    let mode = 'cut';
    await onWire((_req, sock, [s, e]) => {
      sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${e - s}\r\nContent-Range: bytes ${s}-${e - 1}/${OBJECT.length}\r\n\r\n`);
      sock.write(OBJECT.subarray(s, s + 1000));
      if (mode === 'cut') setTimeout(() => sock.destroy(), 10);
      else setTimeout(() => { if (!sock.destroyed) sock.write(OBJECT.subarray(s + 1000, e)); }, 200);
    }, async (g) => {
      const into = Buffer.alloc(50_000);
      const err = await g.getInto(loc, 0, 50_000, into).then(() => undefined, (e: NodeJS.ErrnoException) => e);
      assert.ok(err, 'a cut body must not resolve');
      assert.ok(err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ECONNRESET', String(err.code));

      mode = 'slow';
      const ac = new AbortController();
      const into2 = Buffer.alloc(50_000, 0);
      const p = g.getInto(loc, 0, 50_000, into2, { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('gave up')), 50);
      await assert.rejects(p, /gave up/);
      const snapshot = Buffer.from(into2);
      await new Promise((r) => setTimeout(r, 300)); // the server sends the rest at 200 ms
      assert.ok(into2.equals(snapshot), 'no byte lands in the buffer after the request settled');
    });
  });
});

describe('through the local S3 (SigV4 verified by the gate) and AwsObjectStore', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ fixture: 'sample' });
  });
  after(async () => stack.close());

  const admin = (): { accessKeyId: string; secretAccessKey: string } => ({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });

  test('the gate accepts the signature; If-Match pins the version (412 → PreconditionFailed)', async () => {
    const store = new AwsObjectStore({ endpoint: stack.s3Endpoint, credentials: admin() });
    const key = { bucket: stack.externalBucket, key: 'direct/x (1)+é.bin' };
    // The lean path, not the SDK behind it, must give every answer below.
    const lean = mock.method(DirectRangeGetter.prototype, 'getInto');
    try {
      const { etag } = await store.putObject(key, OBJECT);
      const got = await store.getRange(key, 1000, 201_000, { ifMatch: etag });
      assert.ok(got.data.equals(OBJECT.subarray(1000, 201_000)));
      assert.equal(got.etag, etag);
      await assert.rejects(store.getRange(key, 0, 10, { ifMatch: 'not-the-etag' }), (e: unknown) => e instanceof S3Error && e.code === 'PreconditionFailed');
      await assert.rejects(store.getRange({ ...key, key: 'direct/missing' }, 0, 10), (e: unknown) => e instanceof S3Error && e.code === 'NoSuchKey');
      assert.equal(lean.mock.calls.length, 3, 'three GETs through the lean path');
      await lean.mock.calls[0]!.result; // the signed read itself succeeded there
      const bad = new AwsObjectStore({ endpoint: stack.s3Endpoint, credentials: { ...admin(), secretAccessKey: 'wrong' }, maxAttempts: 1 });
      await assert.rejects(bad.getRange(key, 0, 10), (e: unknown) => e instanceof S3Error && e.code === 'SignatureDoesNotMatch');
      assert.equal(lean.mock.calls.length, 4, 'the refused signature came through the lean path too');
      bad.destroy();
    } finally {
      lean.mock.restore();
      store.destroy();
    }
  });

  test('readVersion: size and ETag from the lean first-byte GET (no SDK request); an empty object (416) through HeadObject; a missing one is final; head() is HeadObject', async () => {
    const store = new AwsObjectStore({ endpoint: stack.s3Endpoint, credentials: admin() });
    const key = { bucket: stack.externalBucket, key: 'direct/head (1).bin' };
    const empty = { ...key, key: 'direct/empty.bin' };
    const { etag } = await store.putObject(key, OBJECT);
    const { etag: emptyEtag } = await store.putObject(empty, Buffer.alloc(0));
    const sdk = mock.method(S3Client.prototype, 'send');
    try {
      assert.deepEqual(await store.readVersion(key), { size: OBJECT.length, etag });
      assert.equal(sdk.mock.calls.length, 0, 'a non-empty object: no SDK call');
      assert.deepEqual(await store.readVersion(empty), { size: 0, etag: emptyEtag });
      assert.equal(sdk.mock.calls.length, 1, 'the empty object has no first byte: one HeadObject');
      await assert.rejects(store.readVersion({ ...key, key: 'direct/missing' }), (e: unknown) => e instanceof S3Error && e.status === 404);
      assert.equal(sdk.mock.calls.length, 1, 'a missing object: the lean answer is final');
      // head() is metadata only (add-s3-file, recover): HeadObject, which needs no read access.
      assert.deepEqual(await store.head(key), { size: OBJECT.length, etag });
      assert.equal(sdk.mock.calls.length, 2);
    } finally {
      sdk.mock.restore();
      store.destroy();
    }
  });

  test('readVersion with `first`: a small object\'s whole body comes with its version in one lean GET; one shorter than asked goes to HeadObject and fills nothing', async () => {
    const store = new AwsObjectStore({ endpoint: stack.s3Endpoint, credentials: admin() });
    const key = { bucket: stack.externalBucket, key: 'direct/small whole.bin' };
    const body = OBJECT.subarray(0, 70_000);
    const { etag } = await store.putObject(key, body);
    const sdk = mock.method(S3Client.prototype, 'send');
    const lean = mock.method(DirectRangeGetter.prototype, 'stat');
    try {
      const first = Buffer.alloc(body.length);
      assert.deepEqual(await store.readVersion(key, first), { size: body.length, etag, firstBytes: body.length });
      assert.ok(first.equals(body), 'the whole body, byte for byte');
      assert.equal(sdk.mock.calls.length, 0);
      // The object is shorter than the size asked for (Synapse's record is stale): S3 says so
      // (InvalidRange), and the version comes from HeadObject without any bytes.
      const bigger = Buffer.alloc(body.length + 10, 7);
      assert.deepEqual(await store.readVersion(key, bigger), { size: body.length, etag });
      assert.equal(sdk.mock.calls.length, 1, 'one HeadObject');
      assert.equal(lean.mock.calls.length, 2);
      // An object longer than asked: its first bytes and its whole size.
      const part = Buffer.alloc(1000);
      assert.deepEqual(await store.readVersion(key, part), { size: body.length, etag, firstBytes: 1000 });
      assert.ok(part.equals(body.subarray(0, 1000)));
    } finally {
      lean.mock.restore();
      sdk.mock.restore();
      store.destroy();
    }
  });

  /** A scripted S3 whose GETs get `onGet` (with the request count so far) and HEADs a 200 for an 11-byte object. */
  async function scriptedStore(onGet: (sock: net.Socket, n: number) => void, opts: { onCredentialsExpired?: () => void } = {}) {
    let gets = 0;
    const srv = await scripted((req, sock) => {
      if (req.head.startsWith('HEAD ')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 11\r\nETag: "h1"\r\n\r\n');
      else onGet(sock, gets++);
    }, 11);
    const store = new AwsObjectStore({ endpoint: srv.url, credentials: creds, maxAttempts: 1, ...opts });
    const methods = (): string[] => srv.requests.map((q) => q.head.split(' ')[0]!);
    return { srv, store, methods, close: async () => { store.destroy(); await srv.close(); } };
  }

  test('readVersion: a whole empty object (200, no body) for the first byte goes to HeadObject, and the lean reader stays on', async () => {
    const t = await scriptedStore((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: "e0"\r\n\r\n'));
    try {
      assert.deepEqual(await t.store.readVersion(loc), { size: 11, etag: 'h1' });
      assert.deepEqual(t.methods(), ['GET', 'HEAD']);
      assert.equal((t.store as unknown as { direct: DirectRangeGetter }).direct.usable, true, 'a short object is not a server that ignores ranges');
    } finally {
      await t.close();
    }
  });

  test('readVersion: a server that sends the whole object for bytes=0-0 gets HeadObject from then on; its reads stay lean', async () => {
    const t = await scriptedStore((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 11\r\nETag: "h1"\r\n\r\nhello world');
    });
    try {
      assert.deepEqual(await t.store.readVersion(loc), { size: 11, etag: 'h1' });
      assert.deepEqual(await t.store.readVersion(loc), { size: 11, etag: 'h1' });
      assert.deepEqual(t.methods(), ['GET', 'HEAD', 'HEAD'], 'one try of the first-byte GET, then HeadObject');
      const direct = (t.store as unknown as { direct: DirectRangeGetter }).direct;
      assert.equal(direct.usable, true, 'the reader is still on for reads');
      assert.equal(direct.statUsable, false);
    } finally {
      await t.close();
    }
  });

  test('readVersion: a 5xx goes to HeadObject (the SDK retries those); ExpiredToken refreshes the credentials and asks again, lean', async () => {
    const failing = await scriptedStore((sock) => s3error(sock, 503, 'SlowDown'));
    try {
      assert.deepEqual(await failing.store.readVersion(loc), { size: 11, etag: 'h1' });
      assert.deepEqual(failing.methods(), ['GET', 'HEAD']);
    } finally {
      await failing.close();
    }
    let refreshed = 0;
    const expiring = await scriptedStore((sock, n) => {
      if (n === 0) s3error(sock, 400, 'ExpiredToken');
      else sock.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\nContent-Range: bytes 0-0/11\r\nETag: "g2"\r\n\r\nh');
    }, { onCredentialsExpired: () => { refreshed++; } });
    try {
      assert.deepEqual(await expiring.store.readVersion(loc), { size: 11, etag: 'g2' });
      assert.deepEqual(expiring.methods(), ['GET', 'GET'], 'no HeadObject');
      assert.equal(refreshed, 1);
    } finally {
      await expiring.close();
    }
  });

  test('an answer the fast path does not handle is repeated through the SDK, which serves the rest', async () => {
    // A server that answers GETs chunked: legal HTTP the fast path leaves to the SDK.
    const srv = await scripted((_req, sock, [s, e]) => {
      const body = OBJECT.subarray(s, e);
      sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${s}-${e - 1}/${OBJECT.length}\r\nETag: "e1"\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`);
      sock.write(body);
      sock.write('\r\n0\r\n\r\n');
    }, OBJECT.length);
    const store = new AwsObjectStore({ endpoint: srv.url, credentials: creds, maxAttempts: 1 });
    try {
      for (const [s, e] of [[0, 5000], [5000, 9000]] as const) {
        const got = await store.getRange(loc, s, e);
        assert.ok(got.data.equals(OBJECT.subarray(s, e)));
        assert.equal(got.etag, 'e1');
      }
      // First GET: fast path, then the SDK; second: the SDK only (the fast path is off for good).
      const viaSdk = srv.requests.map((q) => /amz-sdk-invocation-id/i.test(q.head));
      assert.deepEqual(viaSdk, [false, true, true]);
    } finally {
      store.destroy();
      await srv.close();
    }
  });

  test('AwsObjectStore: bodies cut short mid-way are retried past 8 tries (lean path and SDK); cut short every time, 24 tries and it gives up', async () => {
    const saved = process.env['SYNAPSE_MOUNT_S3_GET'];
    try {
      for (const setting of [undefined, 'sdk'] as const) {
        if (setting === undefined) delete process.env['SYNAPSE_MOUNT_S3_GET'];
        else process.env['SYNAPSE_MOUNT_S3_GET'] = setting;
        let cuts = 12;
        const srv = await scripted((_req, sock, [s, e]) => {
          if (cuts-- <= 0) return partial(sock, [s, e]);
          sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${e - s}\r\nContent-Range: bytes ${s}-${e - 1}/${OBJECT.length}\r\nETag: "abc123"\r\n\r\n`);
          sock.end(OBJECT.subarray(s, s + Math.floor((e - s) / 2)), () => sock.destroy());
        }, OBJECT.length);
        const store = new AwsObjectStore({ endpoint: srv.url, credentials: creds, maxAttempts: 1 });
        try {
          const got = await store.getRange(loc, 0, 200_000);
          assert.ok(got.data.equals(OBJECT.subarray(0, 200_000)), `${setting ?? 'lean'}: whole after 12 cut short`);
          assert.equal(srv.requests.length, 13, setting ?? 'lean');
          cuts = Infinity;
          await assert.rejects(store.getRange(loc, 0, 200_000));
          assert.equal(srv.requests.length - 13, 24, `${setting ?? 'lean'}: bounded`);
        } finally {
          store.destroy();
          await srv.close();
        }
      }
    } finally {
      if (saved === undefined) delete process.env['SYNAPSE_MOUNT_S3_GET'];
      else process.env['SYNAPSE_MOUNT_S3_GET'] = saved;
    }
  });

  test('AwsObjectStore reads through the lean path by default, through the SDK with SYNAPSE_MOUNT_S3_GET=sdk', async () => {
    const srv = await scripted((_req, sock, r) => partial(sock, r), OBJECT.length);
    const saved = process.env['SYNAPSE_MOUNT_S3_GET'];
    try {
      for (const setting of [undefined, 'sdk'] as const) {
        if (setting === undefined) delete process.env['SYNAPSE_MOUNT_S3_GET'];
        else process.env['SYNAPSE_MOUNT_S3_GET'] = setting;
        const store = new AwsObjectStore({ endpoint: srv.url, credentials: creds, maxAttempts: 1 });
        try {
          const got = await store.getRange(loc, 10, 2010);
          assert.ok(got.data.equals(OBJECT.subarray(10, 2010)));
        } finally {
          store.destroy();
        }
      }
      const viaSdk = srv.requests.map((q) => /amz-sdk-invocation-id/i.test(q.head));
      assert.deepEqual(viaSdk, [false, true], 'default: lean; SYNAPSE_MOUNT_S3_GET=sdk: the SDK');
    } finally {
      if (saved === undefined) delete process.env['SYNAPSE_MOUNT_S3_GET'];
      else process.env['SYNAPSE_MOUNT_S3_GET'] = saved;
      await srv.close();
    }
  });
});

test('the GET retry loop retries the network failures the SDK retried (they now reach it from the lean path), not refusals', () => {
  const sys = (code: string): Error => Object.assign(new Error(code), { code });
  for (const code of ['ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNREFUSED', 'ERR_STREAM_PREMATURE_CLOSE']) {
    assert.equal(isRetryableBodyError(sys(code)), true, code);
    assert.equal(isRetryableBodyError(toS3Error(sys(code), 'GetObject')), true, `${code}, wrapped as call() wraps it`);
  }
  assert.equal(isRetryableBodyError(new S3Error('SlowDown', 'slow down', 503)), true);
  for (const [code, status] of [['AccessDenied', 403], ['NoSuchKey', 404], ['InvalidRange', 206], ['PreconditionFailed', 412]] as const) {
    assert.equal(isRetryableBodyError(new S3Error(code, code, status)), false, code);
  }
  assert.equal(isRetryableBodyError(sys('EACCES')), false);
});
