/**
 * Security (issue 8), through real mounts:
 *  - the auth token, STS secret keys and session tokens, and presigned-URL signatures never
 *    appear in a trace-level log file of a mount that read and wrote on STS and presigned
 *    (Synapse-managed) storage, failures included; nor in `status` output, nor in the serving
 *    process's cmdline/title;
 *  - nor in a failing mount's stderr, even when Synapse's answer quotes the token;
 *  - a token in a group/other-readable ~/.synapseConfig gets one warning line from mount;
 *  - the mount is private to the mounting user unless --allow-other;
 *  - entity names that are not file names (".", "..", "/" or NUL inside) are hidden with a log
 *    line, never a path escape.
 * Every mount made here is unmounted in teardown.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type Stack } from '../server/stack.js';
import { cli, isMounted, mountForeground, NODE_ARGS, patternBytes, sh, tempDir, type Mounted } from './harness.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

describe('security', () => {
  let stack: Stack;
  let projectId: string;
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  const dirs: string[] = [];
  const mounts: Mounted[] = [];
  const stsBytes = patternBytes(6 * MiB + 17, 11);
  const managedBytes = patternBytes(6 * MiB + 5, 12);

  const mountArgs = (dir: string, ...extra: string[]): string[] =>
    [projectId, dir, '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint, ...extra];

  async function newDir(): Promise<string> {
    const d = await tempDir('sec-mnt-');
    dirs.push(d);
    return d;
  }

  /** Each secret that must not appear, with a name for the failure message. */
  function secrets(): Array<[string, string]> {
    const out: Array<[string, string]> = [['auth token', stack.authToken]];
    for (const c of stack.dev.stsCredentials()) {
      out.push([`STS secret key of ${c.accessKeyId}`, c.secretAccessKey], [`STS session token of ${c.accessKeyId}`, c.sessionToken]);
    }
    return out;
  }

  function assertNoSecrets(text: string, where: string): void {
    for (const [what, value] of secrets()) assert.ok(!text.includes(value), `${what} appears in ${where}`);
    assert.doesNotMatch(text, /X-Amz-Signature=(?!\[redacted\])/i, `a presigned-URL signature appears in ${where}`);
    assert.doesNotMatch(text, /X-Amz-Security-Token=(?!\[redacted\])/i, `a presigned-URL security token appears in ${where}`);
  }

  before(async () => {
    stack = await startStack({ fixture: 'empty' });
    projectId = stack.seed.project('Security Test');
    const sts = await stack.seed.folder(projectId, 'sts', { storage: 'sts' });
    const managed = await stack.seed.folder(projectId, 'managed', { storage: 'managed' });
    await stack.seed.file(sts.id, 'in.bin', stsBytes);
    await stack.seed.file(managed.id, 'in.bin', managedBytes);
    await stack.seed.file(sts.id, 'refused.bin', Buffer.from('s3 will refuse this\n'));
    await stack.seed.file(managed.id, 'refused.bin', Buffer.from('s3 will refuse this\n'));
    // Names a file system cannot show: "." and ".." pass Synapse's own rules; "/" and NUL are
    // injected behind its back (test-only), as a hostile or buggy server could send them.
    const names = await stack.seed.folder(projectId, 'names', { storage: 'managed' });
    await stack.seed.file(names.id, 'ok.txt', Buffer.from('fine\n'));
    await stack.seed.file(names.id, '.', Buffer.from('dot\n'));
    const dotdot = await stack.seed.folder(names.id, '..', { storage: 'managed' });
    await stack.seed.file(dotdot.id, 'escaped.txt', Buffer.from('must not be reachable\n'));
    const slash = await stack.seed.file(names.id, 'placeholder-slash', Buffer.from('slash\n'));
    stack.seed.forceName(slash.id, '../../escape');
    const nul = await stack.seed.file(names.id, 'placeholder-nul', Buffer.from('nul\n'));
    stack.seed.forceName(nul.id, 'a\u0000b');
    tmp = await tempDir('sec-');
    env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken, XDG_STATE_HOME: path.join(tmp, 'state') };
  });

  after(async () => {
    for (const m of mounts) await m.unmount().catch(() => undefined);
    for (const d of dirs) {
      if (await isMounted(d)) await cli(['unmount', d], { env, timeoutMs: 30_000 });
      if (await isMounted(d)) await sh(`fusermount -uz '${d}'`);
      await rm(d, { recursive: true, force: true });
    }
    await stack?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('no token, STS secret or presigned signature in a trace log, status output or the process cmdline', async () => {
    const dir = await newDir();
    const log = path.join(tmp, 'trace.log');
    const r = await cli(mountArgs(dir, '--log-level', 'trace', '--log-file', log, '--part-size', '5M',
      '--spool-dir', path.join(tmp, 'spool'), '--read-timeout', '10'), { env });
    assert.equal(r.code, 0, r.stderr);
    assertNoSecrets(r.stdout + r.stderr, 'the mount command output');

    // Reads: STS storage through the S3 SDK, Synapse storage through presigned GETs.
    const sums = await sh(`md5sum < '${dir}/sts/in.bin'; md5sum < '${dir}/managed/in.bin'`);
    assert.equal(sums.code, 0, sums.stderr);
    assert.deepEqual(sums.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0]), [md5(stsBytes), md5(managedBytes)]);
    // Writes: STS streaming multipart, and Synapse's multipart API with presigned part PUTs.
    const src = path.join(tmp, 'src.bin');
    await writeFile(src, patternBytes(11 * MiB + 3, 13));
    const w = await sh(`cp '${src}' '${dir}/sts/out.bin' && cp '${src}' '${dir}/managed/out.bin' && cmp '${src}' '${dir}/sts/out.bin' && cmp '${src}' '${dir}/managed/out.bin'`);
    assert.equal(w.code, 0, w.stderr);
    // Failures get logged with their errors: S3 refusing GETs on both kinds of storage.
    stack.dev.addFault({ target: 's3', pathPattern: '/refused.bin', method: 'GET', status: 403, count: 100 });
    try {
      const refused = await sh(`cat '${dir}/sts/refused.bin'; cat '${dir}/managed/refused.bin'`);
      assert.match(refused.stderr, /Input\/output error|Permission denied/);
    } finally {
      stack.dev.clearFaults();
    }

    assert.ok(stack.dev.stsCredentials().length >= 2, 'the mount used STS credentials (read_only and read_write)');
    const status = await cli(['status', dir, '--json'], { env });
    assert.equal(status.code, 0, status.stderr);
    assertNoSecrets(status.stdout, 'status --json');
    const pid = (JSON.parse(status.stdout) as { pid: number }).pid;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
    const ps = await sh(`ps -o args= -p ${pid}; cat /proc/${pid}/comm`);
    assertNoSecrets(cmdline + ps.stdout, 'the serving process cmdline/title');
    assert.match(ps.stdout, /synapse-mount/);
    // The token rides in the serving process's environment: readable by its owner only.
    assert.equal((await stat(`/proc/${pid}/environ`)).mode & 0o077, 0);

    const u = await cli(['unmount', dir], { env, timeoutMs: 30_000 });
    assert.equal(u.code, 0, u.stderr);
    const text = await readFile(log, 'utf8');
    // The log really is a verbose log of all of the above (nothing logs below debug today).
    assert.match(text, /"level":20,/, 'debug lines');
    assert.match(text, /\/fileHandle\/batch/, 'presigned download URLs were asked for');
    assert.match(text, /presigned\/url\/batch/, 'presigned part upload URLs were asked for');
    assert.match(text, /\/sts\?permission=read_write/, 'STS write credentials were asked for');
    assert.match(text, /"errno":"(EIO|EACCES)"/, 'the refused reads were logged with their errors');
    assertNoSecrets(text, `the trace log ${log}`);
  });

  test('a failing mount prints no secret, even when Synapse quotes the token back', async () => {
    const bad = `bad-${randomBytes(24).toString('base64url')}`;
    const r1 = await cli(mountArgs(await newDir()), { env: { ...env, SYNAPSE_AUTH_TOKEN: bad } });
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /auth token.*401/);
    assert.ok(!r1.stderr.includes(bad), 'the refused token is not printed');

    // Synapse answers the first call with a body that quotes the token (not JSON).
    stack.dev.addFault({ target: 'synapse', pathPattern: '/userProfile', body: `${stack.authToken} is not JSON`, count: 1 });
    const log = path.join(tmp, 'failing.log');
    try {
      const r2 = await cli(mountArgs(await newDir(), '--log-level', 'trace', '--log-file', log), { env });
      assert.equal(r2.code, 1);
      assert.equal(r2.stderr.trim().split('\n').length, 1, r2.stderr);
      assert.match(r2.stderr, /malformed or truncated JSON/);
      assertNoSecrets(r2.stderr, 'the failing mount\'s stderr');
    } finally {
      stack.dev.clearFaults();
    }
    assertNoSecrets(await readFile(log, 'utf8'), 'the failing mount\'s log');
  });

  test('a token in a group/other-readable ~/.synapseConfig: mount warns in one line', async () => {
    const home = path.join(tmp, 'home');
    await sh(`mkdir -p '${home}'`);
    const config = path.join(home, '.synapseConfig');
    await writeFile(config, `[authentication]\nauthtoken = ${stack.authToken}\n`);
    const homeEnv: NodeJS.ProcessEnv = { ...env, HOME: home };
    delete homeEnv['SYNAPSE_AUTH_TOKEN'];

    await chmod(config, 0o644);
    const dir = await newDir();
    const r = await cli(mountArgs(dir), { env: homeEnv });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^synapse-mount: warning: .*\.synapseConfig holds a Synapse token but has mode 644 .*chmod 600/);
    assertNoSecrets(r.stderr, 'the warning');
    assert.equal((await cli(['unmount', dir], { env: homeEnv })).code, 0);

    await chmod(config, 0o600);
    const r2 = await cli(mountArgs(dir), { env: homeEnv });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.stderr, '', 'no warning for mode 600');
    assert.equal((await cli(['unmount', dir], { env: homeEnv })).code, 0);
  });

  test('the mount is private to the mounting user unless --allow-other', async () => {
    const mountOptions = async (dir: string): Promise<string[]> => {
      const line = (await readFile('/proc/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === dir);
      assert.ok(line, `${dir} in /proc/mounts`);
      return line.split(' ')[3]!.split(',');
    };
    const asNobody = (cmd: string) => sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${cmd}`);

    const priv = await mountForeground(stack, projectId);
    mounts.push(priv);
    assert.ok(!(await mountOptions(priv.dir)).includes('allow_other'), 'no allow_other by default');
    const denied = await asNobody(`ls '${priv.dir}/names'`);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Permission denied/);
    assert.equal((await sh(`ls '${priv.dir}/names'`)).code, 0, 'the mounting user can');

    const shared = await mountForeground(stack, projectId, ['--allow-other']);
    mounts.push(shared);
    assert.ok((await mountOptions(shared.dir)).includes('allow_other'), '--allow-other sets allow_other');
    const allowed = await asNobody(`cat '${shared.dir}/names/ok.txt'`);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.stdout, 'fine\n');
  });

  test('on a shared mount another user\'s rsync -a, cp -p and tar x work: what they create is theirs', async () => {
    // QA: every file showed as the mount owner's, so the kernel (default_permissions) refused
    // the other user's chmod and utimes on the files they had just made: rsync dropped them
    // (mkstemp … Operation not permitted, exit 23), cp -p and tar failed.
    const asNobody = (cmd: string) => sh(`setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "${cmd}"`);
    const src = await tempDir('others-src');
    await chmod(src, 0o755);
    await writeFile(path.join(src, 'f1.txt'), 'one\n');
    await writeFile(path.join(src, 'f2.txt'), 'two\n');
    assert.equal((await sh(`chmod 644 '${src}'/*.txt && touch -d '2020-01-02 03:04:05' '${src}'/*.txt`)).code, 0);
    const shared = await mountForeground(stack, projectId, ['--allow-other', '--file-mode', '666', '--dir-mode', '777']);
    mounts.push(shared);
    const d = `${shared.dir}/others`;
    assert.equal((await sh(`mkdir '${d}'`)).code, 0);
    const rsync = await asNobody(`rsync -a '${src}/' '${d}/rs/'`);
    assert.equal(rsync.code, 0, rsync.stderr);
    const cpp = await asNobody(`cp -p '${src}/f1.txt' '${d}/cpp.txt'`);
    assert.equal(cpp.code, 0, cpp.stderr);
    const tar = await asNobody(`tar -C '${src}' -cf - . | tar -C '${d}' -xf - --one-top-level=tx`);
    assert.equal(tar.code, 0, tar.stderr);
    const mv = await asNobody(`mv '${d}/cpp.txt' '${d}/cpp2.txt'`);
    assert.equal(mv.code, 0, mv.stderr);
    const owned = await sh(`cd '${d}' && stat -c '%n %u %g %Y' rs rs/f1.txt rs/f2.txt cpp2.txt tx tx/f2.txt`);
    assert.equal(owned.code, 0, owned.stderr);
    const expected = new Date('2020-01-02T03:04:05').getTime() / 1000;
    for (const line of owned.stdout.trim().split('\n')) {
      const [name, uid, gid, mtime] = line.split(' ');
      assert.equal(`${uid}:${gid}`, `65534:${process.getgid!()}`, `${name} is the user's who made it (the group stays the mount's)`);
      if (name!.endsWith('.txt')) assert.equal(Number(mtime), expected, `${name} keeps its mtime`);
    }
    assert.equal((await sh(`cat '${d}/rs/f2.txt' '${d}/cpp2.txt' '${d}/tx/f1.txt'`)).stdout, 'two\none\none\n');
    // What the mount owner's files are stays theirs: the other user may not chmod those.
    const theirs = await asNobody(`chmod 600 '${shared.dir}/names/ok.txt'`);
    assert.notEqual(theirs.code, 0);
    assert.match(theirs.stderr, /Operation not permitted/);
    assert.equal((await sh(`stat -c %u '${shared.dir}/names/ok.txt'`)).stdout.trim(), String(process.getuid!()));
    // The other user asking about, or unmounting, the mount: said plainly (QA: "not by
    // synapse-mount", and fusermount's "entry … not found in /etc/mtab").
    const cliAsNobody = (args: string) => asNobody(`HOME=/nonexistent '${process.execPath}' ${NODE_ARGS.map((a) => `'${a}'`).join(' ')} ${args}`);
    const status = await cliAsNobody(`status '${shared.dir}'`);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /a synapse-mount mount with no record of yours: another user's/);
    const unmount = await cliAsNobody(`unmount '${shared.dir}'`);
    assert.equal(unmount.code, 1);
    assert.match(unmount.stderr, /is another user's mount: only they \(or root\) can unmount it/);
    assert.ok(await isMounted(shared.dir), 'still mounted');
  });

  test('entity names that are not file names are hidden with a log line, never a path escape', async () => {
    const m = mounts[0] ?? await mountForeground(stack, projectId);
    if (!mounts.includes(m)) mounts.push(m);
    const ls = await sh(`ls -A '${m.dir}/names'`);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.split('\n').filter(Boolean), ['ok.txt']);
    const find = await sh(`find '${m.dir}/names'`);
    assert.deepEqual(find.stdout.split('\n').filter(Boolean).sort(), [`${m.dir}/names`, `${m.dir}/names/ok.txt`]);
    // ".." is the kernel's parent; the entity named ".." and its file stay unreachable.
    const escaped = await sh(`cat '${m.dir}/names/../escaped.txt'; ls '${m.dir}/names/..'`);
    assert.match(escaped.stderr, /No such file or directory/);
    assert.deepEqual(escaped.stdout.split('\n').filter(Boolean).sort(), ['managed', 'names', 'sts']);
    const up = await sh(`ls '${m.dir}/names/a' '${m.dir}/names/escape' 2>&1`);
    assert.notEqual(up.code, 0);
    const hidden = m.output().split('\n').filter((l) => l.includes('entity name is not a valid file name; hidden'));
    const hiddenNames = [...new Set(hidden.map((l) => (JSON.parse(l) as { name: string }).name))].sort();
    assert.deepEqual(hiddenNames, ['.', '..', '../../escape', 'a\u0000b'].sort());
  });
});
