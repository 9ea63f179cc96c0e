import { readFileSync } from 'node:fs';

/**
 * Is a process still there? (EPERM: it exists but belongs to someone else.) A zombie — dead, not
 * yet reaped by its parent — is not: right after a `kill -9` the mount process stays one for a
 * moment, and a mount started then took its publishing journal entries for a live process's
 * (QA: the killed mount's file was not shown until the next mount).
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** /proc/PID/stat's state (the field after the command's closing parenthesis) is Z or X. */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // no /proc (or gone this instant): kill(0) said it is there
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}
