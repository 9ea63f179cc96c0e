/**
 * `npm run bench` — issue #7's side-by-side benchmark, every figure in one run on one machine.
 *
 * Starts the local Synapse + S3 stack in this process, seeds a project, mounts it with the real
 * CLI in a child process, drives every mount only from child processes (dd, cat, ls, fio), and
 * divides each mount figure by a baseline measured in the same run: the project's direct S3
 * client (bench/direct-client.ts, its own child process) or the throttle's arithmetic. Peers
 * (s3fs, rclone mount) read and write the same s3rver bucket and objects.
 *
 * Guarantees: cold reads drop the page cache first and count only when /_dev/stats shows at
 * least the file's size served by S3 during the read (else the bench fails loudly); every step
 * has a timeout; mounts are unmounted and servers stopped on success, failure and Ctrl-C; a
 * watchdog ends the run at BUDGET_MS.
 *
 *   npm run bench                         all figures (≈ 5–8 min on 2 cores)
 *   npm run bench -- --only seq_read,ls   some groups (others are null in results.json)
 *   npm run bench -- --profile            also write the mount's --cpu-prof to .tmp/bench-prof/
 *   npm run bench -- --server-cpus 0 --client-cpus 1
 *                                         diagnostic: the servers (this process) on CPU 0, every
 *                                         client (mounts, direct client, peers, dd) on CPU 1 —
 *                                         as if S3 ran on another machine (bench/README.md)
 * Groups: seq_read, seq_write, par_read, rand_read, seq_read_latency, peers, ls.
 */
import './env.js';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startStack, type Stack, type StatsSnapshot } from '../test/server/stack.js';
import { ROOT } from '../test/e2e/harness.js';
import { CLI_ARGS, mountRclone, mountS3fs, mountSynapse, type BenchMount } from './mounts.js';
import { cpuSeconds, dropCaches, ensureTools, must, peakRssMiB, pinProcesses, serverCost, sh, threadTimes, threadTimesSince, type ServerCost, type ShResult, type ThreadTimes } from './sys.js';
import { formatTable, type AheadBasis, type Row } from './report.js';
import { best, describeRounds, describeThreadTimes, Pacer, fastest, inTurn, pairedRatio, round, roundsDetail, type Rounds, type Run } from './rounds.js';

const MiB = 1024 * 1024;
const BUDGET_MS = 11 * 60_000; // hard stop (the issue asks ≤ 10 min; this is the safety net)
const BIG_BYTES = 1024 * MiB;
const PAR_BYTES = 256 * MiB;
const PAR_FILES = 4;
const LS_FILES = 1000;
const SYNAPSE_LATENCY_MS = 50;
const S3_LATENCY_MS = 20;
const CACHE_SIZE = '512M';
const WRITE_MEMORY = '256M';
/** Synapse's throttle (test/server/config.ts, as production): L per W, C concurrent. */
const THROTTLE = { L: 600, W_s: 60, C: 3 };
const GROUPS = ['seq_read', 'seq_write', 'par_read', 'rand_read', 'seq_read_latency', 'peers', 'ls'] as const;
type Group = (typeof GROUPS)[number];
const TMP = path.join(ROOT, '.tmp');

export interface Results {
  seq_read_mbps: number | null;
  seq_read_ratio: number | null;
  seq_read_ratio_latency: number | null;
  seq_write_mbps: number | null;
  seq_write_ratio: number | null;
  ls_1000_cold_s: number | null;
  ls_l_1000_cold_s: number | null;
  ls_l_1000_warm_s: number | null;
  ls_l_1000_synapse_requests: number | null;
  ls_l_1000_throttle_bound_s: number | null;
  ls_l_1000_view_cold_s: number | null;
  par_read_ratio: number | null;
  rand_read_4k_warm_iops: number | null;
  rss_peak_mib: number | null;
  cache_mib: number | null;
  write_buffer_mib: number | null;
  peers: {
    s3fs: { seq_read_mbps: number | null; seq_write_mbps: number | null };
    rclone: { seq_read_mbps: number | null; seq_write_mbps: number | null };
  };
}

function emptyResults(): Results {
  return {
    seq_read_mbps: null, seq_read_ratio: null, seq_read_ratio_latency: null, seq_write_mbps: null, seq_write_ratio: null,
    ls_1000_cold_s: null, ls_l_1000_cold_s: null, ls_l_1000_warm_s: null, ls_l_1000_synapse_requests: null,
    ls_l_1000_throttle_bound_s: null, ls_l_1000_view_cold_s: null, par_read_ratio: null, rand_read_4k_warm_iops: null,
    rss_peak_mib: null, cache_mib: null, write_buffer_mib: null,
    peers: { s3fs: { seq_read_mbps: null, seq_write_mbps: null }, rclone: { seq_read_mbps: null, seq_write_mbps: null } },
  };
}

/** ⌊(R−1)/L⌋·W + (((R−1) mod L)+1)·d/C — the least time the throttle allows for R requests. */
export function throttleBoundSeconds(R: number, latencyMs: number, t = THROTTLE): number {
  if (R <= 0) return 0;
  return Math.floor((R - 1) / t.L) * t.W_s + (((R - 1) % t.L) + 1) * (latencyMs / 1000) / t.C;
}

const mibps = (bytes: number, seconds: number): number => round(bytes / MiB / seconds, 1);
const round0 = (x: number): number => Math.round(x);

/**
 * How rounds are run and compared: bench/rounds.ts.
 *
 * The sequential rounds are cheap ones after the first PEER_ROUNDS: s3fs, rclone and the
 * page-cache reference read (≈ 55 of a round's ≈ 95 s; the reference read in the first round
 * only, since session 13) run in the first PEER_ROUNDS rounds only,
 * and whether the mount is ahead of a peer is judged on the mount's best of those same rounds
 * (report.ts `aheadBasis`), never on rounds the peers did not run in.
 */
const ROUNDS = Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? 8));
/** Rounds (the first ones) that also run s3fs, rclone and the page-cache reference read. */
const PEER_ROUNDS = Math.max(1, Number(process.env['BENCH_PEER_ROUNDS'] ?? 2));
/** Rounds with the write (the first ones; the rest read only, readOnlyRounds). */
const WRITE_ROUNDS = (() => {
  const asked = Math.min(ROUNDS, Math.floor(Number(process.env['BENCH_WRITE_ROUNDS'] ?? ROUNDS)) || ROUNDS);
  // An even number (each side first as often as second), unless a single round was asked for.
  return ROUNDS === 1 ? 1 : Math.max(2, asked - (asked % 2));
})();
/** Parallel-read rounds (≈ 8 s each). */
const PAR_ROUNDS = Math.max(1, Number(process.env['BENCH_PAR_ROUNDS'] ?? 8));
/**
 * The issue asks for the whole run in ≤ 10 min. On a slow day (session 9: an Intel host where the
 * server cost twice its usual CPU per GiB) five sequential rounds took 460 s and the watchdog cut
 * the ls group. So the sequential rounds stop early — never below MIN_ROUNDS, and only after an
 * even number — when another pair of rounds would leave less than the later groups need
 * (measured on that day, with a margin). In session 13's slowest hour the 4 rounds then forced
 * took 450 s and the run 720 s, so 2 rounds (one in each order) are allowed when 2 more do not fit.
 */
const TARGET_S = 600;
const MIN_ROUNDS = 2;
/** The fewest rounds of the parallel and latency groups (pace()). */
const MIN_LATER_ROUNDS = 4;
/** What each later group needs, with a margin: session 13's four runs took ≤ 73 s (parallel + random, 8 rounds), ≤ 53 (latency, 8) and ≤ 77 (ls). */
const LATER_GROUP_S: Partial<Record<Group, number>> = { par_read: 75, rand_read: 15, seq_read_latency: 65, ls: 85 };
/** For reference only, off unless asked: the direct read through the AWS SDK (the baseline until session 5). */
const SDK_REFERENCE = process.env['BENCH_SDK_REFERENCE'] === '1';
/** Rounds of the read with 20 ms of S3 latency (≈ 7 s each). */
const LATENCY_ROUNDS = Math.max(1, Number(process.env['BENCH_LATENCY_ROUNDS'] ?? 8));

interface BenchArgs {
  only: Set<Group>;
  profile: boolean;
  /** taskset CPU lists: the servers' and the clients' (both or neither). */
  cpus?: { server: string; client: string };
}

function parseArgs(argv: string[]): BenchArgs {
  let only = new Set<Group>(GROUPS);
  const value = (flag: string): string | undefined => {
    const k = argv.indexOf(flag);
    if (k < 0) return undefined;
    const v = argv[k + 1] ?? '';
    if (!/^\d+([-,]\d+)*$/.test(v)) throw new Error(`${flag}: a CPU list such as 0 or 0-1 or 0,2 is required (got "${v}")`);
    return v;
  };
  const server = value('--server-cpus');
  const client = value('--client-cpus');
  if ((server === undefined) !== (client === undefined)) throw new Error('--server-cpus and --client-cpus go together');
  const i = argv.indexOf('--only');
  if (i >= 0) {
    const list = (argv[i + 1] ?? '').split(',').filter(Boolean);
    for (const g of list) if (!GROUPS.includes(g as Group)) throw new Error(`--only: unknown group "${g}" (${GROUPS.join(', ')})`);
    only = new Set(list as Group[]);
  }
  return { only, profile: argv.includes('--profile'), ...(server !== undefined && client !== undefined ? { cpus: { server, client } } : {}) };
}

/**
 * Bytes the dd commands in `r` report as copied ("N bytes (…) copied", "1 byte copied"). Not anchored at a line start: dd writes its summary
 * line and its newline in two writes, so the summaries of parallel dd's finishing together
 * can share a line ("…1.2 GB/s268435456 bytes (268 MB…") — probably why an anchored match once
 * counted 3 of 4 files (805,306,368 bytes, every dd exiting 0) and failed the parallel read.
 */
function ddBytes(r: ShResult): number {
  const all = [...r.stderr.matchAll(/(\d+) bytes? (?:\(|copied)/g)].map((m) => Number(m[1]));
  return all.reduce((a, b) => a + b, 0);
}

type ServerFields = Required<Pick<Run, 'serverCpu' | 'serverGc' | 'serverFaults'>>;

const serverFields = (s: ServerCost): ServerFields => ({ serverCpu: round(s.cpu, 2), serverGc: round(s.gc, 2), serverFaults: s.faults });

class Bench {
  readonly results = emptyResults();
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly details: Record<string, unknown> = {};
  /** The mount's best in the rounds the peers ran in (report.ts AheadBasis). */
  readonly aheadBasis: AheadBasis = {};
  private readonly mounts = new Set<BenchMount>();
  private readonly t0 = Date.now();
  stack!: Stack;
  projectId = '';
  dataId = '';
  bigKey = '';
  parKeys: string[] = [];
  bucket = '';
  srcFile = path.join(TMP, 'bench-write-src.bin');
  maxWriteMemorySupported = false;
  /** The mount under test has --direct-reads (session 10); the page-cache reference read needs --no-direct-reads. */
  directReadsSupported = false;
  /** A file view over `many/` (ls group), for the --metadata-view figure. */
  viewId = '';

  constructor(readonly opts: BenchArgs) {}

  log(s: string): void {
    const t = ((Date.now() - this.t0) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[bench ${t}s] ${s}\n`);
  }

  has(g: Group): boolean { return this.opts.only.has(g); }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, AWS_ACCESS_KEY_ID: this.stack.s3AccessKeyId, AWS_SECRET_ACCESS_KEY: this.stack.s3SecretAccessKey };
  }

  stats(): StatsSnapshot { return this.stack.dev.stats(); }

  /** Throw unless S3 served at least `bytes` between the two snapshots (a cold read). */
  checkServed(what: string, before: StatsSnapshot, bytes: number): number {
    const served = this.stats().s3.bytesOut - before.s3.bytesOut;
    if (served < bytes) {
      throw new Error(`${what}: S3 served only ${served} bytes of ${bytes} during the read — the figure would come from a cache; refusing to report it`);
    }
    return served;
  }

  checkReceived(what: string, before: StatsSnapshot, bytes: number): number {
    const got = this.stats().s3.bytesIn - before.s3.bytesIn;
    if (got < bytes) throw new Error(`${what}: S3 received only ${got} bytes of ${bytes} — the write did not reach S3`);
    return got;
  }

  async mount(args: string[] = [], token = this.stack.authToken): Promise<BenchMount> {
    const extra = ['--cache-size', CACHE_SIZE, ...(this.maxWriteMemorySupported ? ['--max-write-memory', WRITE_MEMORY] : []), ...args];
    const m = await mountSynapse({
      endpoint: this.stack.endpoint, s3Endpoint: this.stack.s3Endpoint, token, entityId: this.projectId, args: extra,
      ...(this.opts.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.join(TMP, 'bench-prof')}`] } : {}),
    });
    this.mounts.add(m);
    return m;
  }

  async unmount(m: BenchMount): Promise<void> {
    this.mounts.delete(m);
    await m.unmount();
  }

  /** `use` on a fresh mount, unmounted after it whatever happens. */
  async withMount<T>(use: (m: BenchMount) => Promise<T>, args: string[] = []): Promise<T> {
    const m = await this.mount(args);
    try {
      return await use(m);
    } finally {
      await this.unmount(m);
    }
  }

  async cleanup(): Promise<void> {
    for (const m of [...this.mounts]) {
      this.mounts.delete(m);
      await m.unmount().catch((e: unknown) => this.log(`unmount ${m.name} failed: ${(e as Error).message}`));
    }
    await this.stack?.close().catch(() => undefined);
    await rm(this.srcFile, { force: true }).catch(() => undefined);
  }

  /** The direct client in a child process; returns MiB/s and seconds. */
  async direct(args: string, what: string, timeoutMs = 180_000): Promise<Run & { bytes: number }> {
    const server0 = await threadTimes(process.pid);
    const cost = serverCost();
    const r = await sh(`node --import tsx bench/direct-client.ts ${args} --endpoint ${this.stack.s3Endpoint}`, {
      env: this.env(), cwd: ROOT, timeoutMs,
    });
    const s = cost();
    const server = threadTimesSince(server0, await threadTimes(process.pid));
    if (r.code !== 0) throw new Error(`direct client (${what}) failed: ${r.stderr.trim()}`);
    const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { bytes: number; seconds: number; cpu_s: number; threads?: ThreadTimes };
    // serverCpu: this process (s3rver, the gate, Synapse) while the client ran, as for a mount.
    // The client's thread times are its own, over its timed section.
    return {
      mbps: mibps(j.bytes, j.seconds), seconds: j.seconds, bytes: j.bytes, cpu: round(j.cpu_s, 2), ...serverFields(s),
      sched: { server, client: j.threads ?? {} },
    };
  }

  /**
   * A cold read by the direct client (page cache dropped; counts only if S3 served the bytes).
   */
  async directRead(keys: string[], bytes: number, what: string, via: 'direct' | 'sdk' = 'direct'): Promise<Run> {
    await dropCaches();
    const b = this.stats();
    const d = await this.direct(`read --bucket ${this.bucket} --keys '${keys.join(',')}' --via ${via}`, what);
    this.checkServed(`direct ${what}`, b, bytes);
    this.log(`direct ${what} ${d.mbps} MiB/s`);
    return d;
  }

  /** Time a command that reads/writes through a mount; returns seconds, CPU of the serving pid. */
  async timed(cmd: string, pid: number, timeoutMs: number): Promise<{ r: ShResult; seconds: number; cpu: number; sched: NonNullable<Run['sched']> } & ServerFields> {
    const [c0, server0, client0] = await Promise.all([cpuSeconds(pid), threadTimes(process.pid), threadTimes(pid)]);
    const cost = serverCost();
    const r = await sh(cmd, { timeoutMs });
    const s = cost();
    const [c1, server1, client1] = await Promise.all([cpuSeconds(pid), threadTimes(process.pid), threadTimes(pid)]);
    if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
    const sched = { server: threadTimesSince(server0, server1), client: threadTimesSince(client0, client1) };
    return { r, seconds: r.seconds, cpu: c1 - c0, sched, ...serverFields(s) };
  }

  /**
   * As timed(), with the seconds the child's own shell measured around `cmd` (bash's
   * EPOCHREALTIME: no fork): a figure of milliseconds is not inflated by how late this process —
   * which also serves S3 and Synapse, and collects their garbage — sees the child exit (session
   * 25: the warm `ls -l` read 0.115 s after the other groups, 0.013 s alone). `spawnSeconds`:
   * what this process saw.
   */
  async timedInChild(cmd: string, pid: number, timeoutMs: number): Promise<Awaited<ReturnType<Bench['timed']>> & { spawnSeconds: number }> {
    const t = await this.timed(`s=$EPOCHREALTIME; ${cmd}; rc=$?; e=$EPOCHREALTIME; echo "bench-elapsed $s $e" >&2; exit $rc`, pid, timeoutMs);
    const m = /bench-elapsed (\d+)[.,](\d+) (\d+)[.,](\d+)/.exec(t.r.stderr);
    const at = (whole: string, frac: string): number => Number(whole) + Number(`0.${frac}`);
    const seconds = m ? at(m[3]!, m[4]!) - at(m[1]!, m[2]!) : t.seconds;
    return { ...t, seconds, spawnSeconds: t.seconds };
  }

  // ---------------------------------------------------------------- setup

  async setup(): Promise<void> {
    const need = (g: Group): boolean => this.has(g);
    const tools: Array<{ tool: string; pkg: string }> = [];
    if (need('peers')) tools.push({ tool: 's3fs', pkg: 's3fs' }, { tool: 'rclone', pkg: 'rclone' });
    if (need('rand_read')) tools.push({ tool: 'fio', pkg: 'fio' });
    const installed = await ensureTools(tools, (s) => this.log(s)).catch((e: unknown) => {
      this.notes.push(`apt install failed: ${(e as Error).message.split('\n')[0]}`);
      return [];
    });
    if (installed.length) this.notes.push(`installed with apt for this run: ${installed.join(', ')}`);
    const help = await sh(`node ${CLI_ARGS.join(' ')} --help`, { cwd: ROOT, timeoutMs: 60_000 });
    this.maxWriteMemorySupported = help.stdout.includes('--max-write-memory');
    this.directReadsSupported = help.stdout.includes('--direct-reads');

    await mkdir(TMP, { recursive: true });
    this.stack = await startStack({ fixture: 'empty' });
    this.projectId = this.stack.seed.project('Bench');
    const data = await this.stack.seed.folder(this.projectId, 'data', { storage: 'sts' });
    this.dataId = data.id;
    const t = Date.now();
    const keyOf = (entityId: string): { bucket: string; key: string } => {
      const fh = this.stack.seed.fileHandle(String(this.stack.seed.entity(entityId).dataFileHandleId));
      return { bucket: fh.bucketName, key: fh.key };
    };
    // One random 1 GiB buffer serves every object: big.bin whole, par-i.bin its quarters. Fresh
    // memory is slow to touch on this VM (≈ 3–7 s per GiB of first-touch page faults), so the
    // bench allocates it once.
    const needBig = need('seq_read') || need('seq_write') || need('seq_read_latency') || need('peers');
    const needPar = need('par_read') || need('rand_read');
    if (needBig || needPar) {
      const big = randomBytes(BIG_BYTES);
      // The write source: the same bytes on local disk, read by dd and by the direct client.
      // Written by libuv's threads while this one seeds the objects (≈ 10 s each on a slow day).
      const source = needBig && (need('seq_write') || need('peers')) ? writeFile(this.srcFile, big) : undefined;
      source?.catch(() => undefined); // awaited below; a seeding error must not leave it unhandled
      if (needBig) {
        const f = await this.stack.seed.file(data.id, 'big.bin', big);
        ({ bucket: this.bucket, key: this.bigKey } = keyOf(f.id));
      }
      if (needPar) {
        for (let i = 0; i < (need('par_read') ? PAR_FILES : 1); i++) {
          const f = await this.stack.seed.file(data.id, `par-${i}.bin`, big.subarray(i * PAR_BYTES, (i + 1) * PAR_BYTES));
          const k = keyOf(f.id);
          this.bucket = k.bucket;
          this.parKeys.push(k.key);
        }
      }
      await source;
    }
    if (need('ls')) {
      const many = await this.stack.seed.folder(this.projectId, 'many');
      const small = Buffer.from('x'.repeat(100));
      const names = Array.from({ length: LS_FILES }, (_, i) => `f${String(i).padStart(4, '0')}.txt`);
      for (let i = 0; i < names.length; i += 25) {
        await Promise.all(names.slice(i, i + 25).map((n) => this.stack.seed.file(many.id, n, small)));
      }
      this.stack.seed.grant(this.projectId, this.stack.secondUserId, ['READ', 'DOWNLOAD']);
      // A file view whose scope is `many/` (what --metadata-view reads; the view inherits the
      // project's ACL, so the second user may query it).
      this.viewId = this.stack.seed.view(this.projectId, 'many files', [many.id]);
    }
    this.log(`seeded in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }

  // ---------------------------------------------------------------- figures

  /** One cold `dd` of the 1 GiB object through a mount (ours: data/big.bin; a peer: `file`). */
  async mountSeqRead(m: BenchMount, what: string, file = `${m.dir}/data/big.bin`, timeoutMs = 240_000): Promise<Run> {
    await dropCaches();
    const b = this.stats();
    const t = await this.timed(`dd if='${file}' of=/dev/null bs=1M`, m.pid, timeoutMs);
    if (ddBytes(t.r) !== BIG_BYTES) throw new Error(`${what} copied ${ddBytes(t.r)} bytes, not ${BIG_BYTES}`);
    const served = this.checkServed(what, b, BIG_BYTES);
    const run = { mbps: mibps(BIG_BYTES, t.seconds), seconds: t.seconds, cpu: t.cpu, serverCpu: t.serverCpu, serverGc: t.serverGc, serverFaults: t.serverFaults, s3Bytes: served, s3Requests: this.stats().s3.requests - b.s3.requests, sched: t.sched };
    this.log(`${what}: ${run.mbps} MiB/s, CPU ${run.cpu.toFixed(2)} s`);
    return run;
  }

  /**
   * Every timed write starts from the same state, as every cold read does: page cache dropped,
   * then the source file read back into it. Without the drop a write's speed depended on what
   * ran just before it — the same run's direct upload made 111–114 MiB/s after a cold read and
   * 143 after another write — because fresh memory is cheap or dear on this VM depending on how
   * recently it was freed (Caveats), and the direct client allocates a new buffer per part.
   */
  private async writeStart(): Promise<void> {
    await dropCaches();
    await must(`cat '${this.srcFile}' > /dev/null`);
  }

  /**
   * A fresh key each round, as the mount and the peers write: s3rver overwriting an object it
   * already holds reuses that file's freed pages, and measured ≈ 7 % faster (11.1–11.5 vs
   * 12.1–12.6 server CPU-s per GiB) — a head start the mount never gets.
   */
  async directSeqWrite(roundNo: number): Promise<Run> {
    await this.writeStart();
    const b = this.stats();
    const d = await this.direct(`write --bucket ${this.bucket} --file '${this.srcFile}' --key bench/direct-write-${roundNo}.bin`, 'seq write', 300_000);
    this.checkReceived('direct seq write', b, BIG_BYTES);
    this.log(`direct seq write ${d.mbps} MiB/s`);
    return { ...d, s3CompleteSeconds: round(this.stats().s3.completeSeconds - b.s3.completeSeconds, 2) };
  }

  /** `dd` of the 1 GiB source file into `file` on a mount, until close() returns. */
  async mountSeqWrite(m: BenchMount, file: string, what = 'mount seq write'): Promise<Run> {
    await this.writeStart();
    const b = this.stats();
    const t = await this.timed(`dd if='${this.srcFile}' of='${file}' bs=1M`, m.pid, 300_000);
    if (ddBytes(t.r) !== BIG_BYTES) throw new Error(`${what} copied ${ddBytes(t.r)} bytes, not ${BIG_BYTES}`);
    const got = this.checkReceived(what, b, BIG_BYTES);
    const run = { mbps: mibps(BIG_BYTES, t.seconds), seconds: t.seconds, cpu: t.cpu, serverCpu: t.serverCpu, serverGc: t.serverGc, serverFaults: t.serverFaults, s3Bytes: got, s3Requests: this.stats().s3.requests - b.s3.requests,
      s3CompleteSeconds: round(this.stats().s3.completeSeconds - b.s3.completeSeconds, 2) };
    this.log(`${what}: ${run.mbps} MiB/s, CPU ${run.cpu.toFixed(2)} s`);
    return run;
  }

  /** One round of the direct client and a fresh mount: cold read, then write (as selected). */
  private async mountRound(round: number, doRead: boolean, doWrite: boolean, reads: Rounds, writes: Rounds, sdkReads: Run[] | undefined,
    pageCacheReads: Run[], withReference: boolean, note: (rssPeak: number, rssAfterRead: number) => void): Promise<void> {
    let afterRead = 0;
    const directSide = async (): Promise<void> => {
      if (doRead) reads.direct.push(await this.directRead([this.bigKey], BIG_BYTES, 'seq read'));
      // For reference only: the same read through @aws-sdk/client-s3 (the baseline before session 5).
      if (doRead && SDK_REFERENCE && sdkReads) sdkReads.push(await this.directRead([this.bigKey], BIG_BYTES, 'seq read via the SDK', 'sdk'));
      if (doWrite) writes.direct.push(await this.directSeqWrite(round));
    };
    // A fresh mount each round: every mount read is a cold first read.
    const mountSide = (): Promise<void> => this.withMount(async (m) => {
      if (doRead) {
        reads.mount.push(await this.mountSeqRead(m, 'mount seq read', undefined, 180_000));
        afterRead = round0(await peakRssMiB(m.pid));
      }
      if (doWrite) writes.mount.push(await this.mountSeqWrite(m, `${m.dir}/data/written-${round}.bin`));
      note(round0(await peakRssMiB(m.pid)), afterRead);
    });
    await inTurn(round, directSide, mountSide);
    // For reference only: the same cold read through the kernel's page cache (--no-direct-reads,
    // the default before session 10 and on kernels before 6.9). The figure stays the default mount's.
    if (doRead && withReference && this.directReadsSupported) {
      pageCacheReads.push(await this.withMount((cached) => this.mountSeqRead(cached, 'mount --no-direct-reads seq read', undefined, 180_000), ['--no-direct-reads']));
    }
  }

  /**
   * Pairs of read-only rounds after the full ones, while they fit: a round with the write costs
   * ≈ 40–70 s and one without ≈ 12–20, so on a slow day the read ratio would otherwise rest on 2
   * rounds (session 14's first run: 2 full rounds, ratios 0.74 and 0.82). Up to ROUNDS reads, paced
   * like the later groups (Pacer), the first pair estimated from the rounds already run.
   */
  private async readOnlyRounds(reads: Rounds, reserveS: number, note: (rssPeak: number, rssAfterRead: number) => void): Promise<void> {
    const before = reads.mount.length;
    // Before a pair is timed: each side's slowest read plus mount, unmount and dropping the
    // page cache (≈ 3 s a run).
    const slowest = (runs: Run[]): number => Math.max(...runs.map((r) => r.seconds));
    const pacer = new Pacer({
      startedAt: this.t0, targetS: TARGET_S, reserveS, minRounds: 0,
      firstRoundS: slowest(reads.direct) + slowest(reads.mount) + 6,
    });
    // Pairs only (Pacer stops at even counts; a pair must fit in ROUNDS).
    for (let k = 0; (k % 2 === 1 || reads.mount.length + 2 <= ROUNDS) && pacer.another(k); k++) {
      await this.mountRound(reads.mount.length, true, false, reads, { direct: [], mount: [] }, undefined, [], false, note);
    }
    const added = reads.mount.length - before;
    if (added > 0) this.notes.push(`sequential reads: ${added} read-only rounds after the ${before} with the write (${reads.mount.length} in all)`);
  }

  async seqReadAndWrite(): Promise<void> {
    const doRead = this.has('seq_read');
    const doWrite = this.has('seq_write');
    const doPeers = this.has('peers');
    if (doPeers) await this.findPeers();
    const reads: Rounds = { direct: [], mount: [] };
    const writes: Rounds = { direct: [], mount: [] };
    const sdkReads: Run[] = [];
    const pageCacheReads: Run[] = [];
    let rssPeak = 0;
    let rssAfterRead = 0;
    const reserveS = GROUPS.filter((g) => this.has(g)).reduce((sum, g) => sum + (LATER_GROUP_S[g] ?? 0), 0);
    // How long a round may take: the longest so far with the peers, and without them — a round's
    // own part (direct and mount), timed in every round, is what a round without peers costs.
    const longestS = { peers: 0, plain: 0 };
    const costOf = (i: number): number => (i < PEER_ROUNDS ? longestS.peers : longestS.plain);
    const fullRounds = doRead && doWrite ? WRITE_ROUNDS : ROUNDS;
    let fullRun = 0;
    for (let round = 0; round < fullRounds; round++, fullRun++) {
      const r0 = Date.now();
      const withPeers = round < PEER_ROUNDS;
      // The page-cache reference read in the first round only (≈ 10–27 s a round; session 13's
      // third run took 617 s with it in both peer rounds).
      if (doRead || doWrite) await this.mountRound(round, doRead, doWrite, reads, writes, sdkReads, pageCacheReads, round === 0, (rss, afterRead) => {
        rssPeak = Math.max(rssPeak, rss);
        rssAfterRead = Math.max(rssAfterRead, afterRead);
      });
      longestS.plain = Math.max(longestS.plain, (Date.now() - r0) / 1000);
      if (doPeers && withPeers) await this.peerRound(round);
      if (withPeers) longestS.peers = Math.max(longestS.peers, (Date.now() - r0) / 1000);
      const nextTwoS = costOf(round + 1) + costOf(round + 2);
      const elapsedS = (Date.now() - this.t0) / 1000;
      if (round + 1 < fullRounds && round + 1 >= MIN_ROUNDS && (round + 1) % 2 === 0 && elapsedS + nextTwoS > TARGET_S - reserveS) {
        this.notes.push(`sequential rounds: ${round + 1} of ${fullRounds} — two more (up to ${Math.round(nextTwoS)} s) would have left the later groups less than the ${reserveS} s they need to end within ${TARGET_S / 60} min`);
        fullRun++;
        break;
      }
    }
    if (doRead && doWrite) await this.readOnlyRounds(reads, reserveS, (rss, afterRead) => {
      rssPeak = Math.max(rssPeak, rss);
      rssAfterRead = Math.max(rssAfterRead, afterRead);
    });
    // The peers ran in the first rounds only (never in the read-only ones): the mount is judged
    // against them on those rounds.
    const peerCount = Math.min(PEER_ROUNDS, fullRun);
    const peerRounds = (runs: Run[]): Run[] => runs.slice(0, peerCount);
    if (doPeers && doRead) this.aheadBasis.read = fastest(peerRounds(reads.mount)).mbps;
    if (doPeers && doWrite) this.aheadBasis.write = fastest(peerRounds(writes.mount)).mbps;
    if (doPeers) this.finishPeers();
    if (doRead) {
      const { mount, direct } = best(reads);
      this.results.seq_read_mbps = mount.mbps;
      this.results.seq_read_ratio = pairedRatio(reads);
      const sdk = sdkReads.length > 0 ? fastest(sdkReads) : undefined;
      const cached = pageCacheReads.length > 0 ? fastest(pageCacheReads) : undefined;
      const threads = describeThreadTimes(reads);
      this.details['seq_read'] = {
        ...roundsDetail(reads), ...(sdk ? { sdk: { best: sdk, runs: sdkReads } } : {}),
        ...(cached ? { page_cache: { best: cached, runs: pageCacheReads } } : {}), rss_hwm_after_read_mib: rssAfterRead,
      };
      this.rows.push({
        key: 'seq_read_mbps', value: mount.mbps,
        note: `direct ${direct.mbps} MiB/s; ${describeRounds(reads)}; S3 served ${((mount.s3Bytes ?? 0) / MiB).toFixed(0)} MiB; CPU s/GiB: mount ${mount.cpu.toFixed(1)}, direct ${direct.cpu.toFixed(1)}`
          + (sdk ? `; for reference, direct through the AWS SDK: best ${sdk.mbps} MiB/s (${sdkReads.map((r) => r.mbps).join(', ')}), mount ÷ that ${round(mount.mbps / sdk.mbps)}` : '')
          + (cached ? `; through the page cache (--no-direct-reads): best ${cached.mbps} MiB/s (${pageCacheReads.map((r) => r.mbps).join(', ')}), ÷ direct ${round(cached.mbps / direct.mbps)}, CPU s/GiB ${cached.cpu.toFixed(1)}` : '')
          + (this.aheadBasis.read !== undefined ? `; against the peers: ${this.aheadBasis.read} MiB/s, the mount's best of the ${peerCount} rounds they ran in` : '')
          + (threads ? `; ${threads}` : ''),
      });
    }
    if (doWrite) {
      const { mount, direct } = best(writes);
      this.results.seq_write_mbps = mount.mbps;
      this.results.seq_write_ratio = pairedRatio(writes);
      this.details['seq_write'] = roundsDetail(writes);
      this.rows.push({
        key: 'seq_write_mbps', value: mount.mbps,
        note: `direct ${direct.mbps} MiB/s; ${describeRounds(writes)}; dd until close() returned (upload included); CPU s/GiB: mount ${mount.cpu.toFixed(1)}, direct ${direct.cpu.toFixed(1)}, server ${(mount.serverCpu ?? 0).toFixed(1)} (GC ${(mount.serverGc ?? 0).toFixed(1)}); `
          + `of each run, s3rver's CompleteMultipartUpload (it copies every part into the object; S3 does not): mount ${writes.mount.map((r) => r.s3CompleteSeconds ?? '?').join(', ')} s, direct ${writes.direct.map((r) => r.s3CompleteSeconds ?? '?').join(', ')} s`
          + (this.aheadBasis.write !== undefined ? `; against the peers: ${this.aheadBasis.write} MiB/s, the mount's best of the ${peerCount} rounds they ran in` : ''),
      });
    }
    if (!doRead && !doWrite) return;
    this.results.rss_peak_mib = rssPeak;
    this.rows.push({
      key: 'rss_peak_mib', value: rssPeak,
      note: `VmHWM of the mount process, highest of ${Math.max(reads.mount.length, writes.mount.length)} mounts${doRead ? `; ${rssAfterRead} MiB after the read, before the write` : ''}`,
    });
    this.results.cache_mib = 512;
    this.results.write_buffer_mib = this.maxWriteMemorySupported ? 256 : 64;
    if (!this.maxWriteMemorySupported) {
      this.notes.push('write_buffer_mib: the mount has no --max-write-memory; 64 = its implicit bound (4 parts in flight × 16 MiB)');
    }
  }

  async parReadAndRand(): Promise<void> {
    const doPar = this.has('par_read');
    const doRand = this.has('rand_read');
    const rounds: Rounds = { direct: [], mount: [] };
    const bytes = PAR_FILES * PAR_BYTES;
    const pace = this.pace('parallel reads', ['rand_read', 'seq_read_latency', 'ls']);
    for (let round = 0; doPar && round < PAR_ROUNDS && pace.another(round); round++) {
      await inTurn(round, async () => {
        rounds.direct.push(await this.directRead(this.parKeys, bytes, 'parallel read'));
      }, () => this.withMount(async (m) => {
        await dropCaches();
        const b = this.stats();
        const files = this.parKeys.map((_, i) => `'${m.dir}/data/par-${i}.bin'`).join(' ');
        // Each dd reports into its own file: their summaries never share a line (ddBytes).
        const logs = path.join(TMP, 'par-dd');
        const t = await this.timed(
          `rm -f '${logs}'-*.log; pids=(); i=0; for f in ${files}; do dd if="$f" of=/dev/null bs=1M 2>"${logs}-$i.log" & pids+=($!); i=$((i+1)); done; ` +
            `rc=0; for p in "\${pids[@]}"; do wait $p || rc=1; done; cat '${logs}'-*.log >&2; exit $rc`,
          m.pid, 180_000);
        if (ddBytes(t.r) !== bytes) throw new Error(`parallel read copied ${ddBytes(t.r)} bytes, not ${bytes}:\n${t.r.stderr}`);
        const served = this.checkServed('mount parallel read', b, bytes);
        rounds.mount.push({
          mbps: mibps(bytes, t.seconds), seconds: t.seconds, cpu: t.cpu, serverCpu: t.serverCpu, serverGc: t.serverGc, serverFaults: t.serverFaults, s3Bytes: served,
          s3Requests: this.stats().s3.requests - b.s3.requests,
        });
        this.log(`mount parallel read ${mibps(bytes, t.seconds)} MiB/s`);
      }));
    }
    // Its own mount (it used to share the last parallel round's, but that round may not run).
    if (doRand) await this.withMount((m) => this.randRead(m));
    if (doPar) {
      const { mount, direct } = best(rounds);
      this.results.par_read_ratio = pairedRatio(rounds);
      this.details['par_read'] = roundsDetail(rounds);
      this.rows.push({
        key: 'par_read_ratio', value: this.results.par_read_ratio,
        note: `mount ${mount.mbps} vs direct ${direct.mbps} MiB/s (4 × 256 MiB); ${describeRounds(rounds)}; S3 served ${((mount.s3Bytes ?? 0) / MiB).toFixed(0)} MiB for 1024 read`,
      });
    }
  }

  /**
   * A Pacer for a later group (parallel, latency): it may stop after MIN_LATER_ROUNDS rounds
   * when two more would leave the groups `after` it less than their reserve (LATER_GROUP_S).
   * Session 14's second run: the parallel group took 99 s against its 90 s reserve, and the run
   * ended at 591 s.
   */
  private pace(what: string, after: Group[]): Pacer {
    const reserveS = after.filter((g) => this.has(g)).reduce((sum, g) => sum + (LATER_GROUP_S[g] ?? 0), 0);
    return new Pacer({
      startedAt: this.t0, targetS: TARGET_S, reserveS, minRounds: MIN_LATER_ROUNDS,
      onStop: (rounds, pairS) => this.notes.push(`${what}: ${rounds} rounds — two more (up to ${Math.round(pairS)} s) would have left the groups after them less than the ${reserveS} s they need`),
    });
  }

  async randRead(m: BenchMount): Promise<void> {
    const file = `${m.dir}/data/par-0.bin`;
    // Warm the mount's block cache (not the kernel's: the figure reads with O_DIRECT). Twice: one
    // sequential pass over a big file is a scan, which the cache does not let flush it; a file
    // read again is kept (block-cache.ts).
    await dropCaches();
    await must(`cat '${file}' > /dev/null`, { timeoutMs: 120_000 });
    await dropCaches();
    await must(`cat '${file}' > /dev/null`, { timeoutMs: 120_000 });
    await dropCaches();
    const b = this.stats();
    const c0 = await cpuSeconds(m.pid);
    let iops: number;
    let how: string;
    if ((await sh('command -v fio')).code === 0) {
      const r = await must(`fio --name=rand4k --filename='${file}' --readonly --direct=1 --rw=randread --bs=4k --ioengine=psync `
        + `--iodepth=1 --numjobs=1 --time_based --runtime=10 --output-format=json`, { timeoutMs: 60_000 });
      const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: Array<{ read: { iops: number; clat_ns?: { mean: number } } }> };
      iops = j.jobs[0]!.read.iops;
      how = `fio psync QD1 O_DIRECT 10 s; mean latency ${((j.jobs[0]!.read.clat_ns?.mean ?? 0) / 1000).toFixed(0)} µs`;
    } else {
      const py = [
        'import os, mmap, random, time, sys',
        'f = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT); size = os.fstat(f).st_size; buf = mmap.mmap(-1, 4096)',
        'n = 0; end = time.time() + 10',
        'while time.time() < end:',
        '    os.preadv(f, [buf], random.randrange(size // 4096) * 4096); n += 1',
        'print(n / 10)',
      ].join('\n');
      const r = await must(`python3 -c '${py}' '${file}'`, { timeoutMs: 60_000 });
      iops = Number(r.stdout.trim());
      how = 'python O_DIRECT pread QD1 10 s (fio not installed)';
    }
    const cpu = (await cpuSeconds(m.pid)) - c0;
    const fromS3 = this.stats().s3.bytesOut - b.s3.bytesOut;
    this.results.rand_read_4k_warm_iops = Math.round(iops);
    this.details['rand_read'] = { iops, how, s3_bytes_during: fromS3, mount_cpu_s: cpu };
    this.rows.push({ key: 'rand_read_4k_warm_iops', value: Math.round(iops), note: `${how}; S3 bytes during: ${fromS3}; mount CPU ${(cpu / 10).toFixed(2)} cores` });
    this.log(`random 4k warm: ${Math.round(iops)} IOPS`);
  }

  async seqReadLatency(): Promise<void> {
    this.stack.dev.setConfig({ s3LatencyMs: S3_LATENCY_MS });
    try {
      const rounds: Rounds = { direct: [], mount: [] };
      const pace = this.pace('latency reads', ['ls']);
      for (let round = 0; round < LATENCY_ROUNDS && pace.another(round); round++) {
        await inTurn(round, async () => {
          rounds.direct.push(await this.directRead([this.bigKey], BIG_BYTES, 'seq read with latency'));
        }, async () => {
          rounds.mount.push(await this.withMount((m) => this.mountSeqRead(m, 'mount seq read with latency')));
        });
      }
      const { mount, direct } = best(rounds);
      this.results.seq_read_ratio_latency = pairedRatio(rounds);
      this.details['seq_read_latency'] = roundsDetail(rounds);
      this.rows.push({
        key: 'seq_read_ratio_latency', value: this.results.seq_read_ratio_latency,
        note: `${S3_LATENCY_MS} ms per S3 request: mount ${mount.mbps} vs direct ${direct.mbps} MiB/s; ${describeRounds(rounds)}`,
      });
    } finally {
      this.stack.dev.setConfig({ s3LatencyMs: 0 });
    }
  }

  private readonly peerRuns = new Map<'s3fs' | 'rclone', { reads: Run[]; writes: Run[]; rss: number; failed?: string }>();

  /** Which peers can run (installed); the others are noted and left null. */
  private async findPeers(): Promise<void> {
    for (const name of ['s3fs', 'rclone'] as const) {
      if ((await sh(`command -v ${name}`)).code !== 0) this.notes.push(`${name} not installed: peers.${name} is null`);
      else this.peerRuns.set(name, { reads: [], writes: [], rss: 0 });
    }
  }

  /**
   * One round of each peer, inside the mount's own rounds (seqReadAndWrite): a fresh peer mount,
   * a cold read, then a write. So every read of every side follows another side's write, and
   * every write another side's read — the same conditions for all (a peer measured in a section
   * of its own had its first read follow reads only, and that read was its best every time).
   */
  private async peerRound(r: number): Promise<void> {
    const peerOpts = {
      s3Endpoint: this.stack.s3Endpoint, accessKeyId: this.stack.s3AccessKeyId,
      secretAccessKey: this.stack.s3SecretAccessKey, bucket: this.bucket, prefix: path.posix.dirname(this.bigKey),
    };
    const bigName = path.posix.basename(this.bigKey);
    for (const [name, mountPeer] of [['s3fs', mountS3fs], ['rclone', mountRclone]] as const) {
      const runs = this.peerRuns.get(name);
      if (!runs || runs.failed) continue;
      let m: BenchMount | undefined;
      try {
        m = await mountPeer(peerOpts);
        this.mounts.add(m);
        runs.reads.push(await this.mountSeqRead(m, `${name} seq read`, `${m.dir}/${bigName}`));
        runs.writes.push(await this.mountSeqWrite(m, `${m.dir}/${name}-write-${r}.bin`, `${name} seq write`));
        runs.rss = Math.max(runs.rss, round0(await peakRssMiB(m.pid)));
      } catch (err) {
        this.log(`${name} failed: ${(err as Error).message}\n${m?.output().slice(-2000) ?? ''}`);
        runs.failed = (err as Error).message.split('\n')[0] ?? 'failed';
      } finally {
        if (m) await this.unmount(m);
      }
    }
  }

  private finishPeers(): void {
    for (const [name, runs] of this.peerRuns) {
      if (runs.failed || runs.reads.length === 0) {
        this.notes.push(`${name} failed: ${runs.failed ?? 'no run'}`);
        continue;
      }
      const read = fastest(runs.reads);
      const write = fastest(runs.writes);
      this.results.peers[name].seq_read_mbps = read.mbps;
      this.results.peers[name].seq_write_mbps = write.mbps;
      this.details[`peer_${name}`] = { read, write, reads: runs.reads, writes: runs.writes, rss_peak_mib: runs.rss };
      this.rows.push({ key: `peers.${name}.seq_read_mbps`, value: read.mbps, note: `best of ${runs.reads.map((x) => x.mbps).join(', ')}; CPU ${read.cpu.toFixed(1)} s/GiB` });
      this.rows.push({ key: `peers.${name}.seq_write_mbps`, value: write.mbps, note: `best of ${runs.writes.map((x) => x.mbps).join(', ')}; CPU ${write.cpu.toFixed(1)} s/GiB; peak RSS ${runs.rss} MiB` });
    }
  }

  async ls(): Promise<void> {
    // Synapse as production behaves: 50 ms per request, 3 concurrent and 600/min per user. The
    // throttle's window only records requests made while it is on, so it starts empty here.
    this.stack.dev.setConfig({ synapseLatencyMs: SYNAPSE_LATENCY_MS, throttle: true });
    try {
      // Plain `ls` as the second user (a throttle window of its own, untouched by the ls -l below).
      const m1 = await this.mount([], this.stack.secondAuthToken);
      try {
        const t = await this.timedInChild(`ls '${m1.dir}/many' > /dev/null`, m1.pid, 60_000);
        this.results.ls_1000_cold_s = round(t.seconds);
        this.rows.push({ key: 'ls_1000_cold_s', value: this.results.ls_1000_cold_s, note: 'as the second user (a throttle window of its own)' });
        this.log(`ls cold ${t.seconds.toFixed(2)} s`);
      } finally {
        await this.unmount(m1);
      }
      const m2 = await this.mount();
      try {
        const b = this.stats();
        const t = await this.timedInChild(`ls -l '${m2.dir}/many' > /dev/null`, m2.pid, 300_000);
        const a = this.stats();
        const total = a.synapse.requests - b.synapse.requests;
        const throttled = a.synapse.throttled - b.synapse.throttled;
        const accepted = total - throttled;
        const byRoute: Record<string, number> = {};
        for (const [k, v] of Object.entries(a.synapse.byRoute)) {
          const d = v - (b.synapse.byRoute[k] ?? 0);
          if (d > 0) byRoute[k] = d;
        }
        const bound = throttleBoundSeconds(accepted, SYNAPSE_LATENCY_MS);
        this.results.ls_l_1000_cold_s = round(t.seconds);
        this.results.ls_l_1000_synapse_requests = total;
        this.results.ls_l_1000_throttle_bound_s = round(bound);
        const w = await this.timedInChild(`ls -l '${m2.dir}/many' > /dev/null`, m2.pid, 120_000);
        const a2 = this.stats();
        this.results.ls_l_1000_warm_s = round(w.seconds);
        this.details['ls_l'] = {
          cold_s: t.seconds, warm_s: w.seconds, requests: total, throttled_429: throttled, accepted, by_route: byRoute,
          warm_requests: a2.synapse.requests - a.synapse.requests, bound_s: bound, mount_cpu_s: t.cpu,
        };
        this.rows.push({
          key: 'ls_l_1000_cold_s', value: this.results.ls_l_1000_cold_s,
          note: `${(t.seconds / bound).toFixed(3)} × bound; ${Object.entries(byRoute).map(([k, v]) => `${v} ${k}`).join(', ')}`,
        });
        this.rows.push({
          key: 'ls_l_1000_throttle_bound_s', value: this.results.ls_l_1000_throttle_bound_s,
          note: `⌊(R−1)/L⌋·W + (((R−1) mod L)+1)·d/C, R=${accepted}, L=${THROTTLE.L}, W=${THROTTLE.W_s} s, C=${THROTTLE.C}, d=${SYNAPSE_LATENCY_MS} ms`,
        });
        this.rows.push({ key: 'ls_l_1000_synapse_requests', value: total, note: `${throttled} of them answered 429; bound uses the ${accepted} accepted` });
        this.rows.push({ key: 'ls_l_1000_warm_s', value: this.results.ls_l_1000_warm_s, note: `${a2.synapse.requests - a.synapse.requests} Synapse requests during the warm ls -l; timed in its shell (the bench saw ${w.spawnSeconds.toFixed(3)} s)` });
        this.log(`ls -l cold ${t.seconds.toFixed(2)} s (bound ${bound.toFixed(2)} s, ${total} requests, ${throttled} × 429), warm ${w.seconds.toFixed(3)} s`);
      } finally {
        await this.unmount(m2);
      }
      // Cold `ls -l` with --metadata-view: a fresh mount (empty caches) as the second user, whose
      // throttle window is empty by now (its plain `ls` ran before the first user's ~70 s cold
      // `ls -l`, whose requests still fill the first user's window).
      const m3 = await this.mount(['--metadata-view', this.viewId], this.stack.secondAuthToken);
      try {
        const b = this.stats();
        const t = await this.timedInChild(`ls -l '${m3.dir}/many' > /dev/null`, m3.pid, 120_000);
        const a = this.stats();
        const byRoute: Record<string, number> = {};
        for (const [k, v] of Object.entries(a.synapse.byRoute)) {
          const d = v - (b.synapse.byRoute[k] ?? 0);
          if (d > 0) byRoute[k] = d;
        }
        const total = a.synapse.requests - b.synapse.requests;
        const throttled = a.synapse.throttled - b.synapse.throttled;
        // The figure counts only if the sizes are right (every file is 100 B).
        const check = await this.timed(`ls -l '${m3.dir}/many'`, m3.pid, 60_000);
        const sized = check.r.stdout.split('\n').filter((l) => /^-\S+\s+\d+\s+\S+\s+\S+\s+100\s/.test(l)).length;
        if (sized !== LS_FILES) throw new Error(`ls -l with --metadata-view showed ${sized} files of 100 B, not ${LS_FILES}`);
        this.results.ls_l_1000_view_cold_s = round(t.seconds);
        this.details['ls_l_view'] = { cold_s: t.seconds, requests: total, throttled_429: throttled, by_route: byRoute, mount_cpu_s: t.cpu };
        this.rows.push({
          key: 'ls_l_1000_view_cold_s', value: this.results.ls_l_1000_view_cold_s,
          note: `fresh mount as the second user (empty throttle window); ${total} requests: ${Object.entries(byRoute).map(([k, v]) => `${v} ${k}`).join(', ')}${throttled ? `; ${throttled} × 429` : ''}`,
        });
        this.log(`ls -l cold with --metadata-view ${t.seconds.toFixed(2)} s, ${total} requests`);
      } finally {
        await this.unmount(m3);
      }
    } finally {
      this.stack.dev.setConfig({ synapseLatencyMs: 0, throttle: false });
    }
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const bench = new Bench(opts);
  let failed: Error | undefined;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    bench.log(`${why}: unmounting and stopping servers`);
    await bench.cleanup();
    process.exit(2);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const watchdog = setTimeout(() => void stop(`over the ${BUDGET_MS / 60_000} min budget`), BUDGET_MS);
  watchdog.unref();
  const load0 = os.loadavg();
  const started = Date.now();
  try {
    if (opts.cpus) {
      await pinProcesses(opts.cpus.server, opts.cpus.client);
      bench.notes.push(`CPUs split (diagnostic): the servers on ${opts.cpus.server}, every client (mounts, direct client, peers, dd) on ${opts.cpus.client}`);
    }
    await bench.setup();
    bench.notes.push('round order: the direct client first in even rounds, the mount first in odd ones (every group with rounds)');
    const steps: Array<[boolean, string, () => Promise<void>]> = [
      [bench.has('seq_read') || bench.has('seq_write') || bench.has('peers'), 'sequential read/write (and the peers, in the same rounds)', () => bench.seqReadAndWrite()],
      [bench.has('par_read') || bench.has('rand_read'), 'parallel/random read', () => bench.parReadAndRand()],
      [bench.has('seq_read_latency'), 'sequential read with S3 latency', () => bench.seqReadLatency()],
      [bench.has('ls'), 'ls', () => bench.ls()],
    ];
    for (const [on, name, fn] of steps) {
      if (!on) continue;
      bench.log(`— ${name}`);
      await fn();
    }
  } catch (err) {
    failed = err as Error;
    bench.log(`FAILED: ${failed.stack ?? failed.message}`);
  } finally {
    clearTimeout(watchdog);
    if (!stopping) await bench.cleanup();
  }
  const seconds = (Date.now() - started) / 1000;
  const load1 = os.loadavg();
  const rev = (await sh('git rev-parse --short HEAD; git status --porcelain -- src bin | wc -l', { cwd: ROOT })).stdout.trim().split('\n');
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const machine = `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}; `
    + `load avg ${load0[0]!.toFixed(1)} → ${load1[0]!.toFixed(1)}; ${opts.cpus ? `CPUs split: servers ${opts.cpus.server}, clients ${opts.cpus.client}; ` : ''}commit ${rev[0]}${Number(rev[1]) > 0 ? ` + ${rev[1]} uncommitted src/bin files` : ''}; ${seconds.toFixed(0)} s`;
  process.stdout.write(`${formatTable(bench.results, bench.rows, bench.notes, machine, bench.aheadBasis)}\n`);
  await writeFile(path.join(ROOT, 'bench', 'results.json'), `${JSON.stringify(bench.results, null, 2)}\n`);
  await writeFile(path.join(TMP, 'bench-details.json'), `${JSON.stringify({ machine, details: bench.details, notes: bench.notes }, null, 2)}\n`);
  bench.log(`wrote bench/results.json (details in .tmp/bench-details.json)`);
  if (failed) {
    process.stderr.write(`bench failed: ${failed.message}\n`);
    return 1;
  }
  return 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`bench crashed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

