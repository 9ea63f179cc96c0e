/**
 * SO_RCVLOWAT for S3 bodies (src/s3/receive-low-water.ts): the patched addon's setter really holds
 * a socket's reads back until the mark, and DirectRangeGetter marks a body's socket and lowers the
 * mark as the body ends — over plain HTTP to exactly what is left, over TLS a margin below it — so
 * no mark waits for bytes that will never come; between answers the socket has no mark.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { DirectRangeGetter } from '../../src/s3/direct-range-get.js';
import { isRetryableBodyError } from '../../src/s3/aws-object-store.js';
import { BODY_LOW_WATER_BYTES, LOWER_STEP_BYTES, loweredMark, lowWaterFor, lowWaterSetter, TLS_MARGIN_BYTES, type SetLowWater } from '../../src/s3/receive-low-water.js';
import { scripted, scriptedTls } from './scripted-http.js';

const MiB = 1024 * 1024;
const BIG = Buffer.from(Array.from({ length: 3 * MiB + 12_345 }, (_, i) => (i * 13 + 5) & 0xff));
const creds = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };
const loc = { bucket: 'bkt', key: 'big.bin' };

const realSetter = (): SetLowWater => {
  const s = lowWaterSetter();
  assert.ok(s, 'the patched fuse-native addon has synapse_rcvlowat (npm ci runs scripts/fix-fuse-native.mjs)');
  return s;
};

/** The answer to a range of BIG, its body written 64 KiB at a time as a LAN sender would. */
function trickle(sock: net.Socket, [s, e]: [number, number]): void {
  sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${e - s}\r\nContent-Range: bytes ${s}-${e - 1}/${BIG.length}\r\nETag: "big"\r\n\r\n`);
  let at = s;
  const next = (): void => {
    if (at >= e || sock.destroyed) return;
    const end = Math.min(e, at + 64 * 1024);
    sock.write(BIG.subarray(at, end));
    at = end;
    setImmediate(next);
  };
  next();
}

/** A TCP relay to `port` that passes the server's bytes on `piece` bytes at a time. */
async function chunkingRelay(port: number, piece: number): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => { client.destroy(); upstream.destroy(); });
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.on('data', (d: Buffer) => {
      for (let i = 0; i < d.length; i += piece) client.write(d.subarray(i, i + piece));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

/** A setter that records each mark (and the remaining bytes it was set for: the body's length minus what arrived). */
function recording(inner: SetLowWater): { set: SetLowWater; marks: number[] } {
  const marks: number[] = [];
  return { marks, set: (fd, bytes) => { marks.push(bytes); return inner(fd, bytes); } };
}

/** Resolve once `cond()` holds, polling every 10 ms; reject after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the highest safe mark: 1 MiB while more is to come, at most the rest of a plain body, 64 KiB below it over TLS, else none', () => {
  assert.equal(lowWaterFor(8 * MiB, false), BODY_LOW_WATER_BYTES);
  assert.equal(lowWaterFor(300_000, false), 300_000);
  assert.equal(lowWaterFor(1, false), 1);
  assert.equal(lowWaterFor(0, false), 1, 'between answers: the kernel default');
  assert.equal(lowWaterFor(8 * MiB, true), BODY_LOW_WATER_BYTES);
  assert.equal(lowWaterFor(300_000, true), 300_000 - TLS_MARGIN_BYTES);
  assert.equal(lowWaterFor(TLS_MARGIN_BYTES + 1, true), 1);
  assert.equal(lowWaterFor(10_000, true), 1, 'a small TLS body: no mark');
  // A mark that must come down goes a step further than needed (fewer calls); one still safe stays.
  assert.equal(loweredMark(BODY_LOW_WATER_BYTES, 8 * MiB, false), undefined);
  assert.equal(loweredMark(BODY_LOW_WATER_BYTES, MiB - 10, false), MiB - 10 - LOWER_STEP_BYTES);
  assert.equal(loweredMark(BODY_LOW_WATER_BYTES, MiB - 10, true), MiB - 10 - LOWER_STEP_BYTES - TLS_MARGIN_BYTES);
  assert.equal(loweredMark(200_000, 100_000, false), 1);
  assert.equal(loweredMark(1, 0, false), undefined, 'no mark: nothing to do');
  assert.equal(loweredMark(5000, 0, true), 1, 'at the end of an answer: back to none');
});

test('off with SYNAPSE_MOUNT_RCVLOWAT=0, on kernels before 5.10, and for a getter told null', () => {
  assert.ok(lowWaterSetter({}, true));
  assert.equal(lowWaterSetter({ SYNAPSE_MOUNT_RCVLOWAT: '0' }, true), undefined);
  assert.equal(lowWaterSetter({}, false), undefined);
  const wireOf = (g: DirectRangeGetter): unknown => (g as unknown as { wire: { setLowWater: unknown } }).wire.setLowWater;
  const off = new DirectRangeGetter({ endpoint: 'http://127.0.0.1:9', setLowWater: null });
  const dflt = new DirectRangeGetter({ endpoint: 'http://127.0.0.1:9' });
  try {
    assert.equal(wireOf(off), undefined);
    assert.equal(typeof wireOf(dflt), 'function', 'the addon\'s, by default (kernel 5.10+ here)');
  } finally {
    off.destroy();
    dflt.destroy();
  }
});

test('the addon\'s setter holds a socket\'s reads back until the mark is queued (the kernel honours it)', { timeout: 20_000 }, async () => {
  const set = realSetter();
  let peer: net.Socket | undefined;
  const server = net.createServer((s) => { peer = s; });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  let got = 0;
  client.on('data', (d: Buffer) => { got += d.length; });
  try {
    await new Promise<void>((r) => client.once('connect', r));
    await until(() => peer !== undefined, 5000, 'the server side');
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
    assert.equal(set(fd, 256 * 1024), 0);
    peer!.write(Buffer.alloc(100 * 1024));
    // Nothing may arrive while 100 KiB < the mark is queued: a bounded look for an absence.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got, 0, 'no read below the mark');
    peer!.write(Buffer.alloc(200 * 1024));
    await until(() => got === 300 * 1024, 5000, 'the bytes once past the mark');
    assert.ok(set(-1, 1) < 0, 'a bad descriptor is refused, not thrown');
  } finally {
    client.destroy();
    peer?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

describe('DirectRangeGetter under the mark', { timeout: 30_000 }, () => {
  test('plain HTTP: 1 MiB while the body is long, lowered in steps below what is left, none between answers; every byte right on one connection', async () => {
    const srv = await scripted((_req, sock, r) => trickle(sock, r), BIG.length);
    const rec = recording(realSetter());
    const g = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds, setLowWater: rec.set });
    try {
      for (let round = 0; round < 2; round++) {
        const into = Buffer.alloc(BIG.length);
        await g.getInto(loc, 0, BIG.length, into);
        assert.ok(into.equals(BIG), `round ${round}: the body`);
      }
      const small = Buffer.alloc(1000);
      await g.getInto(loc, 5000, 6000, small);
      assert.ok(small.equals(BIG.subarray(5000, 6000)), 'a small answer after them: read at once');
      assert.equal(srv.connections(), 1);
      // Per big answer: 1 MiB, then lower marks once less than 1 MiB is left, then 1 at its end.
      const answers = rec.marks.join(',').split(',1,').map((a) => a.split(',').map(Number));
      assert.equal(answers.length >= 2, true, `marks ${rec.marks.join(',')}`);
      for (const a of answers.slice(0, 2)) {
        assert.equal(a[0], BODY_LOW_WATER_BYTES, `starts at 1 MiB: ${a.join(',')}`);
        for (let i = 1; i < a.length; i++) assert.ok(a[i]! < a[i - 1]!, `only ever lowered: ${a.join(',')}`);
      }
      assert.equal(rec.marks.at(-1), 1, 'no mark once an answer is read');
    } finally {
      g.destroy();
      await srv.close();
    }
  });

  test('TLS through a relay that cuts records apart: the body completes — a mark at the body\'s remaining bytes waits here for raw bytes Node\'s TLS layer already took (the 64 KiB margin); a small body gets none; every byte right', async () => {
    const srv = await scriptedTls((_req, sock, r) => trickle(sock, r), BIG.length);
    // On loopback a socket read ends where the sender's write did, at a record's end; over a real
    // network it ends wherever a segment did, mid-record. The relay forwards the server's bytes
    // in 1,000-byte pieces, so reads end mid-record here too — where a mark equal to the body's
    // remaining bytes would wait for raw bytes Node's TLS layer already took.
    const relay = await chunkingRelay(Number(new URL(srv.url).port), 1000);
    const rec = recording(realSetter());
    const g = new DirectRangeGetter({ endpoint: `https://127.0.0.1:${relay.port}`, region: 'us-east-1', credentials: creds, ca: [srv.caPem], setLowWater: rec.set });
    try {
      const into = Buffer.alloc(BIG.length);
      await g.getInto(loc, 0, BIG.length, into);
      assert.ok(into.equals(BIG));
      const lastBodyMark = rec.marks.filter((m) => m > 1).at(-1)!;
      assert.ok(rec.marks[0] === BODY_LOW_WATER_BYTES && lastBodyMark <= BODY_LOW_WATER_BYTES - TLS_MARGIN_BYTES, `marks ${rec.marks.join(',')}`);
      const before = rec.marks.length;
      const small = Buffer.alloc(50_000);
      await g.getInto(loc, 100, 50_100, small);
      assert.ok(small.equals(BIG.subarray(100, 50_100)));
      assert.equal(rec.marks.length, before, 'a body under the margin: no mark');
    } finally {
      g.destroy();
      relay.close();
      await srv.close();
    }
  });

  test('a setter the kernel refuses leaves that connection without a mark; the body is read all the same', async () => {
    const srv = await scripted((_req, sock, r) => trickle(sock, r), BIG.length);
    const calls: number[] = [];
    const g = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds, setLowWater: (_fd, bytes) => { calls.push(bytes); return -22; } });
    try {
      for (let round = 0; round < 2; round++) {
        const into = Buffer.alloc(BIG.length);
        await g.getInto(loc, 0, BIG.length, into);
        assert.ok(into.equals(BIG));
      }
      assert.deepEqual(calls, [BODY_LOW_WATER_BYTES], 'asked once, then never again on that connection');
    } finally {
      g.destroy();
      await srv.close();
    }
  });

  test('a mark that cannot be lowered for the end of a body fails that GET as a reset (the retry loop takes it), never waits for bytes that will not come', async () => {
    const srv = await scripted((_req, sock, r) => trickle(sock, r), BIG.length);
    const real = realSetter();
    // Raising works, lowering is refused: the socket keeps 1 MiB with less than that to come.
    const g = new DirectRangeGetter({ endpoint: srv.url, region: 'us-east-1', credentials: creds, setLowWater: (fd, bytes) => (bytes >= BODY_LOW_WATER_BYTES ? real(fd, bytes) : -22) });
    try {
      const into = Buffer.alloc(BIG.length);
      await assert.rejects(g.getInto(loc, 0, BIG.length, into), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' && isRetryableBodyError(e));
      const small = Buffer.alloc(1000);
      await g.getInto(loc, 0, 1000, small);
      assert.ok(small.equals(BIG.subarray(0, 1000)), 'the next GET, on a new connection, is read');
      assert.equal(srv.connections(), 2, 'the stuck socket was not reused');
    } finally {
      g.destroy();
      await srv.close();
    }
  });
});
