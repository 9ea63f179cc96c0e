/**
 * Process and system helpers for the bench: bounded child processes, wall-clock timing of a
 * command, the page-cache drop, peak RSS from /proc, and tool discovery/installation.
 *
 * Everything that touches a mount runs in a child process: this process hosts s3rver and the
 * Synapse server, and a synchronous fs call on a FUSE mount served by a process that waits on
 * us would deadlock (DESIGN §6).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

/**
 * CPUs the bench's clients run on (`--client-cpus`, taskset's list syntax), or undefined: every
 * child process this module starts — dd, the direct client, mounts, peers — runs there, while
 * this process (s3rver and the Synapse server) is pinned elsewhere (`pinThisProcess`). Off by
 * default: the headline figures are measured with everything sharing the machine's CPUs.
 */
let clientCpus: string | undefined;

/** Pin this process (every thread: s3rver, the Synapse server, libuv's pool) to `serverCpus`; children go to `clients`. */
export async function pinProcesses(serverCpus: string, clients: string): Promise<void> {
  await must(`taskset -a -p -c '${serverCpus}' ${process.pid} > /dev/null`, { timeoutMs: 10_000 });
  clientCpus = clients;
}

/** `cmd` and `args` as run on the client CPUs (taskset execs the command: the pid is the command's). */
function onClientCpus(cmd: string, args: string[]): [string, string[]] {
  return clientCpus === undefined ? [cmd, args] : ['taskset', ['-c', clientCpus, cmd, ...args]];
}

export interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run `cmd` with bash in a child process, bounded by `timeoutMs` (SIGKILL when over). */
export function sh(cmd: string, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ShResult> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const [file, args] = onClientCpus('/bin/bash', ['-c', cmd]);
    execFile(file, args, {
      timeout: opts.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8',
      env: opts.env ?? process.env, ...(opts.cwd ? { cwd: opts.cwd } : {}),
    }, (err, stdout, stderr) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
      const note = e?.killed ? `[bench: killed after ${opts.timeoutMs ?? 120_000} ms]` : e && typeof e.code !== 'number' ? `[bench: ${e.message}]` : '';
      resolve({ code, stdout, stderr: stderr + note, seconds });
    });
  });
}

/** Like sh() but throws with the output when the command fails. */
export async function must(cmd: string, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ShResult> {
  const r = await sh(cmd, opts);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stderr.trim()}\n${r.stdout.trim()}`.trim());
  return r;
}

/** Flush dirty pages and drop the page, dentry and inode caches (root only). */
export async function dropCaches(): Promise<void> {
  await must('sync; echo 3 > /proc/sys/vm/drop_caches', { timeoutMs: 60_000 });
}

/** Peak resident set (VmHWM) of a live process, in MiB. */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Current resident set (VmRSS) of a live process, in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) / 1024 : 0;
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0); // utime, stime (fields 14, 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

export async function which(tool: string): Promise<boolean> {
  return (await sh(`command -v ${tool}`, { timeoutMs: 5_000 })).code === 0;
}

/**
 * Make sure Debian packages providing `tools` are installed; returns the packages it installed
 * (the caller says so in its output). Bounded: apt gets 5 minutes at most.
 */
export async function ensureTools(tools: Array<{ tool: string; pkg: string }>, log: (s: string) => void): Promise<string[]> {
  const missing: string[] = [];
  for (const t of tools) if (!(await which(t.tool))) missing.push(t.pkg);
  if (missing.length === 0) return [];
  log(`installing with apt (missing): ${missing.join(' ')}`);
  await must('apt-get update -qq', { timeoutMs: 180_000 });
  await must(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`, { timeoutMs: 300_000 });
  return missing;
}

/** Spawn a long-running process with captured output (for peers' `-f` foreground mounts). */
export function spawnCaptured(cmd: string, args: string[], env: NodeJS.ProcessEnv): {
  proc: ReturnType<typeof spawn>; output: () => string; exited: () => boolean;
} {
  let out = '';
  let gone = false;
  const [file, argv] = onClientCpus(cmd, args);
  const proc = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
  proc.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
  proc.on('exit', () => { gone = true; });
  proc.on('error', (e) => { out += `\n[spawn error: ${e.message}]`; gone = true; });
  return { proc, output: () => out, exited: () => gone };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** This process's (the servers') cost over an interval: CPU s, V8 GC s, minor page faults. */
export interface ServerCost {
  cpu: number;
  gc: number;
  faults: number;
}

let gcMs = 0;
let gcObserver: PerformanceObserver | undefined;

/**
 * Start measuring this process (s3rver, the gate, Synapse); call the result to get what it spent
 * since. GC time and page faults tell a slow round's cause apart: on this VM the server's CPU per
 * GiB swings by 1.5× between rounds of the same client (bench/README.md, Caveats).
 */
export function serverCost(): () => ServerCost {
  gcObserver ??= (() => {
    const o = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcMs += e.duration; });
    o.observe({ entryTypes: ['gc'] });
    return o;
  })();
  const u0 = process.resourceUsage();
  const g0 = gcMs;
  return () => {
    const u = process.resourceUsage();
    return {
      cpu: (u.userCPUTime + u.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1e6,
      gc: (gcMs - g0) / 1000,
      faults: u.minorPageFault - u0.minorPageFault,
    };
  };
}

/**
 * Per thread group of a process: seconds on a CPU (`run`) and seconds runnable but waiting for
 * one (`wait`, the run queue), from /proc/<pid>/task/<tid>/schedstat. Groups: `main` (the thread
 * whose id is the pid) and every other thread by its kernel name — libfuse's threads name
 * themselves `fuse-requests` (scripts/fix-fuse-native.mjs), the mount's worker threads carry the
 * process title, Node's own pool threads `node`. Session 32:
 * on two shared cores the mount's cold read is slower than the direct client's by what its
 * threads and s3rver's wait for a CPU, not by one saturated thread (bench/README.md, Caveats).
 */
export type ThreadTimes = Record<string, { run: number; wait: number }>;

export async function threadTimes(pid: number): Promise<ThreadTimes> {
  const out: ThreadTimes = {};
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  await Promise.all(tids.map(async (tid) => {
    try {
      const [stat, comm] = await Promise.all([
        readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'), readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8'),
      ]);
      const [run = 0, wait = 0] = stat.split(' ').map(Number);
      const group = tid === String(pid) ? 'main' : comm.trim();
      const t = (out[group] ??= { run: 0, wait: 0 });
      t.run += run / 1e9;
      t.wait += wait / 1e9;
    } catch { /* the thread ended between the listing and the read */ }
  }));
  return out;
}

/** What each group spent between two samples (groups under 10 ms in all left out), in seconds. */
export function threadTimesSince(before: ThreadTimes, after: ThreadTimes): ThreadTimes {
  const out: ThreadTimes = {};
  for (const [group, a] of Object.entries(after)) {
    const b = before[group] ?? { run: 0, wait: 0 };
    const run = a.run - b.run;
    const wait = a.wait - b.wait;
    if (run + wait >= 0.01) out[group] = { run: Math.round(run * 100) / 100, wait: Math.round(wait * 100) / 100 };
  }
  return out;
}
