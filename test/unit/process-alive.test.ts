/**
 * processAlive: a zombie (dead, not yet reaped) is not alive — right after `kill -9`, a mount
 * process is one until its parent reaps it, and a mount started then must see its journal
 * entries as a dead process's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { processAlive, processStartMs, sameProcessAlive } from '../../src/process-alive.js';
import { heldOpenBy, type JournalEntry } from '../../src/fs/spool.js';

test('a live process is alive; a zombie child of another process and a gone pid are not', async () => {
  assert.equal(processAlive(process.pid), true);
  // sh starts a short sleep in the background and becomes a long one, which never reaps it: a
  // zombie once it ends (not at once: a shell that reaps on SIGCHLD must not get there first).
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = await new Promise<number>((resolve, reject) => {
      parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      parent.once('error', reject);
    });
    const deadline = Date.now() + 10_000;
    let state = '';
    while (Date.now() < deadline) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(state, 'Z', 'the child became a zombie');
    assert.equal(processAlive(pid), false);
  } finally {
    parent.kill('SIGKILL');
  }
  assert.equal(processAlive(2 ** 22 + 1), false, 'above the largest pid Linux hands out');
});

test('a live pid is the recorded process only if it started when that one did (pid reuse: a restarted container, a wrapped pid)', async () => {
  const ownStart = Date.now() - process.uptime() * 1000;
  assert.ok(Math.abs(processStartMs(process.pid)! - ownStart) < 5_000, 'the kernel\'s start time, as this process has its own');
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const pid = child.pid!;
    const startedAt = Date.now();
    assert.equal(sameProcessAlive(pid, startedAt), true);
    assert.equal(sameProcessAlive(pid, startedAt - 3_600_000), false, 'another process now has the pid');
    const entry = (processStart: number): JournalEntry => ({
      id: 'e1', spoolFile: '/x', parentId: 'syn1', name: 'a.txt', size: 1, md5: 'x', createdAt: new Date().toISOString(),
      error: 'refused', heldOpen: { pid, processStart },
    });
    assert.deepEqual(heldOpenBy(entry(startedAt)), { pid, processStart: startedAt }, 'held open by a live writer');
    assert.equal(heldOpenBy(entry(startedAt - 3_600_000)), undefined, 'the writer that held it is gone: recover may take it');
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(sameProcessAlive(2 ** 22 + 1, Date.now()), false);
});
