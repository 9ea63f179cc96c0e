/**
 * End-to-end harness: runs the real CLI (through tsx) in a child process against the in-process
 * local Synapse + S3 stack, and drives the mount only from child processes (`ls`, `cat`, `dd`,
 * python3) — never with fs calls from this process, which serves the servers (DESIGN §6).
 * Every wait is bounded; teardown always unmounts.
 */
import net from 'node:net';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MountStatus } from '../../src/fs/mount-status.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * The tests run the built CLI (`dist/`, made by `npm run build`, which `npm test` runs first) —
 * exactly what users run, and twice as fast to start as going through tsx.
 * SYNAPSE_MOUNT_TEST_SOURCE=1 runs bin/synapse-mount.ts through tsx instead.
 */
export const BIN = process.env['SYNAPSE_MOUNT_TEST_SOURCE'] === '1'
  ? path.join(ROOT, 'bin', 'synapse-mount.ts')
  : path.join(ROOT, 'dist', 'bin', 'synapse-mount.js');
export const NODE_ARGS = BIN.endsWith('.ts') ? ['--import', 'tsx', BIN] : [BIN];

export interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a shell command in a child process (bounded). */
export function sh(cmd: string, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ShResult> {
  return new Promise((resolve) => {
    execFile('/bin/bash', ['-c', cmd], {
      timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8',
      env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT,
    }, (err, stdout, stderr) => {
      const numeric = typeof (err as { code?: unknown } | null)?.code === 'number';
      const code = err ? (numeric ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr: err && !numeric ? `${stderr}[harness: ${err.message}]` : stderr });
    });
  });
}

/** Run the CLI to completion (not for the serving foreground mode). */
export function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; input?: string } = {}): Promise<ShResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [...NODE_ARGS, ...args], {
      timeout: opts.timeoutMs ?? 120_000, encoding: 'utf8', env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT,
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export async function isMounted(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const escaped = path.resolve(dir).replace(/ /g, '\\040');
  return info.split('\n').some((l) => l.split(' ')[4] === escaped);
}

/**
 * How long to wait for something Synapse must see (a publish, a trash): the mount paces itself
 * to Synapse's 600 requests a minute, and a busy suite (write.test.ts makes ≈ 1,200 in 2.5 min)
 * spends a minute's budget, so a publish may be held back up to a minute (a 20 s wait flaked).
 */
export const SYNAPSE_PACE_WAIT_MS = 75_000;

export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Wait until the mounts stop talking to Synapse (background size fetches after a listing): the
 * request count the same over one `stepMs` apart.
 */
export async function synapseQuiet(stack: { dev: { stats(): { synapse: { requests: number } } } }, stepMs = 400, timeoutMs = 30_000): Promise<void> {
  let last = -1;
  await waitFor('Synapse traffic to settle', async () => {
    const n = stack.dev.stats().synapse.requests;
    const same = n === last;
    last = n;
    if (!same) await new Promise((r) => setTimeout(r, stepMs));
    return same;
  }, timeoutMs);
}

export async function tempDir(prefix = 'synmount-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface StackLike {
  endpoint: string;
  s3Endpoint: string;
  authToken: string;
}

export interface Mounted {
  dir: string;
  proc: ChildProcess;
  output(): string;
  unmount(): Promise<void>;
}

/**
 * Mount `entityId` with the CLI in --foreground mode in a child process; resolves once the
 * mount is in the mount table. `args` are extra CLI options.
 */
export async function mountForeground(stack: StackLike, entityId: string, args: string[] = [], token = stack.authToken, env: NodeJS.ProcessEnv = {}): Promise<Mounted> {
  const dir = await tempDir('mnt-');
  let output = '';
  const proc = spawn(process.execPath, [
    ...NODE_ARGS, entityId, dir, '--foreground', '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint,
    '--log-level', process.env['SYNAPSE_MOUNT_TEST_LOG'] ?? 'warn', ...args,
  ], { env: { ...process.env, ...env, SYNAPSE_AUTH_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
  proc.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  proc.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  try {
    await waitFor(`mount of ${entityId} at ${dir}`, async () => {
      if (exited) throw new Error(`mount process exited early:\n${output}`);
      return isMounted(dir);
    });
  } catch (err) {
    proc.kill('SIGKILL');
    await sh(`fusermount -uz ${dir} 2>/dev/null; rmdir ${dir}`);
    throw err;
  }
  return {
    dir,
    proc,
    output: () => output,
    unmount: async () => {
      if (!exited) {
        proc.kill('SIGTERM');
        await waitFor('mount process exit', () => exited, 20_000).catch(() => proc.kill('SIGKILL'));
      }
      if (await isMounted(dir)) await sh(`fusermount -uz ${dir}`);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** Deterministic content for a seeded file: a ramp seeded by `seed`. */
export function patternBytes(size: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * md5 of a file read slowly in a child python process: `chunkMiB` at a time with `pauseSec`
 * between chunks, so the read outlives short-lived STS tokens or presigned URLs.
 */
export async function slowMd5(file: string, chunkMiB: number, pauseSec: number, timeoutMs = 120_000): Promise<ShResult> {
  const py = `import hashlib,sys,time
h=hashlib.md5(); f=open(sys.argv[1],'rb')
while True:
    b=f.read(${chunkMiB}*1024*1024)
    if not b: break
    h.update(b); time.sleep(${pauseSec})
print(h.hexdigest())`;
  return sh(`python3 -c "${py.replace(/"/g, '\\"')}" '${file}'`, { timeoutMs });
}

/** POST /entity/child as `token`: the entity id of `name` in `parentId`, or undefined (404). */
export async function childId(stack: StackLike, parentId: string, name: string, token = stack.authToken): Promise<string | undefined> {
  const res = await fetch(`${stack.endpoint}/repo/v1/entity/child`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ parentId, entityName: name }),
  });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`entity/child answered ${res.status}`);
  return ((await res.json()) as { id: string }).id;
}

/** `synapse-mount status DIR --json` of a live mount: its status object (the call must succeed). */
export async function statusOf(dir: string): Promise<MountStatus> {
  const r = await cli(['status', dir, '--json'], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { status: MountStatus }).status;
}

/** Run a Python script given as lines (from a temporary file, removed after) with these arguments. */
export async function runPython(lines: string[], args: string[], timeoutMs = 120_000): Promise<ShResult> {
  const dir = await tempDir('py-');
  try {
    await writeFile(path.join(dir, 'script.py'), lines.join('\n'));
    return await sh(`python3 '${dir}/script.py' ${args.map((a) => `'${a}'`).join(' ')}`, { timeoutMs });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Python lines defining `cached_pages(fd)`: how many of the file's pages the kernel's page cache
 * holds. cachestat(2) (Linux ≥ 6.5) asks without touching the cache; only where it does not
 * exist (ENOSYS) the file is mapped and mincore(2) asked — which, for a file opened with
 * FOPEN_DIRECT_IO, would first drop its pages, but such opens of readable files only happen from
 * Linux 6.9. Measure through an fd opened
 * before the read or write being measured: an open drops the file's cached pages.
 */
export const CACHED_PAGES_PY = [
  'import ctypes, errno, os',
  '_libc = ctypes.CDLL(None, use_errno=True)',
  '_libc.syscall.restype = ctypes.c_long',
  '_libc.mmap.restype = ctypes.c_void_p',
  '_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]',
  '_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]',
  '_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]',
  'def cached_pages(fd):',
  '    rng = (ctypes.c_uint64 * 2)(0, 0)  # whole file',
  '    st = (ctypes.c_uint64 * 5)()',
  '    if _libc.syscall(451, fd, rng, st, 0) == 0:  # cachestat: 451 on every architecture',
  '        return st[0]',
  '    if ctypes.get_errno() != errno.ENOSYS:  # a refusal must fail the test, not fall back',
  '        raise OSError(ctypes.get_errno(), "cachestat")',
  '    size = os.fstat(fd).st_size',
  '    addr = _libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED',
  '    assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()',
  '    vec = ctypes.create_string_buffer((size + 4095) // 4096)',
  '    assert _libc.mincore(addr, size, vec) == 0, ctypes.get_errno()',
  '    _libc.munmap(addr, size)',
  '    return sum(b & 1 for b in vec.raw)',
];

export { makeTestCa, type TestCa } from '../test-ca.js';
export { kernelAtLeast } from '../../src/kernel-version.js';

/** A loopback port nothing listens on (bound, then released): connections to it are refused. */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
