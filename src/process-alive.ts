import { readFileSync } from 'node:fs';

/**
 * Is a process still there? (EPERM: it exists but belongs to someone else.) A zombie — dead, not
 * yet reaped by its parent — is not: right after a `kill -9` the mount process stays one for a
 * moment, and a mount started then took its publishing journal entries for a live process's
 * (QA: the killed mount's file was not shown until the next mount).
 */
export function processAlive(pid: number): boolean {
  return liveStat(pid) !== false;
}

/**
 * False when `pid` is gone or a zombie; else its /proc/PID/stat fields after the command's
 * closing parenthesis (state first), or undefined where /proc cannot say (kill(0) said it is there).
 */
function liveStat(pid: number): string[] | undefined | false {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // no /proc (or gone this instant)
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[0] === 'Z' || fields[0] === 'X' ? false : fields;
}

/** How far a process's start, as the kernel has it, may be from the one it recorded itself. */
const SAME_START_TOLERANCE_MS = 60_000;
/** /proc reports start times in USER_HZ ticks, 100 a second on every Linux architecture. */
const TICKS_PER_SECOND = 100;

let bootTimeMs: number | undefined;

/** When `pid` started (ms since the epoch), from /proc; undefined where /proc cannot say. */
export function processStartMs(pid: number): number | undefined {
  const fields = liveStat(pid);
  return fields ? startOf(fields) : undefined;
}

/** starttime (the 22nd stat field, the 20th after the command) as ms since the epoch. */
function startOf(fields: string[]): number | undefined {
  try {
    bootTimeMs ??= Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1]) * 1000;
  } catch {
    return undefined;
  }
  const ticks = Number(fields[19]);
  return Number.isFinite(ticks) && Number.isFinite(bootTimeMs) ? bootTimeMs + (ticks * 1000) / TICKS_PER_SECOND : undefined;
}

/**
 * Is the process that recorded itself as (`pid`, started at `startedMs`) still running? Its pid
 * alive is not enough: a container restarted on the same volume, or a long-lived host, gives the
 * pid to another process. Generous on the start (a clock step between the two readings must never
 * make a live writer look gone); where /proc cannot tell, the pid decides, as before.
 */
export function sameProcessAlive(pid: number, startedMs: number): boolean {
  const fields = liveStat(pid); // one read of /proc/PID/stat for both questions
  if (fields === false) return false;
  const start = fields ? startOf(fields) : undefined;
  return start === undefined || Math.abs(start - startedMs) <= SAME_START_TOLERANCE_MS;
}
