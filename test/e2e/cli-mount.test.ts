/**
 * The mount command's contract (issue #3 §1): background start and clean unmount, exit after an
 * outside umount, stale-mount cleanup, and one clear line plus a non-zero exit for each user
 * error. Every mount made here is unmounted in teardown.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type Stack } from '../server/stack.js';
import { cli, closedPort, isMounted, mountForeground, ROOT, sh, tempDir, waitFor } from './harness.js';

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

describe('synapse-mount command line', () => {
  let stack: Stack;
  let projectId: string;
  let fileId: string;
  let stateHome: string;
  const cleanup: string[] = [];
  let env: NodeJS.ProcessEnv;

  const args = (entity: string, dir: string, ...extra: string[]): string[] =>
    [entity, dir, '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint, ...extra];

  async function servingPid(dir: string): Promise<number> {
    const mounts = path.join(stateHome, 'synapse-mount', 'mounts');
    // The newest live one: a mount moved away keeps its record, named by where it was mounted.
    let found: { pid: number; startedAt: string } | undefined;
    for (const f of (await readdir(mounts)).filter((n) => n.endsWith('.json'))) {
      const rec = JSON.parse(await readFile(path.join(mounts, f), 'utf8')) as { pid: number; mountpoint: string; startedAt: string };
      if (rec.mountpoint === dir && alive(rec.pid) && (!found || rec.startedAt > found.startedAt)) found = rec;
    }
    if (!found) throw new Error(`no mount record for ${dir}`);
    return found.pid;
  }

  before(async () => {
    stack = await startStack({ fixture: 'empty' });
    projectId = stack.seed.project('CLI Test');
    const folder = await stack.seed.folder(projectId, 'data', { storage: 'managed' });
    fileId = (await stack.seed.file(folder.id, 'hello.txt', Buffer.from('hello\n'))).id;
    stateHome = await tempDir('state-');
    env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken, XDG_STATE_HOME: stateHome };
  });

  after(async () => {
    for (const dir of cleanup) {
      if (await isMounted(dir)) await sh(`fusermount -uz '${dir}'`);
      await rm(dir, { recursive: true, force: true });
    }
    await stack?.close();
    await rm(stateHome, { recursive: true, force: true });
  });

  async function newDir(): Promise<string> {
    const d = await tempDir('mp-');
    cleanup.push(d);
    return d;
  }

  test('background mount returns when ready; unmount command ends it', async () => {
    const dir = await newDir();
    const r = await cli(args(projectId, dir), { env });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await isMounted(dir));
    const ls = await sh(`cat '${dir}/data/hello.txt'`);
    assert.equal(ls.stdout, 'hello\n');
    const pid = await servingPid(dir);
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    assert.ok(!cmdline.includes(stack.authToken), 'the token is not in the serving process argv');
    // Nor its environment, which /proc keeps for the process's life (the parent hands it over a
    // pipe): not even the SYNAPSE_AUTH_TOKEN the user's own environment gave the command.
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8');
    assert.ok(environ.includes('XDG_STATE_HOME='), 'the rest of the environment is passed on');
    assert.ok(!environ.includes(stack.authToken), 'the token is not in the serving process environment');
    const u = await cli(['unmount', dir], { env });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await isMounted(dir), false);
    await waitFor('serving process exit', () => !alive(pid), 10_000);
  });

  test('a background mount with the token in a file only (--auth-token-file, nothing in the environment) serves, and its process holds no token in argv or environment', async () => {
    const dir = await newDir();
    const home = await tempDir('home-');
    cleanup.push(home);
    const tokenFile = path.join(home, 'token');
    await writeFile(tokenFile, `${stack.authToken}\n`, { mode: 0o600 });
    const fileEnv: NodeJS.ProcessEnv = { ...env, HOME: home };
    delete fileEnv['SYNAPSE_AUTH_TOKEN'];
    const logFile = path.join(home, 'mount.log');
    // A cache under five blocks: the command warns, once, on its own stderr (QA: the serving
    // process said it again as the first, plain-text line of its log of JSON lines).
    const r = await cli(args(projectId, dir, '--auth-token-file', tokenFile, '--cache-size', '24M', '--log-file', logFile), { env: fileEnv });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: --cache-size 24M is too small/);
    assert.equal((await sh(`cat '${dir}/data/hello.txt'`)).stdout, 'hello\n', 'the child was handed the token the file holds');
    const pid = await servingPid(dir);
    for (const f of ['cmdline', 'environ']) {
      assert.ok(!(await readFile(`/proc/${pid}/${f}`, 'utf8')).includes(stack.authToken), `no token in /proc/${pid}/${f}`);
    }
    assert.equal((await cli(['unmount', dir], { env })).code, 0);
    await waitFor('serving process exit', () => !alive(pid), 10_000);
    const lines = (await readFile(logFile, 'utf8')).split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0);
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a log line that is not JSON: ${line}`);
  });

  test('--auth-token-file - takes the token from stdin (a secret manager\'s pipe): the mount serves, no token in its argv or environment', async () => {
    // QA: yargs refused a lone `-` ("Unknown argument: -").
    const dir = await newDir();
    const stdinEnv: NodeJS.ProcessEnv = { ...env };
    delete stdinEnv['SYNAPSE_AUTH_TOKEN'];
    const r = await cli(args(projectId, dir, '--auth-token-file', '-'), { env: stdinEnv, input: `${stack.authToken}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await sh(`cat '${dir}/data/hello.txt'`)).stdout, 'hello\n');
    const pid = await servingPid(dir);
    for (const f of ['cmdline', 'environ']) {
      assert.ok(!(await readFile(`/proc/${pid}/${f}`, 'utf8')).includes(stack.authToken), `no token in /proc/${pid}/${f}`);
    }
    assert.equal((await cli(['unmount', dir], { env })).code, 0);
    await waitFor('serving process exit', () => !alive(pid), 10_000);
    const empty = await cli(args(projectId, await newDir(), '--auth-token-file', '-'), { env: stdinEnv, input: '' });
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^synapse-mount: --auth-token-file - is empty\n$/);
  });

  test('an outside umount makes the serving process exit', async () => {
    const dir = await newDir();
    const r = await cli(args(projectId, dir), { env });
    assert.equal(r.code, 0, r.stderr);
    const pid = await servingPid(dir);
    const u = await sh(`umount '${dir}'`);
    assert.equal(u.code, 0, u.stderr);
    await waitFor('serving process exit after umount', () => !alive(pid), 10_000);
  });

  test('unmount refuses a mount in use, as umount does; --force cuts it off; a lazy umount serves a working directory until it is left', async () => {
    // QA: `synapse-mount unmount` exited 0 without a word while a shell had its working
    // directory (or a program a file) in the mount, which then answered ENOTCONN to all of them;
    // and after `umount -l` a shell's working directory alone (no open file) was cut off at once.
    const dir = await newDir();
    assert.equal((await cli(args(projectId, dir), { env })).code, 0);
    const pid = await servingPid(dir);
    // The working directory taken by the shell itself (node's spawn cwd would chdir in the child
    // before exec, inside this test process's address space: fine, but one place fewer to reason about).
    const shell = spawn('sh', ['-c', `cd '${dir}/data' && echo in && read go && ls && cat hello.txt`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    shell.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    shell.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((resolve) => shell.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the shell in the mount', () => out === 'in\n' || shell.exitCode !== null, 10_000);
      assert.equal(out, 'in\n', err);
      out = '';
      const busy = await cli(['unmount', dir], { env });
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /is in use .*fuser -vm .*--force/);
      assert.equal(busy.stderr.trim().split('\n').length, 1, 'one line');
      assert.ok(await isMounted(dir) && alive(pid), 'still mounted and served');

      // Detached lazily from outside: the shell inside still works, then the process exits.
      assert.equal((await sh(`umount -l '${dir}'`)).code, 0);
      await new Promise((r) => setTimeout(r, 1500)); // past the serving process's 1 s mount watch
      assert.ok(alive(pid), 'serving the working directory still in use');
      // Detached but serving: `unmount` says so, not "not mounted" (QA); --force would stop it.
      const detached = await cli(['unmount', dir], { env });
      assert.equal(detached.code, 1);
      assert.match(detached.stderr, /was unmounted lazily and still serves what was in use there \(pid \d+\).*unmount --force/);
      shell.stdin.end('go\n');
      assert.equal(await exited, 0, err);
      assert.equal(out, 'hello.txt\nhello\n');
      await waitFor('serving process exit once nothing is in use', () => !alive(pid), 10_000);
    } finally {
      shell.kill('SIGKILL');
    }

    // --force: the old behaviour, for when it must go now.
    assert.equal((await cli(args(projectId, dir), { env })).code, 0);
    const pid2 = await servingPid(dir);
    const holder = spawn('sh', ['-c', `cd '${dir}/data' && exec sleep 30`], { stdio: 'ignore' });
    await waitFor('the holder in the mount', async () => (await sh(`fuser -m '${dir}'`)).code === 0, 10_000);
    try {
      assert.equal((await cli(['unmount', dir], { env })).code, 1);
      const forced = await cli(['unmount', '--force', dir], { env });
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(await isMounted(dir), false);
      await waitFor('serving process exit', () => !alive(pid2), 10_000);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('an outside umount followed at once by another mount at the path: the serving process exits and leaves the new mount alone', async () => {
    // The new mount can take the old one's mount id and device (each the lowest free), which is
    // how the unmount watch knew its mount: the process served nothing and lingered. And once it
    // did notice, it unmounted by path — lazily detaching whatever was mounted there since.
    const dir = await newDir();
    const r = await cli(args(projectId, dir), { env });
    assert.equal(r.code, 0, r.stderr);
    const pid = await servingPid(dir);
    const u = await sh(`fusermount -u '${dir}' && mount -t tmpfs -o size=1m synapse-test-tmpfs '${dir}' && touch '${dir}/theirs'`);
    assert.equal(u.code, 0, u.stderr);
    try {
      await waitFor('the serving process exits', () => !alive(pid), 15_000);
      assert.equal((await sh(`findmnt -n -o FSTYPE --mountpoint '${dir}'`)).stdout.trim(), 'tmpfs', 'the new mount is still there');
      assert.equal((await sh(`test -e '${dir}/theirs'`)).code, 0);
    } finally {
      await sh(`umount '${dir}'`);
    }
  });

  test('a mountpoint given as a relative path with a trailing slash, or through a symlink, stays mounted; status and unmount take either', async () => {
    // QA: the unmount watch compared the path as typed with /proc/self/mountinfo's, so these
    // mounts took themselves for "unmounted from outside" a second after mounting.
    const dir = await realpath(await newDir()); // as mountinfo and the mount record name it
    const parent = path.dirname(dir);
    const viaLink = path.join(await newDir(), 'link');
    await symlink(dir, viaLink);
    for (const [given, cwd] of [[`${path.basename(dir)}/`, parent], [viaLink, ROOT]] as const) {
      const r = await cli(args(projectId, given), { env, cwd });
      assert.equal(r.code, 0, r.stderr);
      const pid = await servingPid(dir);
      // Past two periods of the unmount watch (1 s): a wait for something that must not happen.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.ok(alive(pid) && (await isMounted(dir)), `still mounted when given as ${given}`);
      assert.equal((await sh(`cat '${dir}/data/hello.txt'`)).stdout, 'hello\n');
      const st = await cli(['status', given, '--json'], { env, cwd });
      assert.equal(st.code, 0, st.stderr);
      assert.equal((JSON.parse(st.stdout) as { mountpoint: string }).mountpoint, dir);
      const u = await cli(['unmount', given], { env, cwd });
      assert.equal(u.code, 0, u.stderr);
      await waitFor('serving process exit', () => !alive(pid), 10_000);
      assert.equal(await isMounted(dir), false);
    }
  });

  test('QA: a folder above the mountpoint renamed right after mounting is no unmount; status and unmount find the mount at its new path', async () => {
    const top = await realpath(await newDir());
    const mountedAt = path.join(top, 'a', 'mnt');
    // A new name with a space (mountinfo escapes it) and shell syntax (review: fuse-native
    // unmounted through a shell, and the path now comes from mountinfo).
    const marker = `PWNED-${path.basename(top)}`; // where a shell would create it: its working directory
    const moved = `b $(touch ${marker})`;
    const dir = path.join(top, moved, 'mnt');
    cleanup.unshift(dir, mountedAt); // unmounted before `top` is removed: never an rm -rf through a mount
    await mkdir(mountedAt, { recursive: true });
    const r = await cli(args(projectId, mountedAt), { env });
    assert.equal(r.code, 0, r.stderr);
    const pid = await servingPid(mountedAt);
    assert.equal((await sh(`mv '${top}/a' '${top}/${moved}'`)).code, 0);
    // Past two periods of the unmount watch (1 s): a wait for something that must not happen.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.ok(alive(pid) && (await isMounted(dir)), 'still mounted, at the new path');
    assert.equal((await sh(`cat '${dir}/data/hello.txt'`)).stdout, 'hello\n');
    const st = await cli(['status', dir, '--json'], { env });
    assert.equal(st.code, 0, st.stderr);
    const report = JSON.parse(st.stdout) as { state: string; status: { mountpoint: string } };
    assert.equal(report.state, 'alive');
    assert.equal(report.status.mountpoint, dir, 'where it is mounted now (QA: the path it was mounted at)');
    const text = await cli(['status', dir], { env });
    assert.ok(text.stdout.startsWith(`${dir}: `), text.stdout);
    // An empty folder left at the old path is not the mount (QA: it answered as the moved one).
    await mkdir(mountedAt, { recursive: true });
    const old = await cli(['status', mountedAt, '--json'], { env });
    assert.equal(old.code, 1, old.stdout);
    const all = await cli(['status', '--json'], { env });
    assert.ok((JSON.parse(all.stdout) as { mounts: Array<{ mountpoint: string }> }).mounts.some((m) => m.mountpoint === dir), all.stdout);
    // A second mount at the old path keeps its own record and socket (they were named by the
    // path alone: the new mount's replaced the moved one's, whose status and unmount then failed).
    const second = await cli(args(projectId, mountedAt), { env });
    assert.equal(second.code, 0, second.stderr);
    const secondPid = await servingPid(mountedAt);
    assert.notEqual(secondPid, pid);
    const pidAt = async (p: string): Promise<number> => {
      const s = await cli(['status', p, '--json'], { env });
      assert.equal(s.code, 0, s.stderr);
      const j = JSON.parse(s.stdout) as { state: string; pid: number };
      assert.equal(j.state, 'alive', s.stdout);
      return j.pid;
    };
    assert.equal(await pidAt(dir), pid, 'the moved mount still answers at its new path');
    assert.equal(await pidAt(mountedAt), secondPid, 'the new mount answers at the old path');
    const u = await cli(['unmount', dir], { env });
    assert.equal(u.code, 0, u.stderr);
    await waitFor('serving process exit', () => !alive(pid), 10_000);
    assert.equal(await isMounted(dir), false, 'unmounted, not left dead at the new path');
    assert.ok(alive(secondPid) && (await isMounted(mountedAt)), 'the other mount is untouched');
    assert.equal((await cli(['unmount', mountedAt], { env })).code, 0);
    await waitFor('second serving process exit', () => !alive(secondPid), 10_000);
    for (const cwd of [ROOT, '/', top]) assert.equal((await sh(`test -e '${path.join(cwd, marker)}'`)).code, 1, `no shell ran the path (${cwd})`);
  });

  test('a stale mount left by a killed process is cleaned up before mounting', async () => {
    const m = await mountForeground(stack, projectId);
    m.proc.kill('SIGKILL');
    await waitFor('killed', () => m.proc.exitCode !== null || m.proc.signalCode !== null, 10_000);
    const stat = await sh(`ls '${m.dir}'`);
    assert.match(stat.stderr, /Transport endpoint is not connected/);
    cleanup.push(m.dir);
    const r = await cli(args(projectId, m.dir), { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await sh(`cat '${m.dir}/data/hello.txt'`)).stdout, 'hello\n');
    assert.equal((await cli(['unmount', m.dir], { env })).code, 0);
  });

  const userErrors: Array<[string, () => Promise<{ argv: string[]; env?: NodeJS.ProcessEnv }>, RegExp]> = [
    ['unknown entity', async () => ({ argv: args('syn999999', await newDir()) }), /syn999999: no such entity/],
    ['not a folder', async () => ({ argv: args(fileId, await newDir()) }), /is a FileEntity, not a folder or project/],
    ['bad token', async () => ({ argv: args(projectId, await newDir()), env: { ...env, SYNAPSE_AUTH_TOKEN: 'not-a-token' } }), /auth token.*401/],
    ['no permission', async () => ({ argv: args(projectId, await newDir()), env: { ...env, SYNAPSE_AUTH_TOKEN: stack.secondAuthToken } }), /permission/],
    ['mountpoint missing', async () => ({ argv: args(projectId, '/nonexistent/mnt') }), /does not exist/],
    ['mountpoint is a file', async () => {
      const d = await newDir();
      await writeFile(path.join(d, 'f'), 'x');
      return { argv: args(projectId, path.join(d, 'f')) };
    }, /not a directory/],
    ['mountpoint not empty', async () => {
      const d = await newDir();
      await mkdir(path.join(d, 'x'));
      return { argv: args(projectId, d) };
    }, /not empty/],
    ['not a Synapse ID', async () => ({ argv: args('banana', await newDir()) }), /not a Synapse ID/],
    // Node's recursive mkdir never returned here: the CLI hung, its process spinning.
    ['spool dir under /proc', async () => ({ argv: args(projectId, await newDir(), '--spool-dir', '/proc/synapse-mount-nope') }), /spool directory \/proc\/synapse-mount-nope is not writable/],
    ['cache dir under /proc', async () => ({ argv: args(projectId, await newDir(), '--cache-dir', '/proc/synapse-mount-nope') }), /--cache-dir: .*ENOENT/],
  ];
  for (const [name, make, pattern] of userErrors) {
    test(`user error: ${name} → one line, exit 1`, async () => {
      const { argv, env: e } = await make();
      const r = await cli(argv, { env: e ?? env });
      assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0]!, pattern);
      assert.ok(!r.stderr.includes('    at '), 'no stack trace');
      // A mountpoint refused before the background process starts leaves no log of it (QA: a
      // log file with a stack trace, for each typo).
      if (name.startsWith('mountpoint')) {
        const logs = await readdir(path.join(stateHome, 'synapse-mount')).catch(() => [] as string[]);
        const mountpoint = argv[1]!;
        const logName = `${path.resolve(mountpoint).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+/, '')}.log`;
        assert.ok(!logs.includes(logName), `no ${logName} in ${logs.join(', ')}`);
      }
    });
  }

  test('Synapse unreachable: says so at once, keeps trying for --retry-timeout, then one error line', async () => {
    // A QA pass found the CLI silent for a whole minute before its error on a wrong --endpoint.
    const closed = await closedPort();
    const argv = args(projectId, await newDir()).map((a) => (a === stack.endpoint ? `http://127.0.0.1:${closed}` : a));
    const r = await cli([...argv, '--retry-timeout', '4'], { env, timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, new RegExp(`cannot reach Synapse at http://127\\.0\\.0\\.1:${closed} yet \\(.*ECONNREFUSED.*\\); retrying for up to [1-4] s`));
    assert.match(lines[1]!, /ECONNREFUSED.*gave up after \d+ attempts/);
  });

  test('unmount of a folder that is not mounted, or of a path that does not exist, says which (exit 1)', async () => {
    const plain = await cli(['unmount', await newDir()], { env });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /^synapse-mount: .* is not mounted\n$/);
    const missing = await cli(['unmount', '/nonexistent/mnt'], { env });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'synapse-mount: /nonexistent/mnt does not exist\n');
  });

  test('unmount leaves a mount that is not ours alone (a tmpfs with a file in it)', async () => {
    const dir = await newDir();
    assert.equal((await sh(`mount -t tmpfs none '${dir}' && echo keep > '${dir}/keep'`)).code, 0);
    try {
      const r = await cli(['unmount', dir], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /is a tmpfs mount, not a synapse-mount one/);
      assert.equal((await sh(`cat '${dir}/keep'`)).stdout, 'keep\n', 'still mounted, file still there');
    } finally {
      await sh(`umount '${dir}'`);
    }
  });

  test('user error: already mounted', async () => {
    const m = await mountForeground(stack, projectId);
    try {
      const r = await cli(args(projectId, m.dir), { env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /already mounted/);
      // In the foreground too, one line: no JSON log line with a stack before it (QA).
      const f = await cli([...args(projectId, m.dir), '--foreground'], { env });
      assert.equal(f.code, 1);
      assert.match(f.stderr, /^synapse-mount: .*already mounted.*\n$/);
    } finally {
      await m.unmount();
    }
  });

  for (const [flag, value, pattern] of [
    ['--read-timeout', '-1', /--read-timeout: "-1" is not a positive number of seconds/],
    ['--part-size', '1K', /--part-size: 1K is outside 5M–5G/],
    ['--block-size', '3K', /--block-size: 3K is outside 4K–1G/],
    ['--cache-size', 'foo', /--cache-size: "foo" is not a size/],
    ['--cache-size', '0', /--cache-size: 0 is less than one block \(--block-size 8M\)/],
    ['--cache-dir-size', '0', /--cache-dir-size: 0 is less than one block/],
    ['--metadata-view', 'abc', /--metadata-view: "abc" is not a Synapse ID/],
    ['--metadata-ttl', 'abc', /--metadata-ttl: "abc" is not a number of seconds/],
    ['--file-mode', '999', /--file-mode\/--dir-mode take octal permission bits/],
    // QA (session 29): these mounted, with files owned by root, by nobody, or every read failing.
    ['--read-timeout', 'abc', /--read-timeout: the value given is not a positive number of seconds/],
    ['--uid', 'abc', /--uid: the value given is not a user or group id/],
    ['--uid', '-1', /--uid: "-1" is not a user or group id/],
    ['--gid', '1.5', /--gid: "1.5" is not a user or group id/],
    ['--dir-mode', '7777', /only permission bits \(up to 777\)/],
    ['--s3-endpoint', 'not a url', /--s3-endpoint: "not a url" is not an http\(s\) URL/],
    // QA (session 30): exit 1 after a TypeError; a password in it was echoed in every error line
    // while each request was retried for the whole --retry-timeout.
    ['--endpoint', 'notaurl', /--endpoint: "notaurl" is not an http\(s\) URL/],
    ['--endpoint', 'http://me:secret@127.0.0.1:1', /--endpoint: holds a user name or password/],
  ] as const) {
    test(`usage error: ${flag} ${value} → one line, exit 2, nothing mounted`, async () => {
      const dir = await newDir();
      const r = await cli([...args(projectId, dir), flag, value], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
      assert.ok(!r.stderr.includes('secret'), 'no password quoted');
      assert.equal(await isMounted(dir), false);
    });
  }

  test('usage error exits 2', async () => {
    const r = await cli(['--no-such-flag'], { env });
    assert.equal(r.code, 2);
  });

  test('no token anywhere → one clear line', async () => {
    const noTokenEnv: NodeJS.ProcessEnv = { ...env, HOME: await newDir() };
    delete noTokenEnv['SYNAPSE_AUTH_TOKEN'];
    const r = await cli(args(projectId, await newDir()), { env: noTokenEnv });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SYNAPSE_AUTH_TOKEN/);
  });

  test('a token with a control character → one clear line at once, not "unreachable" for the whole retry timeout', async () => {
    const bad = `${stack.authToken.slice(0, 8)}\u0001${stack.authToken.slice(8)}`;
    const started = Date.now();
    const r = await cli(args(projectId, await newDir()), { env: { ...env, SYNAPSE_AUTH_TOKEN: bad } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /auth token holds a space, a control or a non-ASCII character/);
    assert.ok(!r.stderr.includes(stack.authToken.slice(8)), 'the token is never quoted');
    assert.ok(Date.now() - started < 20_000, 'no retrying');
  });
});
