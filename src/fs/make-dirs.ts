/**
 * `mkdir -p` that always ends. Node's `mkdir(…, { recursive: true })` never returns for a path
 * under /proc (a QA pass: `--spool-dir /proc/nope` spun at full CPU forever — the kernel answers
 * ENOENT for the child and EEXIST for the parent, and Node retries both). Here the missing
 * levels are found by stat and made one by one, so any refusal is an error. Synchronous: it runs
 * at start-up only (spool, caches, state and log directories), a few syscalls per level.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

const notADirectory = (p: string): Error => Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', path: p });

export function makeDirsSync(dir: string, mode = 0o700): void {
  const missing: string[] = [];
  for (let cur = path.resolve(dir); ; cur = path.dirname(cur)) {
    try {
      if (!statSync(cur).isDirectory()) throw notADirectory(cur);
      break;
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' || path.dirname(cur) === cur) throw err;
      missing.push(cur);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw err;
      // Made meanwhile by someone else: fine if it is a directory.
      if (!statSync(d).isDirectory()) throw notADirectory(d);
    }
  }
}

/** makeDirsSync for async callers (errors as a rejected promise). */
export async function makeDirs(dir: string, mode = 0o700): Promise<void> {
  makeDirsSync(dir, mode);
}
