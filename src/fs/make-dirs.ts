/**
 * `mkdir -p` that always ends. Node's `mkdir(…, { recursive: true })` never returns for a path
 * under /proc (a QA pass: `--spool-dir /proc/nope` spun at full CPU forever — the kernel answers
 * ENOENT for the child and EEXIST for the parent, and Node retries both). Here the missing
 * components are found by stat and made one by one, so any refusal is an error.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

function notADirectory(p: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', path: p });
}

export async function makeDirs(dir: string, mode = 0o700): Promise<void> {
  const missing: string[] = [];
  for (let cur = path.resolve(dir); ; cur = path.dirname(cur)) {
    try {
      if (!(await stat(cur)).isDirectory()) throw notADirectory(cur);
      break;
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' || path.dirname(cur) === cur) throw err;
      missing.push(cur);
    }
  }
  for (const d of missing.reverse()) {
    await mkdir(d, { mode }).catch((err: unknown) => { if (codeOf(err) !== 'EEXIST') throw err; });
  }
}

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
    }
  }
}
