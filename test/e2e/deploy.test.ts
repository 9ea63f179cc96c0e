/**
 * Running it where users run analyses (issue 9), end to end:
 *  - /etc/fstab's path: the real `mount -t fuse.synapse-mount SRC DIR -o …` (mount(8) →
 *    /sbin/mount.fuse → /bin/sh → `synapse-mount SRC DIR -o …` on the standard PATH, with an
 *    empty environment), shared-mount options (allow_other, uid, gid, modes), `umount` ends it;
 *  - an HTTPS proxy (HTTPS_PROXY) carrying both Synapse and S3 traffic to TLS servers whose
 *    certificates come from private CAs (NODE_EXTRA_CA_CERTS for Synapse, AWS_CA_BUNDLE for S3);
 *  - `npm pack` → `npm install -g --prefix` → `synapse-mount --version` from another directory
 *    and a background mount of the demo project.
 * Every wait is bounded; every mount is unmounted in `after`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { deterministicBytes, READS_BIN_SIZE, startStack, type Stack } from '../server/stack.js';
import { endToEndHeaders } from '../server/s3-gate.js';
import { MOUNT_FLAGS } from '../../src/cli/mount-options.js';
import { startConnectProxy } from '../connect-proxy.js';
import { cli, isMounted, makeTestCa, mountForeground, NODE_ARGS, patternBytes, ROOT, sh, statusOf, tempDir, waitFor, type Mounted, type TestCa } from './harness.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** First directory of mount(8)'s standard PATH: where the mount helper convention finds the bin. */
const HELPER_PATH = '/usr/local/sbin/synapse-mount';
const HELPER_MARK = '# synapse-mount e2e test wrapper (test/e2e/deploy.test.ts)';

describe('deployment: mount helper, proxy + private CA, npm pack', () => {
  let stack: Stack;
  let projectId: string;
  let stsFileId: string;
  const content = patternBytes(9 * MiB + 7, 21);
  const scratch: string[] = [];
  const mountpoints: string[] = [];
  const mounts: Mounted[] = [];
  let helperInstalled = false;

  async function dir(prefix: string): Promise<string> {
    const d = await tempDir(prefix);
    scratch.push(d);
    return d;
  }

  before(async () => {
    stack = await startStack({ fixture: 'sample' });
    projectId = stack.seed.project('Deploy Test');
    const sts = await stack.seed.folder(projectId, 'sts', { storage: 'sts' });
    stsFileId = (await stack.seed.file(sts.id, 'data.bin', content)).id;
  });

  after(async () => {
    for (const m of mounts) await m.unmount().catch(() => undefined);
    for (const mp of mountpoints) {
      if (await isMounted(mp)) await sh(`fusermount -uz ${q(mp)}`);
    }
    if (helperInstalled) await unlink(HELPER_PATH).catch(() => undefined);
    for (const d of scratch) await rm(d, { recursive: true, force: true }).catch(() => undefined);
    await stack?.close();
  });

  /** The pid of the serving process, from its log (pino lines carry it). */
  async function servingPid(logFile: string): Promise<number | undefined> {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    const m = /"pid":(\d+)/.exec(text);
    return m ? Number(m[1]) : undefined;
  }
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  test('every option of the mount command can be given with -o', async () => {
    const help = await cli(['--help']);
    assert.equal(help.code, 0, help.stderr);
    const flags = [...help.stdout.matchAll(/^\s+(?:-\w, )?--([a-z0-9-]+)/gm)].map((m) => m[1]!).filter((f) => f !== 'help' && f !== 'version');
    assert.ok(flags.includes('cache-dir') && flags.includes('metadata-ttl'), flags.join(' '));
    for (const f of flags) assert.ok(f in MOUNT_FLAGS, `--${f} is missing from MOUNT_FLAGS (src/cli/mount-options.ts), so -o ${f.replace(/-/g, '_')}= would be refused`);
  });

  test('mount -t fuse.synapse-mount SRC DIR -o … (the fstab path) mounts with shared-mount options; umount ends it', { skip: !isRoot && 'mount(8) needs root' }, async () => {
    const work = await dir('helper-');
    const tokenFile = path.join(work, 'token');
    await writeFile(tokenFile, `${stack.authToken}\n`, { mode: 0o600 });
    // The bin as mount.fuse finds it: on mount(8)'s standard PATH. Never replace a real install.
    const nodeArgs = NODE_ARGS.map((a) => (a === 'tsx' ? new URL('node_modules/tsx/dist/loader.mjs', `file://${ROOT}/`).href : a));
    const wrapper = `#!/bin/sh\n${HELPER_MARK}\nexec ${[process.execPath, ...nodeArgs].map(q).join(' ')} "$@"\n`;
    let source: string;
    let type: string;
    const existing = await readFile(HELPER_PATH, 'utf8').catch(() => undefined);
    if (existing === undefined || existing.includes(HELPER_MARK)) {
      await writeFile(HELPER_PATH, wrapper, { mode: 0o755 });
      helperInstalled = true;
      source = projectId;
      type = 'fuse.synapse-mount';
    } else {
      // A real synapse-mount is installed there: use mount.fuse's "prog#source" form instead.
      const own = path.join(work, 'synapse-mount');
      await writeFile(own, wrapper);
      await chmod(own, 0o755);
      source = `${own}#${projectId}`;
      type = 'fuse';
    }
    const mnt = await dir('helper-mnt-');
    mountpoints.push(mnt);
    const logFile = path.join(work, 'mount.log');
    const opts = [
      'ro', 'allow_other', 'uid=4321', 'gid=4322', 'file_mode=0440', 'dir_mode=0550',
      `auth_token_file=${tokenFile}`, `endpoint=${stack.endpoint}`, `s3_endpoint=${stack.s3Endpoint}`,
      `log_file=${logFile}`, `cache_dir=${path.join(work, 'cache')}`, 'nofail', '_netdev', 'noauto', 'x-systemd.automount',
    ].join(',');
    // As at boot: no HOME, no token in the environment, mount(8)'s PATH.
    const bootEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    const bad = await sh(`mount -t ${type} ${q(source)} ${q(mnt)} -o ro,cache_dri=/x`, { env: bootEnv, timeoutMs: 60_000 });
    assert.notEqual(bad.code, 0, 'an unknown option fails the mount');
    assert.match(bad.stderr, /cache_dri=\/x: unknown mount option\. Valid options: .*cache_dir=VALUE/);
    assert.equal(await isMounted(mnt), false);

    const r = await sh(`mount -t ${type} ${q(source)} ${q(mnt)} -o ${q(opts)}`, { env: bootEnv, timeoutMs: 90_000 });
    assert.equal(r.code, 0, `mount failed: ${r.stderr}\n${await readFile(logFile, 'utf8').catch(() => '')}`);
    const line = (await readFile('/proc/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === mnt);
    assert.ok(line, 'in the mount table');
    assert.match(line, / fuse\.synapse-mount .*allow_other/);

    const st = await sh(`stat -c '%u %g %a' ${q(`${mnt}/sts/data.bin`)} ${q(`${mnt}/sts`)}`);
    assert.equal(st.stdout, '4321 4322 440\n4321 4322 550\n', st.stderr);
    const sum = await sh(`md5sum ${q(`${mnt}/sts/data.bin`)}`);
    assert.equal(sum.stdout.split(' ')[0], md5(content));
    const write = await sh(`touch ${q(`${mnt}/sts/new.txt`)}`);
    assert.notEqual(write.code, 0, 'ro: writes are refused');
    assert.match(write.stderr, /Read-only file system/);

    const pid = await servingPid(logFile);
    assert.ok(pid, 'the serving process logged its pid');
    const u = await sh(`umount ${q(mnt)}`, { env: bootEnv });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await isMounted(mnt), false);
    await waitFor('the serving process to exit after umount', () => !alive(pid), 15_000);
  });

  test('HTTPS_PROXY carries Synapse and S3 traffic; private CAs via NODE_EXTRA_CA_CERTS and AWS_CA_BUNDLE', async () => {
    const work = await dir('proxy-');
    // Two private CAs (in work/1 and work/2): one signs the Synapse front's certificate, the
    // other the S3 front's.
    const cas: TestCa[] = [];
    for (const n of [1, 2]) {
      await mkdir(path.join(work, String(n)));
      cas.push(await makeTestCa(path.join(work, String(n)), `synapse-mount test CA ${n}`));
    }

    // TLS fronts for the local (plain HTTP) Synapse and S3; they record each client's port.
    const fronts: Array<{ server: https.Server; ports: number[]; url: string }> = [];
    for (const [n, target] of [[1, stack.endpoint], [2, stack.s3Endpoint]] as const) {
      const t = new URL(target);
      const ports: number[] = [];
      const server = https.createServer({ key: cas[n - 1]!.keyPem, cert: cas[n - 1]!.certPem }, (req, res) => {
        // A proxy forwards end-to-end headers only: passing `Connection: close` on to a
        // keep-alive agent while handing back the gate's `Connection: keep-alive` made two
        // requests share a closing socket (Node's bare 400, flaky).
        const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: endToEndHeaders(req.headers) }, (r) => {
          res.writeHead(r.statusCode ?? 502, endToEndHeaders(r.headers));
          r.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      });
      server.on('connection', (s: net.Socket) => ports.push(s.remotePort ?? -1));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      fronts.push({ server, ports, url: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}` });
    }
    const proxy = await startConnectProxy();
    const { tunnels, upstreamPorts, plain } = proxy;
    const proxyUrl = proxy.url;

    try {
      // The child inherits this environment at spawn; restored right after the mount is up.
      const saved = { ...process.env };
      for (const k of ['HTTP_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']) delete process.env[k];
      Object.assign(process.env, {
        HTTPS_PROXY: proxyUrl,
        NODE_EXTRA_CA_CERTS: path.join(work, '1', 'ca.pem'),
        AWS_CA_BUNDLE: path.join(work, '2', 'ca.pem'),
      });
      let m: Mounted;
      try {
        m = await mountForeground({ endpoint: fronts[0]!.url, s3Endpoint: fronts[1]!.url, authToken: stack.authToken }, projectId, ['--read-only']);
      } finally {
        for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
        Object.assign(process.env, saved);
      }
      mounts.push(m);
      const sum = await sh(`md5sum ${q(`${m.dir}/sts/data.bin`)}`);
      assert.equal(sum.code, 0, `${sum.stderr}\n${m.output()}`);
      assert.equal(sum.stdout.split(' ')[0], md5(content));
      const xattr = await sh(`getfattr --only-values -n user.synapse.id ${q(`${m.dir}/sts/data.bin`)}`);
      assert.equal(xattr.stdout, stsFileId);
      await m.unmount();
      mounts.splice(mounts.indexOf(m), 1);

      const [synapseFront, s3Front] = fronts;
      assert.ok(tunnels.includes(new URL(synapseFront!.url).host), `Synapse went through the proxy: ${tunnels.join(' ')}`);
      assert.ok(tunnels.includes(new URL(s3Front!.url).host), `S3 went through the proxy: ${tunnels.join(' ')}`);
      for (const f of fronts) {
        assert.ok(f.ports.length > 0, `${f.url} was used`);
        for (const p of f.ports) assert.ok(upstreamPorts.has(p), `${f.url}: a connection from port ${p} bypassed the proxy`);
      }
      assert.deepEqual(plain, [], 'nothing was sent to the proxy in the clear');
    } finally {
      proxy.close();
      for (const f of fronts) {
        f.server.closeAllConnections();
        f.server.close();
      }
    }
  });

  test('S3 over TLS without a proxy: blocks come through the lean reader (its socket low-water marks) byte-exact', async () => {
    // The production path for real S3 (HTTPS, no proxy): the lean reader over TLS, where the
    // low-water mark must stay a margin under what is left of each body (receive-low-water.ts).
    const work = await dir('tls-s3-');
    const ca = await makeTestCa(work, 'synapse-mount test S3 CA');
    const t = new URL(stack.s3Endpoint);
    const gets: Array<{ lean: boolean; range: string }> = [];
    const server = https.createServer({ key: ca.keyPem, cert: ca.certPem }, (req, res) => {
      if (req.method === 'GET' && req.headers.range) gets.push({ lean: !req.headers['amz-sdk-invocation-id'], range: String(req.headers.range) });
      const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: endToEndHeaders(req.headers) }, (r) => {
        res.writeHead(r.statusCode ?? 502, endToEndHeaders(r.headers));
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const front = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const saved = process.env['AWS_CA_BUNDLE'];
    process.env['AWS_CA_BUNDLE'] = path.join(work, 'ca.pem');
    let m: Mounted;
    try {
      m = await mountForeground({ endpoint: stack.endpoint, s3Endpoint: front, authToken: stack.authToken }, projectId, ['--read-only']);
    } finally {
      if (saved === undefined) delete process.env['AWS_CA_BUNDLE'];
      else process.env['AWS_CA_BUNDLE'] = saved;
    }
    mounts.push(m);
    try {
      // Twice: the second pass's fresh open reads whatever the cache let go, on reused sockets.
      for (const pass of [1, 2]) {
        const sum = await sh(`dd if=${q(`${m.dir}/sts/data.bin`)} bs=1M 2>/dev/null | md5sum`, { timeoutMs: 60_000 });
        assert.equal(sum.code, 0, `${sum.stderr}\n${m.output()}`);
        assert.equal(sum.stdout.split(' ')[0], md5(content), `pass ${pass}`);
      }
      const big = gets.filter((g) => !/bytes=0-0$/.test(g.range));
      assert.ok(big.length >= 2 && big.every((g) => g.lean), `block GETs went through the lean reader: ${JSON.stringify(gets)}`);
      // The 8 MiB block's body (over 1 MiB + the TLS margin) was read under a mark.
      const s3 = (await statusOf(m.dir)).s3;
      assert.ok(s3.markedGets >= 1 && s3.markedGets <= s3.leanGets, `marked GETs: ${JSON.stringify(s3)}`);
    } finally {
      await m.unmount();
      mounts.splice(mounts.indexOf(m), 1);
      server.closeAllConnections();
      server.close();
    }
  });

  test('npm pack → npm install -g --prefix: --version from any directory, and a mount of the demo project', async () => {
    const work = await dir('pack-');
    const pack = await sh(`npm pack --pack-destination ${q(work)} --json`, { timeoutMs: 180_000 });
    assert.equal(pack.code, 0, pack.stderr);
    const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = info[0]!.files.map((f) => f.path);
    for (const f of files) {
      assert.ok(['package.json', 'README.md', 'LICENSE', 'scripts/fix-fuse-native.mjs'].includes(f) || /^dist\/(bin|src)\/.+\.js$/.test(f), `only what runs is packed, not ${f}`);
    }
    assert.ok(files.includes('dist/bin/synapse-mount.js') && files.includes('LICENSE') && files.includes('README.md'));

    const prefix = path.join(work, 'prefix');
    const inst = await sh(`npm install -g --prefix ${q(prefix)} ${q(path.join(work, info[0]!.filename))} --prefer-offline --no-audit --no-fund`, {
      timeoutMs: 240_000, cwd: '/',
    });
    assert.equal(inst.code, 0, inst.stderr);
    const bin = path.join(prefix, 'bin', 'synapse-mount');
    assert.ok(((await stat(bin)).mode & 0o111) !== 0, 'the bin is executable');
    const env = { ...process.env, PATH: `${path.join(prefix, 'bin')}:${process.env['PATH'] ?? ''}` };
    const version = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const v = await sh('synapse-mount --version', { env, cwd: '/' });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), version.version);

    // The demo project (sample fixture), mounted the way users do: background mode.
    const mnt = await dir('pack-mnt-');
    mountpoints.push(mnt);
    const mountEnv = { ...env, SYNAPSE_AUTH_TOKEN: stack.authToken, HOME: work };
    const r = await sh(`synapse-mount ${stack.sample!.projectId} ${q(mnt)} --endpoint ${stack.endpoint} --s3-endpoint ${stack.s3Endpoint} --log-file ${q(path.join(work, 'mount.log'))}`, {
      env: mountEnv, cwd: '/', timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, `${r.stderr}\n${await readFile(path.join(work, 'mount.log'), 'utf8').catch(() => '')}`);
    assert.ok(await isMounted(mnt));
    const ls = await sh(`ls ${q(mnt)}/sts-data`);
    assert.match(ls.stdout, /reads\.bin/);
    const sum = await sh(`md5sum ${q(`${mnt}/sts-data/reads.bin`)}`);
    assert.equal(sum.stdout.split(' ')[0], md5(deterministicBytes(READS_BIN_SIZE)));
    // The install's postinstall patched and rebuilt fuse-native (npm never runs `prepare` for a
    // tarball): the kernel's reads inside a block in memory were answered by the fast path. Only
    // where this checkout could build the addon too (a compiler; scripts/setup.sh installs one):
    // without one, the prebuild is the designed fallback.
    const st = await sh(`synapse-mount status ${q(mnt)} --json`, { env: mountEnv, cwd: '/' });
    assert.equal(st.code, 0, st.stderr);
    const cache = (JSON.parse(st.stdout) as { status?: { cache: { fastReads: number } } }).status?.cache;
    assert.ok(cache, st.stdout);
    if (existsSync(path.join(ROOT, 'node_modules', 'fuse-native', 'build', 'Release', 'fuse.node'))) {
      assert.ok(cache.fastReads > 0, `fast reads in the installed mount: ${JSON.stringify(cache)}`);
    }
    const u = await sh(`synapse-mount unmount ${q(mnt)}`, { env: mountEnv, cwd: '/', timeoutMs: 60_000 });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await isMounted(mnt), false);
  });
});
