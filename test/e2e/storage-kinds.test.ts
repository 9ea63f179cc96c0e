/**
 * Issue #6: Synapse-managed storage, external S3 without STS, and STS storage in one project
 * behave the same through the mount; presigned URLs that expire mid-read are refreshed; Link
 * entities are symlinks; a new version shows on the next open while an open handle keeps its
 * version; --no-sts forces presigned reads everywhere.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type Stack } from '../server/stack.js';
import { spawn } from 'node:child_process';
import { childId, mountForeground, patternBytes, sh, slowMd5, synapseQuiet, tempDir, waitFor, type Mounted } from './harness.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const SIZES = [0, 1, 9 * MiB, 40 * MiB];

describe('a project mixing Synapse, external and STS storage', () => {
  let stack: Stack;
  let m: Mounted;
  let projectId: string;
  let scratch: string;
  const folders: Record<string, string> = {};
  let targetId: string;
  let deletedWhileRead: { id: string };

  before(async () => {
    stack = await startStack({ fixture: 'empty', presignedUrlLifetimeSec: 2 });
    projectId = stack.seed.project('Mixed');
    for (const kind of ['managed', 'external', 'sts'] as const) {
      const f = await stack.seed.folder(projectId, kind, { storage: kind });
      folders[kind] = f.id;
      for (const size of SIZES) {
        if (size === 0 && kind === 'managed') continue; // Synapse storage cannot hold 0 bytes
        await stack.seed.file(f.id, `r-${size}.bin`, patternBytes(size, size + kind.length));
      }
    }
    targetId = (await stack.seed.file(folders['sts']!, 'target.txt', Buffer.from('target\n'))).id;
    deletedWhileRead = await stack.seed.file(folders['managed']!, 'deleted-while-read.bin', patternBytes(12 * MiB, 7));
    stack.seed.link(folders['managed']!, 'to-target', targetId);
    const outside = stack.seed.project('Elsewhere');
    const elsewhere = await stack.seed.file(outside, 'far.txt', Buffer.from('far'));
    stack.seed.link(projectId, 'to-outside', elsewhere.id);
    scratch = await tempDir('kinds-');
    m = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool'), '--block-size', '1M', '--cache-size', '8M']);
  });

  after(async () => {
    await m?.unmount();
    await stack?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  test('reads of every size from every storage kind match', async () => {
    for (const kind of ['managed', 'external', 'sts'] as const) {
      for (const size of SIZES) {
        if (size === 0 && kind === 'managed') continue;
        const r = await sh(`md5sum < '${m.dir}/${kind}/r-${size}.bin'`);
        assert.equal(r.stdout.split(' ')[0], md5(patternBytes(size, size + kind.length)), `${kind} ${size}`);
      }
    }
  });

  test('writes of every size into every storage kind read back through Synapse', async () => {
    for (const kind of ['managed', 'external', 'sts'] as const) {
      for (const size of SIZES) {
        const data = patternBytes(size, 1000 + size);
        const src = path.join(scratch, `w-${size}`);
        await writeFile(src, data);
        const dest = `${m.dir}/${kind}/w-${size}.bin`;
        const cp = await sh(`cp '${src}' '${dest}'`, { timeoutMs: 120_000 });
        assert.equal(cp.code, 0, `${kind} ${size}: ${cp.stderr}`);
        assert.equal((await sh(`md5sum < '${dest}'`)).stdout.split(' ')[0], md5(data), `${kind} ${size} via mount`);
        // Without STS, uploads go through Synapse's multipart API, which refuses 0 bytes: such a
        // file stays local to the mount (README: empty files).
        if (size === 0 && kind !== 'sts') continue;
        // The release-time publish of an empty file may trail close(2) by a moment.
        let id = await childId(stack, folders[kind]!, `w-${size}.bin`);
        for (let i = 0; !id && i < 100; i++) {
          await new Promise((r) => setTimeout(r, 50));
          id = await childId(stack, folders[kind]!, `w-${size}.bin`);
        }
        assert.ok(id, `${kind} ${size} published`);
        const fh = stack.seed.fileHandle(String(stack.seed.entity(id).dataFileHandleId));
        assert.equal(md5(await stack.seed.objectBytes(fh.bucketName, fh.key)), md5(data), `${kind} ${size} via Synapse`);
      }
    }
  });

  test('QA: rsync -aX into the mount, again, and mv between an STS folder and an ordinary one finish cleanly (no xattr errors)', async () => {
    const src = path.join(scratch, 'xsrc');
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'plain.txt'), 'plain\n');
    for (const kind of ['managed', 'sts'] as const) {
      // The temp file rsync writes has no attributes yet (it is not in Synapse): nothing to remove.
      for (const round of [1, 2]) {
        const r = await sh(`rsync -aX '${src}/' '${m.dir}/${kind}/xattr-a/'`, { timeoutMs: 60_000 });
        assert.equal(r.code, 0, `${kind} rsync -aX, round ${round}: ${r.stderr}`);
      }
      const listed = await sh(`getfattr --absolute-names -d -m '^user\\.synapse\\.' '${m.dir}/${kind}/xattr-a/plain.txt'`);
      assert.match(listed.stdout, /user\.synapse\.id="syn\d+"/, `${kind}: published, it has its attributes (${listed.stdout}${listed.stderr})`);
      // From the mount itself, its source carrying the mount's attributes: rsync sets them on its
      // temp file, which is not in Synapse yet — accepted; the copy gets its own (QA: exit 23).
      const within = await sh(`rsync -aX '${m.dir}/${kind}/xattr-a/plain.txt' '${m.dir}/${kind}/xattr-a/copy.txt'`, { timeoutMs: 60_000 });
      assert.equal(within.code, 0, `${kind} rsync -aX within the mount: ${within.stderr}`);
      const ids = await sh(`getfattr --absolute-names --only-values -n user.synapse.id '${m.dir}/${kind}/xattr-a/plain.txt' '${m.dir}/${kind}/xattr-a/copy.txt'`);
      assert.match(ids.stdout, /^syn(\d+)syn(?!\1)\d+$/, `two files, two ids: ${ids.stdout}`);
      await sh(`rm '${m.dir}/${kind}/xattr-a/copy.txt'`);
    }
    // A file not in Synapse yet lists no attributes and answers ENODATA, not empty values.
    // (python, not a shell: a shell's redirection dup()s and closes the fd it opened, and that
    // close publishes what the file holds so far.)
    const held = spawn('python3', ['-c', 'import sys\nf = open(sys.argv[1], "w"); f.write("x"); f.flush()\nprint("open", flush=True); sys.stdin.readline()',
      `${m.dir}/managed/being-written.txt`], { stdio: ['pipe', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve) => held.stdout.once('data', () => resolve()));
      const none = await sh(`getfattr --absolute-names -d -m - '${m.dir}/managed/being-written.txt'; getfattr -n user.synapse.id '${m.dir}/managed/being-written.txt'`);
      assert.equal(none.stdout, '', 'no attributes listed');
      assert.match(none.stderr, /No such attribute/);
    } finally {
      held.stdin.end('go\n');
      await new Promise((r) => held.once('exit', r));
    }
    // mv across the STS boundary is a copy (EXDEV): coreutils copies the attributes and must not complain.
    const mv = await sh(`mv '${m.dir}/managed/xattr-a/plain.txt' '${m.dir}/sts/moved.txt' && mv '${m.dir}/sts/xattr-a/plain.txt' '${m.dir}/managed/moved.txt'`);
    assert.equal(mv.code, 0, mv.stderr);
    assert.equal(mv.stderr, '', 'no warnings');
    assert.equal((await sh(`cat '${m.dir}/sts/moved.txt' '${m.dir}/managed/moved.txt'`)).stdout, 'plain\nplain\n');
  });

  test('QA audit: reading from Synapse storage asks for no STS credentials (location 1 never has them), nor the sizes of the file\'s siblings, and one bundle2 for its size and handle; find and os.walk ask no sizes; a 3-part upload asks for its part URLs once and reads back with no bundle2', async () => {
    const fresh = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool-nosts')]);
    try {
      const before = stack.dev.stats().synapse.byRoute;
      const r = await sh(`cat '${fresh.dir}/managed/r-1.bin' | wc -c`);
      assert.equal(r.stdout.trim(), '1', r.stderr);
      const after = stack.dev.stats().synapse.byRoute;
      const sts = Object.keys(after).filter((k) => k.includes('/sts') && (after[k] ?? 0) > (before[k] ?? 0));
      assert.deepEqual(sts, [], `STS requests: ${JSON.stringify(after)}`);
      // A path used without reading its folder asks that file's size only, not its siblings'
      // (managed/ holds 5 files or more; QA audit: a cat cost one size request per file in it) —
      // and the bundle2 that gives the size gives the open its file handle (it asked /version,
      // then bundle2 at the open).
      const added = (route: string): number => (after[route] ?? 0) - (before[route] ?? 0);
      assert.equal(added('GET /entity/{id}/version'), 0, `size requests for one cat: ${JSON.stringify(after)}`);
      assert.equal(added('POST /entity/{id}/bundle2'), 1, `bundle2 requests for one cat: ${JSON.stringify(after)}`);
      // A tree walk that stats nothing (find -name, os.walk: d_type) asks no sizes; until session
      // 28 every readdir set off its files' size fetches (find of 10,000 files: 10,000 requests).
      // (Folders without Links: os.walk's is_dir() stats a symlink's target, which may ask sizes.)
      const walk = await sh(`find '${fresh.dir}/external' '${fresh.dir}/sts' -type f -name '*.bin' | wc -l && python3 -c "import os,sys; print(sum(len(f) for d in sys.argv[1:] for _, _, f in os.walk(d)))" '${fresh.dir}/external' '${fresh.dir}/sts'`);
      assert.equal(walk.code, 0, walk.stderr);
      assert.ok(Number(walk.stdout.split('\n')[0]) >= 8, walk.stdout);
      await synapseQuiet(stack);
      const walked = stack.dev.stats().synapse.byRoute;
      const sizeRoutes = ['GET /entity/{id}/version', 'POST /entity/{id}/bundle2'];
      assert.deepEqual(sizeRoutes.map((k) => (walked[k] ?? 0) - (after[k] ?? 0)), [0, 0], `size requests during find and os.walk: ${JSON.stringify(walked)}`);
      // A multipart upload into Synapse storage asks for its part URLs in one batch (3 parts).
      const src = path.join(scratch, 'three-parts.bin');
      await writeFile(src, patternBytes(40 * MiB, 77));
      const b2 = stack.dev.stats().synapse.byRoute;
      const s3Before = stack.dev.stats().s3.requests;
      assert.equal((await sh(`cp '${src}' '${fresh.dir}/managed/three-parts.bin'`, { timeoutMs: 120_000 })).code, 0);
      const a2 = stack.dev.stats().synapse.byRoute;
      const urlBatches = Object.keys(a2).filter((k) => k.includes('presigned/url/batch')).reduce((n, k) => n + (a2[k] ?? 0) - (b2[k] ?? 0), 0);
      // One batch; a part whose PUT is retried may ask for a fresh URL of its own (after a 403 or
      // no answer: PUTs to the local S3 were cut under load now and then) — never more than that.
      const retriedPuts = stack.dev.stats().s3.requests - s3Before - 3;
      const during = Object.fromEntries(Object.keys(a2).map((k) => [k, (a2[k] ?? 0) - (b2[k] ?? 0)]).filter(([, n]) => n !== 0));
      assert.ok(urlBatches >= 1 && urlBatches <= 1 + retriedPuts, `${urlBatches} part URL requests for 3 parts, ${retriedPuts} PUTs again; during the cp: ${JSON.stringify(during)}`);
      // Read back, it needs no bundle2: its file handle is known from the upload (QA audit F4).
      const sum = await sh(`md5sum < '${fresh.dir}/managed/three-parts.bin'`, { timeoutMs: 60_000 });
      assert.equal(sum.stdout.split(' ')[0], md5(patternBytes(40 * MiB, 77)));
      const a3 = stack.dev.stats().synapse.byRoute;
      assert.equal((a3['POST /entity/{id}/bundle2'] ?? 0) - (a2['POST /entity/{id}/bundle2'] ?? 0), 0, `read back: ${JSON.stringify(a3)}`);
    } finally {
      await fresh.unmount();
    }
  });

  test('rsync into an STS folder publishes each file once, under its own name: no temp entity, and the file handle and S3 key name the real file (QA audit F6)', async () => {
    // rsync writes `.<name>.XXXXXX` and renames it onto `<name>`. In an STS folder new files
    // stream to S3 as they are written; until session 28 each was published under its temp name
    // at its close (an entity other clients saw, a file handle whose fileName — the name Synapse's
    // clients download it as — was the temp name), then renamed: 4 requests per file, not 2.
    const src = path.join(scratch, 'rsync-sts');
    await mkdir(src, { recursive: true });
    const files: Record<string, Buffer> = { 'a.txt': Buffer.from('alpha\n'), 'big.bin': patternBytes(20 * MiB, 606) };
    assert.equal((await sh(`mkdir '${m.dir}/sts/rs'`)).code, 0);
    const folderId = (await childId(stack, folders['sts']!, 'rs'))!;
    const routes = (): Record<string, number> => ({ ...stack.dev.stats().synapse.byRoute });
    for (const round of [1, 2]) {
      for (const [name, data] of Object.entries(files)) {
        data[0] = 48 + round; // new bytes each round: round 2 makes each file's next version
        await writeFile(path.join(src, name), data);
      }
      const before = routes();
      const s3Before = stack.dev.stats().s3;
      // -I: same sizes, maybe the same second as round 1 — rsync's quick check must not skip them.
      const r = await sh(`rsync -rtI '${src}/' '${m.dir}/sts/rs/'`, { timeoutMs: 120_000 });
      assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
      const after = routes();
      const s3After = stack.dev.stats().s3;
      // Each file's bytes went to S3 once, while rsync wrote them: none read back, none sent again.
      const sent = Object.values(files).reduce((n, d) => n + d.length, 0);
      assert.ok(s3After.bytesIn - s3Before.bytesIn < sent + MiB, `round ${round}: ${s3After.bytesIn - s3Before.bytesIn} bytes to S3 for ${sent}`);
      assert.ok(s3After.bytesOut - s3Before.bytesOut < MiB, `round ${round}: ${s3After.bytesOut - s3Before.bytesOut} bytes read back from S3`);
      const added = (route: string): number => (after[route] ?? 0) - (before[route] ?? 0);
      assert.equal(added('POST /entity'), round === 1 ? 2 : 0, `round ${round}: one entity per file, none for a temp file`);
      assert.equal(added('DELETE /entity/{id}'), 0, `round ${round}: no temp entity to delete`);
      assert.equal(added('PUT /entity/{id}'), round === 1 ? 0 : 2, `round ${round}: no rename of a published temp file ${JSON.stringify(after)}`);
      for (const [name, data] of Object.entries(files)) {
        const id = (await childId(stack, folderId, name))!;
        assert.ok(id, `${name} in Synapse`);
        assert.equal(stack.seed.versions(id).length, round, `${name}: version ${round}`);
        const handle = stack.seed.fileHandle(String(stack.seed.entity(id).dataFileHandleId));
        assert.equal(handle.fileName, name, `${name}: the file handle's name`);
        assert.ok(handle.key.endsWith(`/${name}`), `${name}: the S3 key ${handle.key}`);
        assert.equal(md5(await stack.seed.objectBytes(handle.bucketName, handle.key)), md5(data), `${name}: bytes`);
      }
      const listed = (await sh(`ls -A '${m.dir}/sts/rs'`)).stdout.trim().split('\n').sort();
      assert.deepEqual(listed, ['a.txt', 'big.bin'], `round ${round}: no temp files left`);
      assert.deepEqual(await readdir(path.join(scratch, 'spool', 'journal')), [], `round ${round}: nothing journaled`);
      assert.deepEqual(await readdir(path.join(scratch, 'spool', 'uploads')), [], `round ${round}: no upload record left`);
    }
  });

  test('rsync --delay-updates works in both kinds of folder: its `.~tmp~` staging folders stay in this mount, each file is published once at the end (QA: rsync discarded every file and exited 0)', async () => {
    const src = path.join(scratch, 'rsync-delay');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    const files: Record<string, Buffer> = { 'a.txt': Buffer.from('alpha\n'), 'sub/b.bin': patternBytes(7 * MiB, 707) };
    for (const kind of ['sts', 'managed']) {
      assert.equal((await sh(`mkdir '${m.dir}/${kind}/delay'`)).code, 0);
      const folderId = (await childId(stack, folders[kind]!, 'delay'))!;
      for (const round of [1, 2]) {
        for (const [name, data] of Object.entries(files)) {
          data[0] = 48 + round;
          await writeFile(path.join(src, name), data);
        }
        const r = await sh(`rsync -rtI --delay-updates '${src}/' '${m.dir}/${kind}/delay/'`, { timeoutMs: 120_000 });
        assert.equal(r.code, 0, `${kind} round ${round}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /partial-dir|discard/i, r.stderr);
        const subId = (await childId(stack, folderId, 'sub'))!;
        for (const [name, data] of Object.entries(files)) {
          const [dirId, base] = name.startsWith('sub/') ? [subId, name.slice(4)] : [folderId, name];
          const id = (await childId(stack, dirId, base))!;
          assert.ok(id, `${kind}: ${name} in Synapse`);
          assert.equal(stack.seed.versions(id).length, round, `${kind} ${name}: version ${round}`);
          const handle = stack.seed.fileHandle(String(stack.seed.entity(id).dataFileHandleId));
          assert.equal(handle.fileName, base, `${kind} ${name}: the file handle's name`);
          assert.equal((await sh(`md5sum < '${m.dir}/${kind}/delay/${name}'`)).stdout.slice(0, 32), md5(data), `${kind} ${name}: bytes`);
        }
        const listed = (await sh(`cd '${m.dir}/${kind}/delay' && find . | sort`)).stdout.trim().split('\n');
        assert.deepEqual(listed, ['.', './a.txt', './sub', './sub/b.bin'], `${kind} round ${round}: no staging folder or temp file left`);
        const inSynapse = await fetch(`${stack.endpoint}/repo/v1/entity/children`, {
          method: 'POST', headers: { Authorization: `Bearer ${stack.authToken}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ parentId: folderId, includeTypes: ['file', 'folder'] }),
        });
        const names = ((await inSynapse.json()) as { page: Array<{ name: string }> }).page.map((c) => c.name).sort();
        assert.deepEqual(names, ['a.txt', 'sub'], `${kind}: nothing else in Synapse`);
      }
    }
    assert.deepEqual(await readdir(path.join(scratch, 'spool', 'journal')), [], 'nothing journaled');
  });

  test('presigned URLs that expire mid-read are refreshed', async () => {
    // 2 s URLs; read 40 MiB in 1 MiB blocks slowly enough to outlive several URLs.
    const batchesBefore = stack.dev.stats().synapse.byRoute['POST /fileHandle/batch'] ?? 0;
    const r = await slowMd5(`${m.dir}/managed/r-${40 * MiB}.bin`, 2, 0.25);
    assert.equal(r.stdout.trim(), md5(patternBytes(40 * MiB, 40 * MiB + 'managed'.length)), r.stderr);
    const batches = (stack.dev.stats().synapse.byRoute['POST /fileHandle/batch'] ?? 0) - batchesBefore;
    assert.ok(batches >= 2, `the URL was refreshed during the read (${batches} batch calls)`);
  });

  test('a reader of a Synapse-storage file another client deletes gets ESTALE once its URL is refused (not EACCES)', async () => {
    // QA (session 25): `Permission denied` mid-read; the file is gone, not forbidden.
    const gone = deletedWhileRead;
    const f = `${m.dir}/managed/deleted-while-read.bin`;
    const reader = sh(`python3 -c "
import os, sys, time
f = open(sys.argv[1], 'rb', buffering=0)
f.read(1024 * 1024)
open(sys.argv[2], 'w').close()
time.sleep(4)  # the 2 s URL has expired; Synapse will give no new one
try:
    f.seek(10 * 1024 * 1024); f.read(1024 * 1024); print('read')
except OSError as e:
    print(e.errno)
" '${f}' '${path.join(scratch, 'first-read-done')}'`, { timeoutMs: 60_000 });
    await waitFor('the first read', async () => (await sh(`test -e '${path.join(scratch, 'first-read-done')}'`)).code === 0, 20_000);
    const del = await fetch(`${stack.endpoint}/repo/v1/entity/${gone.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${stack.authToken}` } });
    assert.equal(del.status, 200);
    const r = await reader;
    assert.equal(r.stdout.trim(), '116', `ESTALE: ${r.stdout}${r.stderr}`);
  });

  test('Link entities are symlinks: inside the mount they resolve, outside they name the synID', async () => {
    const inside = await sh(`readlink '${m.dir}/managed/to-target' && cat '${m.dir}/managed/to-target'`);
    assert.equal(inside.code, 0, inside.stderr);
    assert.equal(inside.stdout, '../sts/target.txt\ntarget\n');
    const outside = await sh(`readlink '${m.dir}/to-outside'`);
    assert.match(outside.stdout.trim(), /^\.\/\.synapse\/syn\d+$/);
    const write = await sh(`ln -s x '${m.dir}/managed/newlink'`);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /Operation not permitted/);
    // FIFOs and device files have no Synapse equivalent either: EPERM, not libfuse's ENOSYS (QA).
    const fifo = await sh(`mkfifo '${m.dir}/managed/pipe'`);
    assert.notEqual(fifo.code, 0);
    assert.match(fifo.stderr, /Operation not permitted/);
    // The mount's own attributes are read-only: setting one to its value is a no-op (cp -a, rsync
    // -X within the mount), any other value ENOTSUP — which coreutils stays quiet about (QA: `mv`
    // into an STS folder printed three EPERM warnings per file) — and so is any other name.
    const f = `'${m.dir}/sts/target.txt'`;
    const xattr = await sh(`id=$(getfattr --only-values -n user.synapse.id ${f}) && setfattr -n user.synapse.id -v "$id" ${f} && echo same-ok; ` +
      `setfattr -n user.synapse.id -v syn1 ${f} 2>&1; setfattr -n user.note -v x ${f}`);
    assert.match(xattr.stdout, /^same-ok\n/, 'its own value: done');
    assert.match(xattr.stdout, /Operation not supported/, 'the mount\'s own attributes are read-only');
    assert.match(xattr.stderr, /Operation not supported/, 'others do not exist');
  });

  test('QA: readdir gives each entry\'s type (d_type), so find -type f and os.scandir need no stat per entry', async () => {
    const py = `import ctypes, ctypes.util, sys
class Dirent(ctypes.Structure):
    _fields_ = [('d_ino', ctypes.c_ulong), ('d_off', ctypes.c_long), ('d_reclen', ctypes.c_ushort), ('d_type', ctypes.c_ubyte), ('d_name', ctypes.c_char * 256)]
libc = ctypes.CDLL(ctypes.util.find_library('c'))
libc.opendir.restype = ctypes.c_void_p; libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent); libc.readdir.argtypes = [ctypes.c_void_p]
d = libc.opendir(sys.argv[1].encode())
while True:
    e = libc.readdir(d)
    if not e: break
    print(e.contents.d_type, e.contents.d_name.decode())`;
    const r = await sh(`python3 -c "$PY" '${m.dir}'; python3 -c "$PY" '${m.dir}/managed'`, { env: { ...process.env, PY: py } });
    assert.equal(r.code, 0, r.stderr);
    const types = new Map(r.stdout.trim().split('\n').map((l) => { const [t, ...n] = l.split(' '); return [n.join(' '), Number(t)] as const; }));
    // DT_DIR 4, DT_REG 8, DT_LNK 10 (DT_UNKNOWN 0 made every tool stat each entry).
    assert.equal(types.get('.'), 4);
    assert.equal(types.get('sts'), 4);
    assert.equal(types.get('to-outside'), 10);
    assert.equal(types.get('to-target'), 10);
    assert.equal(types.get('r-1.bin'), 8, r.stdout);
  });

  test('a new version shows on the next open; an open handle keeps its version', async () => {
    const other = await mountForeground(stack, projectId, ['--metadata-ttl', '0', '--read-only', '--block-size', '1M']);
    try {
      const f = `${other.dir}/sts/target.txt`;
      // Hold the file open in python across the change: it reads 3 bytes, waits for a line on
      // stdin (sent once the new version exists), then rereads the whole file from that handle.
      const py = `import sys
f=open(sys.argv[1],'rb'); sys.stdout.write(f.read(3).decode()); sys.stdout.flush()
sys.stdin.readline(); f.seek(0); print('|'+f.read().decode().strip())`;
      const child = spawn('python3', ['-c', py, f], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      const exited = new Promise<void>((r) => child.on('exit', () => r()));
      await waitFor('the first read', () => out.length >= 3, 20_000);
      await stack.seed.fileVersion(targetId, Buffer.from('version two\n'));
      child.stdin.end('go\n');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      child.kill();
      assert.equal(out.trim(), 'tar|target', `open handle kept version 1: ${out}`);
      assert.equal((await sh(`cat '${f}'`)).stdout, 'version two\n');
    } finally {
      await other.unmount();
    }
  });

  test('--no-sts reads STS storage through presigned URLs', async () => {
    const issued = stack.dev.stats().sts.issued;
    const ns = await mountForeground(stack, projectId, ['--no-sts', '--read-only']);
    try {
      const r = await sh(`md5sum < '${ns.dir}/sts/r-${9 * MiB}.bin'`);
      assert.equal(r.stdout.split(' ')[0], md5(patternBytes(9 * MiB, 9 * MiB + 3)));
      assert.equal(stack.dev.stats().sts.issued, issued, 'no STS credentials were requested');
    } finally {
      await ns.unmount();
    }
  });
});
