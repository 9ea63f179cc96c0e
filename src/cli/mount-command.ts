/**
 * `synapse-mount <entity> <mountpoint>`: like mount-s3 and gcsfuse, returns once the mount is
 * ready and serves from a detached background process; `--foreground` stays attached.
 *
 * Background mode (Node cannot fork): the command re-executes itself as a detached child and
 * hands it the token (and endpoint) through a pipe on its stdin (`readHandedAuth`) — never argv,
 * which /proc shows to every user, nor its environment, which /proc keeps for the process's life
 * and every child it starts would inherit (the user's own SYNAPSE_AUTH_TOKEN is left out of it
 * too) — and waits on an IPC channel until the child reports that the mount answered its first op, or
 * reports the error, which the parent prints as one line before exiting 1. The child's stdout
 * and stderr go to the log file, so libfuse's own messages are kept there.
 *
 * The serving process unmounts on SIGINT/SIGTERM, and exits when someone else unmounts it
 * (fuse-native has no destroy callback: the adapter watches /proc/self/mountinfo).
 */
import { spawn } from 'node:child_process';
import { TOKEN_ENV } from '../synapse/auth.js';
import { openSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { defaultLogFile } from '../config.js';
import { createLogger, registerSecret, scrubSecrets, type LogLevel } from '../log.js';
import { mount, type MountConfig } from '../fs/mount.js';
import { MountError, preflight } from '../fs/preflight.js';
import { writeMountRecord, removeMountRecord, controlSocketPath, type MountRecord } from './mount-registry.js';
import { startControlServer, type ControlServer } from './control.js';
import { collectStatus } from '../fs/mount-status.js';
import { makeDirs } from '../fs/make-dirs.js';

/** Env var marking the re-executed serving child. */
export const CHILD_ENV = 'SYNAPSE_MOUNT_SERVING_CHILD';
const READY_TIMEOUT_MS = 120_000;
/** The serving child waits this long for the parent's token on its stdin. */
const HANDED_AUTH_TIMEOUT_MS = 30_000;

/** What the parent hands the serving child on its stdin: one JSON document, then end of file. */
export interface HandedAuth {
  token: string;
  endpoint: string;
}

/**
 * Serving child only: the token and endpoint its parent resolved (startBackground), read whole
 * from stdin. The parent closes the pipe right after writing, so this never waits for a person.
 */
export async function readHandedAuth(input: NodeJS.ReadableStream = process.stdin): Promise<HandedAuth> {
  const chunks: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the mount process was not handed its auth token by the command that started it')), HANDED_AUTH_TIMEOUT_MS);
  });
  try {
    await Promise.race([timeout, (async () => { for await (const c of input) chunks.push(Buffer.from(c as Buffer)); })()]);
  } finally {
    clearTimeout(timer);
  }
  let handed: Partial<HandedAuth> | undefined;
  try {
    handed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<HandedAuth>;
  } catch {
    handed = undefined;
  }
  // Never quote what came: it is the token.
  if (typeof handed?.token !== 'string' || typeof handed.endpoint !== 'string') {
    throw new Error('the mount process was handed no auth token by the command that started it');
  }
  return { token: handed.token, endpoint: handed.endpoint };
}

interface ChildMessage {
  ready?: boolean;
  error?: string;
  /** Said while starting (Synapse not reachable yet); the parent prints it and keeps waiting. */
  waiting?: string;
}

export interface MountCommandOptions {
  config: MountConfig;
  foreground: boolean;
  logLevel: LogLevel;
  logFile: string | undefined;
  /** argv to re-execute (without node and script). */
  argv: string[];
}

/** argv minus any --log-file (the child is given the resolved one; twice would make yargs an array). */
function withoutLogFile(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--log-file') i++;
    else if (!argv[i]!.startsWith('--log-file=')) out.push(argv[i]!);
  }
  return out;
}

/** Parent side of background mode. Resolves with the exit code. */
async function startBackground(opts: MountCommandOptions): Promise<number> {
  // The mountpoint's checks here first: a missing or busy mountpoint is one line, with no log
  // file of a process that never served (QA: each left a log holding a stack trace).
  await preflight(opts.config.mountpoint);
  const logFile = path.resolve(opts.logFile ?? defaultLogFile(opts.config.mountpoint));
  await makeDirs(path.dirname(logFile));
  const logFd = openSync(logFile, 'a', 0o600);
  const script = process.argv[1];
  if (!script) throw new Error('cannot find the synapse-mount script to run in the background');
  const env: NodeJS.ProcessEnv = { ...process.env, [CHILD_ENV]: '1' };
  delete env[TOKEN_ENV];
  const child = spawn(process.execPath, [...process.execArgv, script, ...withoutLogFile(opts.argv), '--foreground', '--log-file', logFile], {
    detached: true,
    stdio: ['pipe', logFd, logFd, 'ipc'],
    env,
  });
  const handed: HandedAuth = { token: opts.config.authToken, endpoint: opts.config.endpoint };
  // A child that died at once closes the pipe: its exit is reported below, not an EPIPE.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(JSON.stringify(handed));
  return new Promise<number>((resolve) => {
    let settled = false;
    const finish = (code: number, message?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (message) process.stderr.write(`synapse-mount: ${message}\n`);
      if (child.connected) child.disconnect();
      child.unref();
      resolve(code);
    };
    const timer = setTimeout(() => finish(1, `the mount did not become ready within ${READY_TIMEOUT_MS / 1000} s; see ${logFile}`), READY_TIMEOUT_MS);
    child.on('message', (msg: ChildMessage) => {
      if (msg.ready) finish(0);
      else if (msg.error) finish(1, msg.error);
      else if (msg.waiting && !settled) process.stderr.write(`synapse-mount: ${msg.waiting}\n`);
    });
    child.on('exit', (code) => finish(1, `the mount process exited (${code ?? 'signal'}) before it was ready; see ${logFile}`));
    child.on('error', (err) => finish(1, `could not start the mount process: ${err.message}`));
  });
}

/** Serving side: mount, report readiness, serve until unmounted or signalled. */
async function serve(opts: MountCommandOptions, log: Logger): Promise<number> {
  const report = (msg: ChildMessage): void => {
    if (process.send && process.connected) process.send(msg, () => { if (msg.ready || msg.error) process.disconnect(); });
  };
  let mounted;
  try {
    mounted = await mount(opts.config, log, (waiting) => {
      const message = scrubSecrets(waiting);
      // In the foreground the log is stderr too: the line once, not also as JSON (QA).
      if (process.send) {
        log.warn(message);
        report({ waiting: message });
      } else process.stderr.write(`synapse-mount: ${message}\n`);
    });
    // Ready: fuse-native resolves mount() from the kernel's FUSE INIT. No stat of the mountpoint
    // to prove it — neither from this process (a thread blocked in a FUSE request on its own
    // mount keeps /dev/fuse open, so a SIGKILL then left an unkillable zombie and a hung mount)
    // nor from a child (libfuse opens /dev/fuse without O_CLOEXEC: the child inherits it and
    // hangs the mount the same way). Both were seen in cli-mount.test's kill-after-mount test.
  } catch (err) {
    const message = scrubSecrets((err as Error).message);
    // A user's error (a busy mountpoint, an unknown entity) is one line; a stack only for a bug.
    // In the foreground that line is on stderr already (QA: a JSON line with a stack came first).
    if (!(err instanceof MountError)) log.error({ err }, 'mount failed');
    else if (process.env[CHILD_ENV]) log.error({ reason: message }, 'mount failed');
    if (process.send) report({ error: message });
    else process.stderr.write(`synapse-mount: ${message}\n`);
    if (mounted) await mounted.unmount().catch(() => undefined);
    return 1;
  }
  // `synapse-mount status DIR` asks this process over a Unix socket next to the mount record.
  const startedAt = new Date();
  const socket = controlSocketPath(opts.config.mountpoint, process.pid);
  const control: ControlServer | undefined = await startControlServer(socket, () => collectStatus({
    fs: mounted.fs, client: mounted.client, userName: mounted.userName, config: opts.config, startedAt,
    pageCache: mounted.adapter.pageCache,
    ...(opts.logFile && process.env[CHILD_ENV] ? { logFile: opts.logFile } : {}),
  }), log).catch((err: unknown) => {
    log.warn({ err }, 'no control socket: `synapse-mount status` cannot ask this mount');
    return undefined;
  });
  const record: MountRecord = {
    pid: process.pid, mountpoint: path.resolve(opts.config.mountpoint), entityId: opts.config.entityId,
    startedAt: new Date().toISOString(), endpoint: opts.config.endpoint, ...(opts.logFile ? { logFile: opts.logFile } : {}),
    ...(mounted.adapter.mountId ? { mountId: mounted.adapter.mountId } : {}),
    socket,
  };
  await writeMountRecord(record).catch((err: unknown) => log.warn({ err }, 'could not write the mount record'));
  report({ ready: true });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const hurry = { now: false };
    const stop = async (why: string): Promise<void> => {
      // A signal while a lazy unmount waits for open files: stop now.
      if (stopping) {
        if (why !== LAZY) hurry.now = true;
        return;
      }
      stopping = true;
      // Stopping: once the mount is gone its id and device are the next mount's — the record
      // must not lead `status`/`unmount` there meanwhile (review).
      if (record.mountId) {
        const { mountId: _gone, ...stoppingRecord } = record;
        await writeMountRecord(stoppingRecord).catch(() => undefined);
      }
      if (why === LAZY) await untilClosed(mounted.fs, () => mounted.adapter.sessionAlive(), log, hurry);
      log.info({ why }, 'unmounting');
      const { published, journaled, lost, incomplete, scratch, emptyLocal } = await mounted.fs.drain();
      if (emptyLocal.length > 0) {
        log.warn({ count: emptyLocal.length, paths: emptyLocal.slice(0, 20) }, 'empty files kept in this mount only (their folder\'s storage cannot hold a 0-byte file) are gone with it; give them content, or keep them in an STS or external folder, to publish them');
      }
      if (scratch.length > 0) {
        log.warn({ count: scratch.length, paths: scratch.slice(0, 20) }, 'scratch-named files (file~, #file#, .file.swp…) are kept in the mount only and are gone with it; give them a real name to publish them');
      }
      for (const p of published) log.warn({ path: p }, 'file closed just before unmount: published');
      for (const p of journaled) log.error({ path: p }, 'file closed just before unmount could not be published: journaled for `synapse-mount recover`');
      for (const p of lost) log.error({ path: p }, 'file still open at unmount was not published: its upload had failed (its writer got EIO)');
      for (const p of incomplete) {
        log.error({ path: p }, 'file still open for writing at unmount: not published (it may be incomplete); journaled — check it, then `synapse-mount recover --force`');
      }
      if (published.length + journaled.length + lost.length + incomplete.length > 0 && !process.env[CHILD_ENV]) {
        process.stderr.write(`synapse-mount: at unmount ${published.length} file(s) published, ${journaled.length} journaled for recover`
          + `${incomplete.length ? `, ${incomplete.length} still open for writing journaled as incomplete` : ''}`
          + `${lost.length ? `, ${lost.length} not published (upload failed)` : ''}\n`);
      }
      await mounted.unmount().catch((err: unknown) => log.error({ err }, 'unmount failed'));
      await removeMountRecord(opts.config.mountpoint, process.pid).catch(() => undefined);
      await control?.close().catch(() => undefined);
      log.info('unmounted; exiting');
      resolve(0);
    };
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGHUP', () => void stop('SIGHUP'));
    mounted.adapter.watchForUnmount(() => void stop(LAZY));
  });
}

/**
 * Why `stop` runs when the mountpoint left the mount table behind our back: `fusermount -uz`
 * (lazy) detaches it while programs still hold files open or have their working directory in
 * it, and the kernel goes on sending their requests — so they are served until the kernel
 * releases the connection (the last of them gone), then the mount stops (QA: writers died
 * mid-file and their prefixes were published). A plain unmount happens only once nothing is in use.
 */
const LAZY = 'unmounted (umount, fusermount or synapse-mount unmount)';

async function untilClosed(fs: { openHandleCount: number }, sessionAlive: () => Promise<boolean>, log: Logger, hurry: { now: boolean }): Promise<void> {
  // In use means the kernel still has the connection, not only that files are open: a shell's
  // working directory holds a lazily unmounted tree too (QA: its `ls` got ENOTCONN at once).
  // A plain unmount ends the connection at once; libfuse's thread needs a moment to see it.
  for (const until = Date.now() + 1000; Date.now() < until && !hurry.now;) {
    if (!(await sessionAlive())) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (hurry.now || !(await sessionAlive())) return;
  log.warn({ open: fs.openHandleCount }, 'unmounted lazily: serving what is still in use (open files, working directories) until it is released (a signal stops at once)');
  while (!hurry.now && (await sessionAlive())) await new Promise((r) => setTimeout(r, 250));
}

export async function runMount(opts: MountCommandOptions): Promise<number> {
  registerSecret(opts.config.authToken);
  process.title = `synapse-mount ${opts.config.entityId} ${opts.config.mountpoint}`;
  if (!opts.foreground && !process.env[CHILD_ENV]) return startBackground(opts);
  const log = createLogger(opts.logLevel, process.env[CHILD_ENV] ? opts.logFile : undefined);
  return serve(opts, log);
}
