/**
 * The bench's direct S3 client: the baseline every mount figure is divided by. Runs as its own
 * child process (the bench process hosts s3rver, so a client inside it would share s3rver's one
 * thread and flatter the mount), with @aws-sdk/client-s3 configured as the mount's own
 * AwsObjectStore is (checksums WHEN_REQUIRED, keep-alive, many sockets).
 *
 *   read  --keys k1,k2,…  read each object whole with parallel ranged GETs (all keys at once),
 *                         through the project's DirectRangeGetter (bodies straight into one
 *                         reused buffer per lane, as the mount's block pool) — the fastest GET
 *                         this project has; `--via sdk` reads through @aws-sdk/client-s3 instead
 *   write --file F --key K   multipart upload of a local file (parts read from disk as sent, into
 *                            one reused buffer per part in flight)
 *
 * Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (never argv). Prints one JSON
 * line {bytes, seconds, requests, cpu_s, threads} on stdout (threads: sys.ts threadTimes over the timed section); `seconds` runs from the first request to the last
 * byte (process and SDK start-up are not counted, as the mount's start-up is not either).
 *
 * Defaults (8 MiB ranges × 16 in flight per object; 16 MiB parts × 8 in flight) were the best of
 * a small sweep on this machine against s3rver (see README): the baseline should be the best
 * this client can do, so the ratios are not flattered.
 */
import http from 'node:http';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DirectRangeGetter } from '../src/s3/direct-range-get.js';
import { isRetryableBodyError } from '../src/s3/aws-object-store.js';
import { backoff } from '../src/s3/retry.js';
import { threadTimes, threadTimesSince } from './sys.js';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

const MiB = 1024 * 1024;
/** The SDK's standard retry mode: 3 attempts. */
const GET_ATTEMPTS = 3;

interface Args {
  cmd: string;
  endpoint: string;
  bucket: string;
  keys: string[];
  file: string;
  key: string;
  rangeBytes: number;
  concurrency: number;
  partBytes: number;
  via: 'direct' | 'sdk';
}

function parseArgs(argv: string[]): Args {
  const get = (name: string, dflt?: string): string => {
    const i = argv.indexOf(`--${name}`);
    const v = i >= 0 ? argv[i + 1] : dflt;
    if (v === undefined) throw new Error(`direct-client: --${name} is required`);
    return v;
  };
  const cmd = argv[0] ?? '';
  return {
    cmd,
    endpoint: get('endpoint'),
    bucket: get('bucket'),
    keys: cmd === 'read' ? get('keys').split(',') : [],
    file: cmd === 'write' ? get('file') : '',
    key: cmd === 'write' ? get('key') : '',
    rangeBytes: Number(get('range-mib', '8')) * MiB,
    concurrency: Number(get('concurrency', cmd === 'write' ? '8' : '16')),
    partBytes: Number(get('part-mib', '16')) * MiB,
    via: get('via', 'direct') === 'sdk' ? 'sdk' : 'direct',
  };
}

function credentials(): { accessKeyId: string; secretAccessKey: string } {
  const accessKeyId = process.env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = process.env['AWS_SECRET_ACCESS_KEY'];
  if (!accessKeyId || !secretAccessKey) throw new Error('direct-client: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY not set');
  return { accessKeyId, secretAccessKey };
}

function client(endpoint: string): S3Client {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true'; // Node 20 is ours (aws-object-store.ts)
  return new S3Client({
    endpoint, forcePathStyle: true, region: 'us-east-1',
    credentials: credentials(),
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 256 }) },
  });
}

/** Run `fn` over 0..count-1 with at most `limit` in flight; `lane` (0..limit-1) says which worker runs it. */
async function pool(count: number, limit: number, fn: (i: number, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async (_, lane) => {
    while (next < count) await fn(next++, lane);
  }));
}

async function drain(body: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of body) n += (chunk as Buffer).length;
  return n;
}

async function readObjects(a: Args): Promise<{ bytes: number; requests: number }> {
  const s3 = client(a.endpoint);
  let requests = 0;
  const sizes = await Promise.all(a.keys.map(async (Key) => {
    requests++;
    const h = await s3.send(new HeadObjectCommand({ Bucket: a.bucket, Key }));
    return h.ContentLength ?? 0;
  }));
  let bytes = 0;
  const direct = a.via === 'direct' ? new DirectRangeGetter({ endpoint: a.endpoint, region: 'us-east-1', credentials: credentials() }) : undefined;
  await Promise.all(a.keys.map(async (Key, k) => {
    const size = sizes[k]!;
    const count = Math.ceil(size / a.rangeBytes);
    const buffers: Buffer[] = [];
    await pool(count, a.concurrency, async (i, lane) => {
      const start = i * a.rangeBytes;
      const end = Math.min(size, start + a.rangeBytes) - 1;
      requests++;
      let n: number;
      if (direct) {
        const into = (buffers[lane] ??= Buffer.allocUnsafe(a.rangeBytes));
        // Retried as the SDK (and the mount) retry: a 5xx or a reset is S3 being S3 (the local
        // gate's keep-alive socket to s3rver can meet a close), not a reason to fail the bench.
        for (let attempt = 0; ; attempt++) {
          try {
            await direct.getInto({ bucket: a.bucket, key: Key }, start, end + 1, into);
            break;
          } catch (err) {
            if (attempt + 1 >= GET_ATTEMPTS || !isRetryableBodyError(err)) throw err;
            requests++;
            await backoff(attempt, 1000);
          }
        }
        n = end - start + 1;
      } else {
        const res = await s3.send(new GetObjectCommand({ Bucket: a.bucket, Key, Range: `bytes=${start}-${end}` }));
        n = await drain(res.Body as Readable);
      }
      if (n !== end - start + 1) throw new Error(`short range ${start}-${end} of ${Key}: ${n} bytes`);
      bytes += n;
    });
  }));
  direct?.destroy();
  s3.destroy();
  return { bytes, requests };
}

async function writeObject(a: Args): Promise<{ bytes: number; requests: number }> {
  const s3 = client(a.endpoint);
  const fh = await open(a.file, 'r');
  try {
    const size = (await fh.stat()).size;
    const create = await s3.send(new CreateMultipartUploadCommand({ Bucket: a.bucket, Key: a.key }));
    const UploadId = create.UploadId;
    if (!UploadId) throw new Error('no UploadId');
    const count = Math.ceil(size / a.partBytes);
    const parts: Array<{ PartNumber: number; ETag: string }> = [];
    // One part buffer per lane, reused for every part it sends (the mount's pool does the same):
    // a fresh 16 MiB buffer per part made this baseline pay for 1 GiB of newly touched memory per
    // upload, the dearest thing on this VM (bench/README.md, Caveats), and swing with it.
    const buffers: Buffer[] = [];
    await pool(count, a.concurrency, async (i, lane) => {
      const start = i * a.partBytes;
      const len = Math.min(a.partBytes, size - start);
      const body = (buffers[lane] ??= Buffer.allocUnsafe(a.partBytes)).subarray(0, len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(body, got, len - got, start + got);
        if (bytesRead === 0) throw new Error('source file shrank');
        got += bytesRead;
      }
      const r = await s3.send(new UploadPartCommand({
        Bucket: a.bucket, Key: a.key, UploadId, PartNumber: i + 1, Body: body, ContentLength: len,
      }));
      parts.push({ PartNumber: i + 1, ETag: r.ETag ?? '' });
    });
    parts.sort((x, y) => x.PartNumber - y.PartNumber);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: a.bucket, Key: a.key, UploadId, MultipartUpload: { Parts: parts } }));
    s3.destroy();
    return { bytes: size, requests: count + 2 };
  } finally {
    await fh.close();
  }
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  // Warm the SDK (module init, credential resolution) outside the timed section.
  client(a.endpoint).destroy();
  const threads0 = await threadTimes(process.pid);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let r: { bytes: number; requests: number };
  if (a.cmd === 'read') r = await readObjects(a);
  else if (a.cmd === 'write') r = await writeObject(a);
  else throw new Error(`direct-client: unknown command ${a.cmd} (read | write)`);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const threads = threadTimesSince(threads0, await threadTimes(process.pid));
  process.stdout.write(`${JSON.stringify({ ...r, seconds, cpu_s: (c.user + c.system) / 1e6, threads })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`direct-client: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
