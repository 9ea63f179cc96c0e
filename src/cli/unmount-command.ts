/**
 * `synapse-mount unmount <dir>`: like umount, refuses while the mount is in use (a file open, a
 * shell's working directory there): it detaches the mount with a plain `fusermount -u`, which
 * the kernel refuses then (QA: it used to succeed silently and cut every user off with
 * ENOTCONN). Once detached, the serving process sees it, publishes or journals what remains and
 * exits; this waits for that. `--force` asks the serving process to stop at once (SIGTERM):
 * open files are cut off, files open for writing journaled for recover. Without a live serving
 * process (killed, or mounted by another tool) it falls back to `fusermount -u`, and for a dead
 * mount (ENOTCONN) to a lazy unmount.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { canonicalMountpoint, findFusermount, lazyUnmount, mountedType } from '../fs/preflight.js';
import { findMountRecord, processAlive, removeMountRecord } from './mount-registry.js';

const exec = promisify(execFile);
/** Uploads in flight may take a while to finish or journal; report progress meanwhile. */
const DRAIN_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 100;

/**
 * Wait (bounded) until the serving process has exited and our mount is gone from `dir` (a mount
 * stacked at the path, e.g. autofs, is not ours to wait for); 0 then, else 1 with a line.
 */
async function untilStopped(pid: number, dir: string): Promise<number> {
  const started = Date.now();
  let told = false;
  while (Date.now() < started + DRAIN_TIMEOUT_MS) {
    if ((await mountedType(dir)) !== OUR_TYPE && !processAlive(pid)) return 0;
    if (!told && Date.now() > started + 5000) {
      process.stderr.write(`synapse-mount: waiting for ${dir} to finish uploads (pid ${pid})…\n`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  process.stderr.write(`synapse-mount: ${dir} did not unmount within ${DRAIN_TIMEOUT_MS / 1000} s (pid ${pid}); see its log\n`);
  return 1;
}

/** The filesystem type our mounts have in /proc/self/mountinfo (fuse-native's subtype). */
const OUR_TYPE = 'fuse.synapse-mount';

export async function runUnmount(mountpoint: string, opts: { force?: boolean } = {}): Promise<number> {
  const dir = canonicalMountpoint(mountpoint);
  const rec = await findMountRecord(dir);
  const type = await mountedType(dir);
  // Only our own mounts: `synapse-mount unmount /some/tmpfs` must not take someone's data away.
  if (type && type !== OUR_TYPE) {
    process.stderr.write(`synapse-mount: ${dir} is a ${type} mount, not a synapse-mount one; left as it is (use umount for it)\n`);
    return 1;
  }
  if (!type) {
    if (rec && processAlive(rec.pid)) {
      // Detached lazily (umount -l) while in use: its serving process goes on until released
      // (QA: `status` listed it alive, and `unmount --force` said "not mounted").
      if (!opts.force) {
        process.stderr.write(`synapse-mount: ${dir} was unmounted lazily and still serves what was in use there (pid ${rec.pid}); `
          + 'it stops once they are released, or now with unmount --force\n');
        return 1;
      }
      process.kill(rec.pid, 'SIGTERM');
      return untilStopped(rec.pid, dir);
    }
    if (rec && !processAlive(rec.pid)) {
      // A killed process left its record (status shows it as dead): clear it.
      await removeMountRecord(rec.mountpoint, rec.pid);
      process.stderr.write(`synapse-mount: ${dir} is not mounted; removed the record left by its dead serving process (pid ${rec.pid})\n`);
      return 0;
    }
    const missing = await stat(dir).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
    process.stderr.write(`synapse-mount: ${dir} ${missing ? 'does not exist' : 'is not mounted'}\n`);
    return 1;
  }
  if (rec && processAlive(rec.pid)) {
    const fusermount = opts.force ? undefined : await findFusermount();
    let detached = false;
    if (fusermount) {
      try {
        // In English whatever the user's locale: its words are matched below.
        await exec(fusermount, ['-u', dir], { env: { ...process.env, LC_ALL: 'C' } });
        detached = true;
      } catch (err) {
        const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
        if (/busy/i.test(msg)) {
          process.stderr.write(`synapse-mount: ${dir} is in use (a file open there, or a working directory: \`fuser -vm ${dir}\` lists them); `
            + 'close them and try again, or unmount with --force (their files are cut off; files open for writing are journaled for recover)\n');
          return 1;
        }
        // Not the old silent cut-off for a failure we cannot read: say it, and what --force does.
        process.stderr.write(`synapse-mount: could not unmount ${dir}: ${msg.split('\n')[0]}; unmount --force stops its serving process regardless\n`);
        return 1;
      }
    }
    // Detached: the serving process sees it (within a second), drains and exits on its own — no
    // signal, whose unmount by path could meet a mount made there since. Else it is told to stop.
    if (!detached) process.kill(rec.pid, 'SIGTERM');
    return untilStopped(rec.pid, dir);
  }
  const fusermount = await findFusermount();
  try {
    if (fusermount) await exec(fusermount, ['-u', dir], { env: { ...process.env, LC_ALL: 'C' } });
    else await exec('umount', [dir]);
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    if (/not connected|Transport endpoint/i.test(msg)) {
      await lazyUnmount(dir);
    } else if (!rec && /not found in \/etc\/mtab|not permitted/i.test(msg)) {
      // fusermount's words for "not your mount" (QA: they were all a user saw).
      process.stderr.write(`synapse-mount: ${dir} is another user's mount: only they (or root) can unmount it\n`);
      return 1;
    } else {
      process.stderr.write(`synapse-mount: could not unmount ${dir}: ${msg.split('\n')[0]}\n`);
      return 1;
    }
  }
  if ((await mountedType(dir)) === OUR_TYPE) return 1;
  if (rec && !processAlive(rec.pid)) await removeMountRecord(rec.mountpoint, rec.pid).catch(() => undefined);
  return 0;
}
