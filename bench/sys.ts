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
import { readFile } from 'node:fs/promises';

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
