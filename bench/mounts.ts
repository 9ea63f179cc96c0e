/**
 * The three filesystems the bench compares, each mounted in a child process that the bench can
 * measure (pid for VmHWM) and always tear down:
 *  - synapse-mount: the real CLI (`node --import tsx bin/synapse-mount.ts … --foreground`), as
 *    test/e2e/harness.ts runs it, with optional extra node flags (e.g. --cpu-prof) and env;
 *  - s3fs (Debian's s3fs-fuse) and rclone mount, on the same s3rver bucket with the admin keys.
 * Every wait is bounded; unmount() never throws and ends with a lazy fusermount if needed.
 */
import path from 'node:path';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { isMounted, ROOT, tempDir, waitFor } from '../test/e2e/harness.js';
import { sh, sleep, spawnCaptured } from './sys.js';

/**
 * How the bench runs the CLI: the TypeScript source through tsx (always the current src/, as a
 * developer runs it), or with BENCH_BUILT=1 the built dist/ (what users run; `npm run build`
 * first). The e2e harness defaults to dist/; the bench does not, so a stale build is never
 * measured by accident.
 */
export const CLI_ARGS = process.env['BENCH_BUILT'] === '1'
  ? [path.join(ROOT, 'dist', 'bin', 'synapse-mount.js')]
  : ['--import', 'tsx', path.join(ROOT, 'bin', 'synapse-mount.ts')];

export interface BenchMount {
  name: string;
  dir: string;
  pid: number;
  output(): string;
  unmount(): Promise<void>;
}

interface Spawned {
  proc: { pid?: number | undefined; kill(sig?: NodeJS.Signals): boolean };
  output: () => string;
  exited: () => boolean;
}

async function waitMounted(name: string, dir: string, s: Spawned, timeoutMs: number): Promise<void> {
  try {
    await waitFor(`${name} mount at ${dir}`, async () => {
      if (s.exited()) throw new Error(`${name} exited before mounting:\n${s.output().slice(-4000)}`);
      return isMounted(dir);
    }, timeoutMs);
  } catch (err) {
    s.proc.kill('SIGKILL');
    await sh(`fusermount -uz '${dir}' 2>/dev/null; rmdir '${dir}' 2>/dev/null`, { timeoutMs: 10_000 });
    throw err;
  }
}

function teardown(name: string, dir: string, s: Spawned, politely: () => Promise<void>): () => Promise<void> {
  let done = false;
  return async () => {
    if (done) return;
    done = true;
    try {
      await politely();
      await waitFor(`${name} exit`, () => s.exited(), 30_000).catch(() => { s.proc.kill('SIGKILL'); });
    } catch { /* fall through to the forced path */ }
    if (!s.exited()) s.proc.kill('SIGKILL');
    for (let i = 0; i < 20 && !s.exited(); i++) await sleep(50);
    if (await isMounted(dir).catch(() => false)) await sh(`fusermount -uz '${dir}'`, { timeoutMs: 10_000 });
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
}

export interface SynapseMountOptions {
  endpoint: string;
  s3Endpoint: string;
  token: string;
  entityId: string;
  args?: string[];
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

export async function mountSynapse(o: SynapseMountOptions): Promise<BenchMount> {
  const dir = await tempDir('bench-mnt-');
  const spoolDir = path.join(ROOT, '.tmp', `bench-spool-${path.basename(dir)}`);
  await mkdir(spoolDir, { recursive: true });
  const s = spawnCaptured(process.execPath, [
    ...(o.nodeArgs ?? []), ...CLI_ARGS, o.entityId, dir, '--foreground',
    '--endpoint', o.endpoint, '--s3-endpoint', o.s3Endpoint, '--log-level', 'warn', '--spool-dir', spoolDir,
    ...(o.args ?? []),
  ], { ...process.env, ...o.env, SYNAPSE_AUTH_TOKEN: o.token });
  await waitMounted('synapse-mount', dir, s, 60_000);
  const down = teardown('synapse-mount', dir, s, async () => { s.proc.kill('SIGTERM'); });
  return {
    name: 'synapse-mount', dir, pid: s.proc.pid ?? 0, output: s.output,
    unmount: async () => {
      await down();
      await rm(spoolDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

export interface PeerOptions {
  s3Endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  /** Key prefix (a "folder" of the bucket) to mount, without trailing slash. */
  prefix: string;
}

/** The s3fs options used, with why (s3fs-fuse README / man page "tuning" options). */
export const S3FS_OPTIONS = [
  'parallel_count=16', // ranged GETs / part PUTs in flight per file (default 5)
  'multipart_size=16', // MiB per part and per parallel read range (default 10)
  'multireq_max=32', // parallel requests for listings/HEADs (default 20)
  'max_stat_cache_size=100000',
  'big_writes', 'max_write=131072', 'max_read=131072', // 128 KiB FUSE ops instead of 4 KiB writes
];

export async function mountS3fs(o: PeerOptions): Promise<BenchMount> {
  const dir = await tempDir('bench-s3fs-');
  const passwd = path.join(ROOT, '.tmp', `s3fs-passwd-${path.basename(dir)}`);
  await mkdir(path.dirname(passwd), { recursive: true });
  await writeFile(passwd, `${o.accessKeyId}:${o.secretAccessKey}\n`, { mode: 0o600 });
  const opts = [
    `url=${o.s3Endpoint}`, 'use_path_request_style', `passwd_file=${passwd}`, 'endpoint=us-east-1', 'sigv4',
    ...S3FS_OPTIONS,
  ];
  const s = spawnCaptured('s3fs', [`${o.bucket}:/${o.prefix}`, dir, '-f', '-o', opts.join(',')], process.env);
  try {
    await waitMounted('s3fs', dir, s, 30_000);
  } catch (err) {
    await rm(passwd, { force: true });
    throw err;
  }
  const down = teardown('s3fs', dir, s, async () => { await sh(`fusermount -u '${dir}'`, { timeoutMs: 60_000 }); });
  return {
    name: 's3fs', dir, pid: s.proc.pid ?? 0, output: s.output,
    unmount: async () => { await down(); await rm(passwd, { force: true }); },
  };
}

/** rclone mount flags used, with why (rclone docs: mount "VFS" and s3 backend tuning). */
export const RCLONE_FLAGS = [
  '--vfs-cache-mode', 'off', // stream reads and writes straight to S3 (no local copy first)
  '--buffer-size', '64M', // in-memory read-ahead per open file (default 16M)
  '--vfs-read-chunk-size', '32M', // first ranged GET size, doubling… (default 128M)
  '--vfs-read-chunk-size-limit', 'off', // …without limit
  '--s3-upload-concurrency', '8', // parts in flight per upload (default 4)
  '--s3-chunk-size', '16M', // part size (default 5M)
  '--s3-disable-checksum', // no whole-file MD5 pass before a multipart upload
  '--s3-no-check-bucket', ...(process.env['BENCH_RCLONE_DEBUG'] ? ['-vv'] : []),
  '--dir-cache-time', '1h', '--attr-timeout', '1s',
];

export async function mountRclone(o: PeerOptions): Promise<BenchMount> {
  const dir = await tempDir('bench-rclone-');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RCLONE_CONFIG_BENCH_TYPE: 's3', RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: o.s3Endpoint, RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: o.accessKeyId, RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: o.secretAccessKey,
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  };
  // rclone 1.60 refuses to start when AWS_CA_BUNDLE is set (DESIGN §7).
  delete env['AWS_CA_BUNDLE'];
  // Mounted at a prefix: s3rver answers a root listing (`prefix=` empty, `delimiter=/`) with
  // nothing, so rclone would see an empty bucket root.
  const s = spawnCaptured('rclone', ['mount', `bench:${o.bucket}/${o.prefix}`, dir, ...RCLONE_FLAGS, '--config', '/dev/null'], env);
  await waitMounted('rclone', dir, s, 30_000);
  const down = teardown('rclone', dir, s, async () => { await sh(`fusermount -u '${dir}'`, { timeoutMs: 60_000 }); });
  return { name: 'rclone', dir, pid: s.proc.pid ?? 0, output: s.output, unmount: down };
}
