/**
 * Writes through a real mount (issue #4): files become Synapse files on close, read back
 * byte-identical through the mount and through Synapse's download path; the tools users run
 * (cp -p, rsync -a, tar, git, vim, python) work; failures are recoverable.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { kernelInvalidatesOnDirectWrite } from '../../src/fs/page-cache-bypass.js';
import type { FuseTerms } from '../../src/fs/fuse-terms.js';
import { startStack, type Stack } from '../server/stack.js';
import { CACHED_PAGES_PY, childId, cli, kernelAtLeast, mountForeground, runPython, statusOf, patternBytes, sh, SYNAPSE_PACE_WAIT_MS, tempDir, waitFor, type Mounted, type ShResult } from './harness.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

describe('writing through the mount', () => {
  let stack: Stack;
  let m: Mounted;
  let projectId: string;
  let stsId: string;
  let stsLocation: number;
  let managedId: string;
  let scratch: string;

  async function idOf(p: string): Promise<string> {
    const r = await sh(`getfattr --only-values -n user.synapse.id '${p}'`);
    assert.equal(r.code, 0, `getfattr ${p}: ${r.stderr}`);
    return r.stdout.trim();
  }

  async function waitForId(p: string): Promise<string> {
    let id = '';
    await waitFor(`synID of ${p}`, async () => {
      const r = await sh(`getfattr --only-values -n user.synapse.id '${p}'`);
      id = r.stdout.trim();
      return /^syn\d+$/.test(id);
    }, SYNAPSE_PACE_WAIT_MS);
    return id;
  }

  /** The bytes Synapse serves for the entity's current version (the download path). */
  async function synapseBytes(entityId: string): Promise<{ bytes: Buffer; fh: ReturnType<Stack['seed']['fileHandle']> }> {
    const entity = stack.seed.entity(entityId);
    const fh = stack.seed.fileHandle(String(entity.dataFileHandleId));
    return { bytes: await stack.seed.objectBytes(fh.bucketName, fh.key), fh };
  }

  before(async () => {
    stack = await startStack({ fixture: 'empty' });
    projectId = stack.seed.project('Write Test');
    const sts = await stack.seed.folder(projectId, 'sts', { storage: 'sts' });
    stsId = sts.id;
    stsLocation = sts.storageLocationId!;
    managedId = (await stack.seed.folder(projectId, 'managed', { storage: 'managed' })).id;
    stack.seed.grant(projectId, stack.secondUserId, ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE', 'DELETE']);
    scratch = await tempDir('write-src-');
    m = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool')]);
  });

  after(async () => {
    await m?.unmount();
    await stack?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  for (const [label, size] of [['0 B', 0], ['1 B', 1], ['16 MiB-1', 16 * MiB - 1], ['16 MiB+1', 16 * MiB + 1], ['300 MiB', 300 * MiB]] as const) {
    test(`cp of ${label} into the STS folder reads back identical (mount and Synapse)`, async () => {
      const data = patternBytes(size, size + 7);
      const src = path.join(scratch, `src-${size}`);
      await writeFile(src, data);
      const dest = `${m.dir}/sts/file-${size}.bin`;
      const cp = await sh(`cp '${src}' '${dest}'`, { timeoutMs: 300_000 });
      assert.equal(cp.code, 0, cp.stderr);
      const back = await sh(`md5sum < '${dest}'; stat -c %s '${dest}'`);
      assert.equal(back.stdout.split(/\s+/)[0], md5(data));
      assert.equal(back.stdout.trim().split('\n')[1], String(size));
      // An empty file is published at the last close (release), which the kernel sends just
      // after close(2) returns: poll briefly for its synID.
      const id = await waitForId(dest);
      const { bytes, fh } = await synapseBytes(id);
      assert.equal(fh.contentMd5, md5(data));
      assert.equal(Number(fh.contentSize), size);
      assert.equal(fh.storageLocationId, stsLocation, 'stored in the folder\'s STS location');
      assert.equal(md5(bytes), md5(data));
    });
  }

  test('cp into Synapse-managed storage goes through the multipart API', async () => {
    for (const size of [1, 16 * MiB + 1]) {
      const data = patternBytes(size, 99 + size);
      const src = path.join(scratch, `m-${size}`);
      await writeFile(src, data);
      const cp = await sh(`cp '${src}' '${m.dir}/managed/m-${size}.bin'`);
      assert.equal(cp.code, 0, cp.stderr);
      const id = await idOf(`${m.dir}/managed/m-${size}.bin`);
      const { bytes, fh } = await synapseBytes(id);
      assert.equal(md5(bytes), md5(data));
      assert.equal(fh.bucketName, stack.managedBucket);
    }
    assert.ok((stack.dev.stats().synapse.byRoute['PUT /file/multipart/{uploadId}/complete'] ?? 0) >= 2);
  });

  /**
   * Write 16 MiB to `file` through a write-only fd; how many of its pages the kernel then holds.
   * This file's own pages, not the machine's, counted through an fd opened before the writer (an
   * open drops the file's cached pages; harness.ts, CACHED_PAGES_PY). Through the page cache
   * every written page stays resident; bypassing it, none.
   */
  async function writeOnlyResidency(file: string): Promise<{ resident: number; pages: number; digest: string }> {
    const mib = 16;
    const r = await runPython([
      ...CACHED_PAGES_PY,
      'import hashlib, sys',
      'path = sys.argv[1]',
      'open(path, "wb").close()',
      'reader = os.open(path, os.O_RDONLY)',
      'buf = bytes(range(256)) * 4096',
      'fd = os.open(path, os.O_WRONLY | os.O_TRUNC)',
      `for _ in range(${mib}): os.write(fd, buf)`,
      'pages = (os.fstat(fd).st_size + 4095) // 4096',
      'resident = cached_pages(reader)',
      'os.close(fd)',
      `print(resident, pages, hashlib.md5(buf * ${mib}).hexdigest())`,
    ], [file], 120_000);
    assert.equal(r.code, 0, r.stderr);
    const [resident, pages, digest] = r.stdout.trim().split(' ');
    return { resident: Number(resident), pages: Number(pages), digest: digest! };
  }

  test('a write-only open skips the page cache (Linux ≥ 6.6): dd no longer fills memory that no reader can use', async () => {
    const { resident, pages, digest } = await writeOnlyResidency(`${m.dir}/sts/pc-wronly.bin`);
    if (kernelInvalidatesOnDirectWrite()) {
      assert.ok(resident < pages / 10, `${resident} of ${pages} written pages in the page cache`);
    } else {
      // Older kernels: write-only opens keep the page cache by default (README), so the pages are there.
      assert.ok(resident > pages / 2, `${resident} of ${pages} written pages in the page cache`);
    }
    const { bytes } = await synapseBytes(await idOf(`${m.dir}/sts/pc-wronly.bin`));
    assert.equal(md5(bytes), digest);
  });

  test('-o no_direct_writes keeps write-only opens in the page cache, and status says so', async () => {
    const other = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool2'), '-o', 'no_direct_writes']);
    try {
      const { pageCache, fuse } = await statusOf(other.dir);
      assert.deepEqual(pageCache, {
        ...(fuse?.directIoSharedMmap ? { reads: 'bypassed', smallReaders: [] } : { reads: 'kernel' }), readWriteOpens: 'kernel', writeOnlyOpens: 'kernel',
      });
      const { resident, pages, digest } = await writeOnlyResidency(`${other.dir}/sts/pc-cached.bin`);
      assert.ok(resident > pages / 2, `${resident} of ${pages} written pages in the page cache`);
      const { bytes } = await synapseBytes(await idOf(`${other.dir}/sts/pc-cached.bin`));
      assert.equal(md5(bytes), digest);
    } finally {
      await other.unmount();
    }
  });

  test('writes arrive in 1 MiB requests (the mount asks the kernel past libfuse 2\'s 128 KiB), unaligned ones across a part boundary included', async () => {
    // 1000 bytes, then 1 MiB writes: every request straddles 1 MiB boundaries, one the 16 MiB part
    // boundary. A mount of its own: its largest-request counter starts at 0.
    const fresh = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool4')]);
    try {
      const r = await runPython([
        'import hashlib, os, sys',
        'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)',
        'h = hashlib.md5()',
        'def put(b):',
        '    h.update(b)',
        '    assert os.write(fd, b) == len(b)',
        'put(bytes(range(250)) * 4)',
        'for i in range(20):',
        '    put(bytes([i]) * (1 << 20))',
        'os.close(fd)',
        'print(h.hexdigest())',
      ], [`${fresh.dir}/sts/big-writes.bin`], 60_000);
      assert.equal(r.code, 0, r.stderr);
      const fuse = (await statusOf(fresh.dir)).fuse!;
      if (kernelAtLeast(4, 20)) { // FUSE_MAX_PAGES
        assert.equal(fuse.maxWriteBytes, MiB, JSON.stringify(fuse));
        // The kernel counts a direct write's pages, not bytes: Python's buffer starts 48 bytes or so
        // into a page, so its 1 MiB writes come as 256 pages less that offset (dd's are page-aligned).
        assert.ok(fuse.largestWrite > MiB - 4096 && fuse.largestWrite <= MiB, JSON.stringify(fuse));
      } else {
        assert.equal(fuse.largestWrite, 128 * 1024, JSON.stringify(fuse));
      }
      const { bytes } = await synapseBytes(await idOf(`${fresh.dir}/sts/big-writes.bin`));
      assert.equal(bytes.length, 1000 + 20 * MiB);
      assert.equal(md5(bytes), r.stdout.trim());
    } finally {
      await fresh.unmount();
    }
  });

  test('--max-request-size 128K keeps libfuse 2\'s own terms (with no_direct_reads, which needs no shared-mmap grant: the INIT reply untouched)', async () => {
    const other = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool3'), '-o', 'max_request_size=128K,no_direct_reads']);
    try {
      const data = patternBytes(3 * MiB + 5, 43);
      await writeFile(path.join(scratch, 'small-req.bin'), data);
      const dd = await sh(`dd if='${scratch}/small-req.bin' of='${other.dir}/sts/small-req.bin' bs=1M status=none`);
      assert.equal(dd.code, 0, dd.stderr);
      const fuse = (await statusOf(other.dir)).fuse!;
      // The channel still sees INIT (it wraps libfuse's for every mount) but leaves the reply alone.
      assert.match(fuse.kernelProtocol ?? '', /^7\.\d+$/);
      assert.equal(fuse.maxWriteBytes, 128 * 1024);
      assert.equal(fuse.largestWrite, 128 * 1024);
      assert.equal(md5((await synapseBytes(await idOf(`${other.dir}/sts/small-req.bin`))).bytes), md5(data));
    } finally {
      await other.unmount();
    }
  });

  test('copies into and within the mount (sendfile, cp), and appends with open(..., "a"), publish exact bytes', async () => {
    const data = patternBytes(5 * MiB + 333, 41);
    const src = path.join(scratch, 'copy-src.bin');
    await writeFile(src, data);
    // shutil.copyfile uses sendfile(2) into the mount; cp inside the mount copies via the kernel.
    const py = await sh(`python3 -c "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])" '${src}' '${m.dir}/sts/sendfile.bin'`);
    assert.equal(py.code, 0, py.stderr);
    const cp = await sh(`cp '${m.dir}/sts/sendfile.bin' '${m.dir}/sts/copied.bin'`);
    assert.equal(cp.code, 0, cp.stderr);
    const app = await sh(`python3 -c "
import sys
for i in range(3):
    with open(sys.argv[1], 'a') as f: f.write('line %d\\n' % i)
" '${m.dir}/sts/appended.txt'`);
    assert.equal(app.code, 0, app.stderr);
    for (const name of ['sendfile.bin', 'copied.bin']) {
      assert.equal(md5((await synapseBytes(await idOf(`${m.dir}/sts/${name}`))).bytes), md5(data), name);
      assert.equal((await sh(`md5sum < '${m.dir}/sts/${name}'`)).stdout.split(' ')[0], md5(data), `${name} read back`);
    }
    assert.equal((await synapseBytes(await idOf(`${m.dir}/sts/appended.txt`))).bytes.toString(), 'line 0\nline 1\nline 2\n');
  });

  test('a reader with the file open sees what a write-only fd (no page cache) appends and overwrites', async () => {
    // The reader's open caches the file's first page; the writer bypasses the page cache, so the
    // kernel must not answer the reader's second read from that stale page.
    const r = await runPython([
      'import os, sys',
      'w = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)',
      'os.write(w, b"A" * 100)',
      'r = os.open(sys.argv[1], os.O_RDONLY)',
      'first = os.pread(r, 4096, 0)',
      'os.write(w, b"B" * 100)',
      'os.pwrite(w, b"C" * 10, 10)',
      'second = os.pread(r, 4096, 0)',
      'os.close(r)',
      'os.close(w)',
      'print(first.decode(), second.decode())',
    ], [`${m.dir}/sts/coherent.txt`], 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${'A'.repeat(100)} ${'A'.repeat(10)}${'C'.repeat(10)}${'A'.repeat(80)}${'B'.repeat(100)}`);
    assert.equal((await synapseBytes(await idOf(`${m.dir}/sts/coherent.txt`))).bytes.toString(), `${'A'.repeat(10)}${'C'.repeat(10)}${'A'.repeat(80)}${'B'.repeat(100)}`);
  });

  test('an empty file in Synapse storage stays local and is documented as such; touch works', async () => {
    const r = await sh(`touch '${m.dir}/managed/empty.txt' && ls -l '${m.dir}/managed/empty.txt'`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await childId(stack, managedId, 'empty.txt'), undefined, 'no entity with different bytes was published');
    // Once it has content it is published.
    const w = await sh(`echo content > '${m.dir}/managed/empty.txt'`);
    assert.equal(w.code, 0, w.stderr);
    const id = await idOf(`${m.dir}/managed/empty.txt`);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'content\n');
  });

  test('at unmount the log names the empty files Synapse storage could not hold (gone with the mount), not scratch or recover ones', async () => {
    // QA: git saw pkg/__init__.py deleted after a remount, and nothing had said it would go.
    const e = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool-empty-named')]);
    try {
      assert.equal((await sh(`mkdir -p '${e.dir}/managed/pkg-e' && : > '${e.dir}/managed/pkg-e/__init__.py' && : > '${e.dir}/managed/top-empty.txt' && touch '${e.dir}/managed/pkg-e/notes~'`)).code, 0);
    } finally {
      await e.unmount();
    }
    const line = e.output().split('\n').find((l) => l.includes('empty files kept in this mount only'));
    assert.ok(line, e.output());
    const { paths, count } = JSON.parse(line) as { paths: string[]; count: number };
    assert.deepEqual(paths.sort(), ['/managed/pkg-e/__init__.py', '/managed/top-empty.txt']);
    assert.equal(count, 2);
  });

  test('QA: identical files closed at once in Synapse storage all publish (Synapse hands such uploads one multipart upload)', async () => {
    const dirs = ['same-a', 'same-b'].map((d) => `${m.dir}/managed/${d}`);
    assert.equal((await sh(`mkdir ${dirs.map((d) => `'${d}'`).join(' ')}`)).code, 0);
    const r = await runPython([
      'import sys, threading',
      'errors = []',
      'def write(d):',
      '    for i in range(12):',
      '        try:',
      "            with open(f'{d}/y{i}.txt', 'w') as f:",
      "                f.write('same content\\n')",
      '        except OSError as e:',
      "            errors.append(f'{d}/y{i}: {e}')",
      'threads = [threading.Thread(target=write, args=(d,)) for d in sys.argv[1:]]',
      'for t in threads: t.start()',
      'for t in threads: t.join()',
      "print('\\n'.join(errors))",
      'sys.exit(1 if errors else 0)',
    ], dirs, 180_000);
    assert.equal(r.code, 0, `closes failed: ${r.stdout}${r.stderr}`);
    for (const d of ['same-a', 'same-b']) {
      const { bytes } = await synapseBytes(await idOf(`${m.dir}/managed/${d}/y11.txt`));
      assert.equal(bytes.toString(), 'same content\n');
    }
  });

  test('an empty file in Synapse storage can be renamed, also onto a published file (git\'s lock-file dance)', async () => {
    // QA: `: > f.lock; mv f.lock f` answered ENOENT there, which broke `git stash pop`.
    const d = `${m.dir}/managed`;
    const r = await sh(`: > '${d}/e1' && mv '${d}/e1' '${d}/e2' && ls '${d}'`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^e2$/m);
    assert.doesNotMatch(r.stdout, /^e1$/m);
    assert.equal((await sh(`printf old > '${d}/reflog'`)).code, 0);
    const old = await idOf(`${d}/reflog`);
    const mv = await sh(`: > '${d}/reflog.lock' && mv '${d}/reflog.lock' '${d}/reflog' && stat -c %s '${d}/reflog'`);
    assert.equal(mv.code, 0, mv.stderr);
    assert.equal(mv.stdout.trim(), '0', 'the path now holds the empty file');
    assert.equal(await childId(stack, managedId, 'reflog'), undefined, 'the replaced file went to the trash can');
    assert.ok(old);
  });

  test('while `mv tmp f` replaces f, opens of f find the old or the new file, never ENOENT', async (t) => {
    // An open of a name the kernel had looked up reaches libfuse as "open this node". Between
    // libfuse renaming its nodes and the kernel moving its entry, that node is the replaced
    // file, which has no path left: libfuse 2 answered ENOENT (helper-36: ≈ 10 in 600 `cat`s
    // during 20 renames), where a local disk opens whichever file the name holds.
    const d = `${m.dir}/managed/replace`;
    const stop = path.join(scratch, 'replace-stop');
    const renames = 40;
    assert.equal((await sh(`mkdir -p '${d}' && printf v0 > '${d}/f'`)).code, 0);
    try {
      const reader = (): Promise<ShResult> => runPython([
        'import errno, os, sys, time',
        'f, stop = sys.argv[1], sys.argv[2]',
        'opened, failed, odd = 0, {}, set()',
        'deadline = time.monotonic() + 150',
        'while not os.path.exists(stop) and time.monotonic() < deadline:',
        '    op = "open"',
        '    try:',
        "        with open(f, 'rb') as h: data = h.read()",
        '        opened += 1',
        `        if data not in [b'v%d' % i for i in range(${renames + 1})]: odd.add(data)`,
        "        op = 'stat'; os.stat(f)  # checks by name: the kernel repeats them too",
        "        op = 'getxattr'; os.getxattr(f, 'user.synapse.id')",
        '    except OSError as e:',
        "        name = op + ' ' + errno.errorcode.get(e.errno, str(e.errno))",
        '        failed[name] = failed.get(name, 0) + 1',
        "print(f'opened={opened} failed={failed} odd={sorted(odd)}')",
      ], [`${d}/f`, stop], 180_000);
      // One writer: with two, the name can be replaced again while the kernel repeats a refused
      // call, which then fails (ENOENT, ≈ 1 in 2,000 calls here: README, Limits).
      const writer = (w: number): Promise<ShResult> => sh(`sleep 0.3; for i in $(seq ${w} 1 ${renames}); do printf v$i > '${d}/tmp${w}' && mv '${d}/tmp${w}' '${d}/f' || exit 1; done`, { timeoutMs: 170_000 });
      const writers = Promise.all([writer(1)]).then(async (ws) => {
        await writeFile(stop, '');
        return ws;
      });
      const [r1, r2, ws] = await Promise.all([reader(), reader(), writers]);
      for (const w of ws) assert.equal(w.code, 0, w.stderr);
      for (const r of [r1, r2]) {
        assert.equal(r.code, 0, r.stderr);
        const out = r.stdout.trim();
        // Opens never fail with ENOENT or ESTALE. A stat or getxattr by name still can, rarely
        // (≈ 1 in 1,500 here: a lookup answered while the rename is applied — README, Limits), and
        // one open or read in ≈ 10,000 failed with EIO once under a loaded full run (session 21's
        // note: not yet understood) — counted and shown, not asserted.
        assert.match(out, /^opened=[1-9]\d* failed=\{.*\} odd=\[\]$/, out);
        assert.doesNotMatch(out, /'open (ENOENT|ESTALE)'/, out);
        // The rare failures left are not understood yet: what the mount logged goes to the report.
        if (/EIO/.test(out)) t.diagnostic(`${out}\n${m.output().split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-20).join('\n')}`);
      }
    } finally {
      await rm(stop, { force: true });
    }
    assert.equal((await sh(`cat '${d}/f'`)).stdout, `v${renames}`);
  });

  test('rsync -a of a changed file (temp file renamed onto it) keeps the source mtime; the next rsync sends nothing', async () => {
    // QA: the renamed-onto file showed its old mtime, so every later rsync sent it again.
    const m0 = await mountForeground(stack, projectId, ['--metadata-ttl', '0']);
    const src = path.join(scratch, 'rsync-src');
    try {
      await sh(`mkdir -p '${src}' && echo one > '${src}/f.txt' && touch -d 2019-01-01T00:00:00Z '${src}/f.txt'`);
      assert.equal((await sh(`rsync -a '${src}/' '${m0.dir}/managed/rs/'`)).code, 0);
      await sh(`echo two > '${src}/f.txt' && touch -d 2020-02-02T00:00:00Z '${src}/f.txt'`);
      const second = await sh(`rsync -a '${src}/' '${m0.dir}/managed/rs/'`);
      assert.equal(second.code, 0, second.stderr);
      assert.equal((await sh(`stat -c %Y '${m0.dir}/managed/rs/f.txt'`)).stdout.trim(), String(Date.parse('2020-02-02T00:00:00Z') / 1000));
      const third = await sh(`rsync -ai '${src}/' '${m0.dir}/managed/rs/'`);
      assert.doesNotMatch(third.stdout, /f\.txt/, `nothing sent again: ${third.stdout}`);
      assert.equal((await sh(`cat '${m0.dir}/managed/rs/f.txt'`)).stdout, 'two\n');
    } finally {
      await m0.unmount();
    }
  });

  test('emptying a published file in Synapse storage leaves it as it was, with nothing to recover', async () => {
    // Synapse's multipart API refuses 0 bytes: the file keeps its version (found by a QA pass:
    // close() returned 0, the old bytes came back a minute later, and each try left a journal
    // entry that `recover` could never publish).
    const f = `${m.dir}/managed/emptied.txt`;
    assert.equal((await sh(`printf 'abc\\n' > '${f}'`)).code, 0);
    const id = await idOf(f);
    const version = stack.seed.entity(id).versionNumber;
    const py = await runPython([
      'import os, sys',
      'try:',
      '    os.truncate(sys.argv[1], 0)',
      "    print('truncated')",
      'except OSError as e:',
      '    print(e.errno)',
    ], [f]);
    assert.equal(py.stdout.trim(), '95', `truncate(2) answers EOPNOTSUPP: ${py.stdout}${py.stderr}`);
    // The shell's `>` with nothing written: its close cannot report anything (README).
    assert.equal((await sh(`: > '${f}'`)).code, 0);
    // Its last close (release) runs after `:` exits: wait until the mount has let the file go.
    await waitFor('the emptied file to be let go', async () => !(await statusOf(m.dir)).uploads.some((u) => u.path.endsWith('emptied.txt')), SYNAPSE_PACE_WAIT_MS);
    assert.equal(stack.seed.entity(id).versionNumber, version, 'no new version');
    assert.equal((await synapseBytes(id)).bytes.toString(), 'abc\n');
    assert.ok(!(await statusOf(m.dir)).journal.some((j) => j.name === 'emptied.txt'), 'no journal entry for it');
  });


  test('rsync or sed -i emptying a published file in Synapse storage: as `mv` of any empty file onto it, the old file goes to the trash can', async () => {
    // QA (session 24): the tool's empty temp file renamed onto the file answered 0 while the
    // file kept its bytes — rsync and sed said done; nothing had changed. Now the same as a
    // closed empty file renamed there (git's lock dance, above), whatever the temp file's name.
    const src = path.join(scratch, 'rsync-empty');
    const dir = `${m.dir}/managed/emptied-by-tools`;
    assert.equal((await sh(`mkdir -p '${src}' '${dir}' && : > '${src}/r.txt' && printf 'abc\\n' > '${dir}/r.txt' && printf 'x\\n' > '${dir}/s.txt'`)).code, 0);
    const folder = await idOf(dir);
    const r = await idOf(`${dir}/r.txt`);
    const s = await idOf(`${dir}/s.txt`);
    const rsync = await sh(`rsync -r '${src}/' '${dir}/'`);
    assert.equal(rsync.code, 0, rsync.stderr);
    const sed = await sh(`sed -i '1,$d' '${dir}/s.txt'`);
    assert.equal(sed.code, 0, sed.stderr);
    for (const [id, name] of [[r, 'r.txt'], [s, 's.txt']] as const) {
      assert.equal((await sh(`stat -c %s '${dir}/${name}'`)).stdout.trim(), '0', `${name}: empty in the mount`);
      assert.equal(await childId(stack, folder, name), undefined, `${name}: the replaced file went to the trash can`);
      assert.equal(stack.seed.trashedFrom(id), folder, `${name}: in the trash can, restorable`);
    }
    assert.deepEqual((await sh(`ls -A '${dir}'`)).stdout.split('\n').filter(Boolean), ['r.txt', 's.txt'], 'no temp file left');
    assert.ok(!(await statusOf(m.dir)).journal.some((j) => j.name.startsWith('.r.txt.') || j.name.startsWith('sed')), 'no journal entry');
  });

  test('a scratch view of a Synapse file is read-only; a kept scratch file renamed to a real name is published', async () => {
    const dir = `${m.dir}/managed`;
    assert.equal((await sh(`printf 'v1\\n' > '${dir}/view.txt'`)).code, 0);
    const id = await idOf(`${dir}/view.txt`);
    const version = stack.seed.entity(id).versionNumber;
    assert.equal((await sh(`mv '${dir}/view.txt' '${dir}/view.txt~'`)).code, 0);
    // Writes there would stay in this mount and vanish at unmount (they did, before).
    const w = await sh(`echo more >> '${dir}/view.txt~'`);
    assert.notEqual(w.code, 0);
    assert.match(w.stderr, /Permission denied/);
    assert.equal((await sh(`mv '${dir}/view.txt~' '${dir}/view.txt'`)).code, 0);
    assert.equal((await sh(`cat '${dir}/view.txt'`)).stdout, 'v1\n');
    assert.equal(stack.seed.entity(id).versionNumber, version);
    // A scratch file is kept after its close; given a real name it is published at once.
    assert.equal((await sh(`echo 'from scratch' > '${dir}/kept.txt~' && mv '${dir}/kept.txt~' '${dir}/kept.txt'`)).code, 0);
    // Published at the rename, or at the release if that reached the mount after the rename.
    let kept: string | undefined;
    await waitFor('kept.txt published', async () => (kept = await childId(stack, managedId, 'kept.txt')) !== undefined, SYNAPSE_PACE_WAIT_MS);
    assert.ok(kept, 'published under its real name');
    assert.equal((await synapseBytes(kept)).bytes.toString(), 'from scratch\n');
    assert.equal(await childId(stack, managedId, 'kept.txt~'), undefined, 'the scratch name never reached Synapse');
  });

  test('df reports the documented capacity; ls -a lists . and ..; a name over 255 characters (NAME_MAX) is ENAMETOOLONG', async () => {
    const df = await sh(`stat -f -c '%S %b %a' '${m.dir}'`);
    const [bsize, blocks, avail] = df.stdout.trim().split(' ').map(Number);
    assert.equal(bsize! * blocks!, 2 ** 50, `1 PiB: ${df.stdout}`);
    assert.equal(avail, blocks);
    assert.match((await sh(`ls -a '${m.dir}/sts'`)).stdout, /^\.\n\.\.\n/);
    const long = await sh(`touch '${m.dir}/sts/${'n'.repeat(300)}'`);
    assert.notEqual(long.code, 0);
    assert.match(long.stderr, /File name too long/);
    // 256 Synapse would take, but statfs says 255 and no local disk could hold it (QA).
    const over = await sh(`touch '${m.dir}/sts/${'n'.repeat(256)}'`);
    assert.match(over.stderr, /File name too long/);
    // A lookup of such a name says so too, as ext4 does (it said ENOENT, QA).
    assert.match((await sh(`stat '${m.dir}/sts/${'n'.repeat(300)}'`)).stderr, /File name too long/);
    // 250 characters is a valid name: it round-trips (it crashed the local S3 server, QA).
    const name = `${'l'.repeat(246)}.txt`;
    const rt = await sh(`echo long > '${m.dir}/sts/${name}' && cat '${m.dir}/sts/${name}'`);
    assert.equal(rt.stdout, 'long\n', rt.stderr);
    assert.ok(await childId(stack, stsId, name));
  });

  test('a file unlinked while open stays usable through its fd and is never published (TemporaryFile)', async () => {
    // libfuse answered ENOENT to every op on such an fd (hard_remove leaves it no path) until
    // fuse-native was patched to pass NULL paths and fstat's fd (scripts/fix-fuse-native.mjs 5.).
    const py = await runPython([
      'import os, sys, tempfile',
      't = tempfile.TemporaryFile(dir=sys.argv[1])',
      "t.write(b'x' * 5000 + b'end'); t.flush()",
      't.seek(0); data = t.read()',
      "assert data == b'x' * 5000 + b'end', len(data)",
      // SEEK_END may ask the mount for the size by fd (fgetattr) or use the kernel's cached size.
      "assert t.seek(0, 2) == 5003",
      "t.write(b'more'); t.flush(); os.fsync(t.fileno())",
      "t.seek(4999); assert t.read() == b'xendmore'",
      't.close()',
      "print('ok', sorted(n for n in os.listdir(sys.argv[1]) if n.startswith('tmp')))",
    ], [`${m.dir}/managed`]);
    assert.equal(py.code, 0, py.stderr);
    assert.equal(py.stdout.trim(), 'ok []');
    const r = await fetch(`${stack.endpoint}/repo/v1/entity/children`, {
      method: 'POST', headers: { Authorization: `Bearer ${stack.authToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ parentId: managedId, includeTypes: ['file'] }),
    });
    const page = await r.json() as { page: Array<{ name: string }> };
    assert.deepEqual(page.page.filter((c) => c.name.startsWith('tmp')), [], 'nothing published for it');
  });

  test('O_SYNC and O_DSYNC read-write writes are journaled durably while open, not a version each; the close publishes once', async () => {
    // QA (session 30): the kernel fsyncs after each write of such an fd (read-write opens go
    // through the page cache), and every fsync published a version: 20 writes, 20 versions.
    const journalDir = path.join(scratch, 'spool', 'journal');
    for (const [dir, parentId] of [['sts', stsId], ['managed', managedId]] as const) {
      const file = `${m.dir}/${dir}/osync.log`;
      const writer = pausedPython(`osync-${dir}`, [
        'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_SYNC, 0o644)',
        "for i in range(10): os.write(fd, b'line %d\\n' % i)",
      ], [
        'os.close(fd)',
        // Opened again O_DSYNC: 10 more writes, one more version.
        'fd = os.open(sys.argv[1], os.O_RDWR | os.O_DSYNC); os.lseek(fd, 0, 2)',
        "for i in range(10): os.write(fd, b'more %d\\n' % i)",
        'os.close(fd)',
      ], [file]);
      await writer.ready();
      // Still open: not in Synapse, but each write durable in the spool, journaled as open here.
      assert.equal(await childId(stack, parentId, 'osync.log'), undefined, `${dir}: not published while open`);
      const written = Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join('');
      {
        // (In an STS folder of the user's too: such a file is spooled, not streamed to S3, whose
        // last part would stay in memory.)
        const entries = await readdir(journalDir);
        assert.equal(entries.length, 1, `${dir}: one entry, rewritten at each write: ${entries.join(' ')}`);
        const entry = JSON.parse(await readFile(path.join(journalDir, entries[0]!), 'utf8')) as { size: number; md5: string; incomplete?: string; heldOpen?: unknown; name: string };
        assert.equal(entry.name, 'osync.log');
        assert.equal(entry.size, written.length, 'the entry names every byte written so far');
        assert.equal(entry.md5, md5(Buffer.from(written)));
        assert.ok(entry.incomplete && entry.heldOpen, 'open here: recover leaves it to this mount; after a crash it is a conflict');
        const status = await statusOf(m.dir);
        assert.ok(!status.journal.some((j) => j.name === 'osync.log'), 'status does not call it waiting for recover');
        assert.ok(status.uploads.some((u) => u.path.endsWith('/osync.log')), 'it is one of the files being written');
      }
      await writer.go();
      const r = await writer.done;
      assert.equal(r.code, 0, r.stderr);
      const id = await childId(stack, parentId, 'osync.log');
      assert.ok(id, `${dir}: published at the close`);
      assert.equal(stack.seed.versions(id).length, 2, `${dir}: one version per close, not per write`);
      assert.equal((await synapseBytes(id)).bytes.toString(), written + Array.from({ length: 10 }, (_, i) => `more ${i}\n`).join(''));
      assert.deepEqual(await readdir(journalDir), [], `${dir}: published: nothing left for recover`);
    }
  });

  test('fstat of a descriptor whose file was replaced by a rename or removed answers for that file', async () => {
    // The kernel's fstat names the node, not the descriptor, and libfuse 2 has no path for a
    // replaced or removed node: it answered ENOENT (`tail -f` gave up on a file replaced under
    // it). The mount's channel now adds the node's descriptor to such a getattr
    // (scripts/fix-fuse-native.mjs 8.), so the mount answers from the descriptor.
    const py = await runPython([
      'import errno, os, sys',
      'd = sys.argv[1]',
      "with open(f'{d}/victim', 'wb') as h: h.write(b'old bytes')",
      "fd = os.open(f'{d}/victim', os.O_RDONLY)",
      "with open(f'{d}/newer', 'wb') as h: h.write(b'the new file')",
      "os.rename(f'{d}/newer', f'{d}/victim')",
      'st = os.fstat(fd)',
      "assert st.st_size == 9 and st.st_nlink == 0, ('replaced', st)",
      "assert os.pread(fd, 100, 0) == b'old bytes'",
      // Reopening it through /proc (no new lookup can help): ENOENT as before, never ESTALE.
      'try:',
      "    os.close(os.open(f'/proc/self/fd/{fd}', os.O_RDONLY))",
      'except OSError as e:',
      "    assert e.errno == errno.ENOENT, ('proc reopen', e)",
      'os.close(fd)',
      "assert os.stat(f'{d}/victim').st_size == 12",
      "fd = os.open(f'{d}/gone', os.O_RDWR | os.O_CREAT, 0o644)",
      "os.write(fd, b'12345')",
      "os.unlink(f'{d}/gone')",
      'st = os.fstat(fd)',
      "assert st.st_size == 5 and st.st_nlink == 0, ('removed', st)",
      "os.write(fd, b'678')",
      "assert os.fstat(fd).st_size == 8",
      'os.close(fd)',
      "print('ok')",
    ], [`${m.dir}/managed`]);
    assert.equal(py.code, 0, py.stderr);
    assert.equal(py.stdout.trim(), 'ok');
  });

  test('fstat of an open directory after rmdir or `mv -T dA dB` answers as ext4: a directory, st_nlink 0, listed empty', async () => {
    // libfuse has no path for the removed (or replaced) directory: its getattr answered ENOENT,
    // which the channel's ESTALE (7.) turned into an ESTALE fstat never repeats. The channel now
    // names open directories too (scripts/fix-fuse-native.mjs 9.). Listing it is empty, as on
    // ext4 (the kernel answers getdents of a removed directory itself).
    const py = await runPython([
      'import os, stat, sys',
      'd = sys.argv[1]',
      "os.mkdir(f'{d}/rmd')",
      "fd = os.open(f'{d}/rmd', os.O_RDONLY | os.O_DIRECTORY)",
      "assert stat.S_ISDIR(os.fstat(fd).st_mode)",
      "os.rmdir(f'{d}/rmd')",
      'st = os.fstat(fd)',
      "assert stat.S_ISDIR(st.st_mode) and st.st_nlink == 0, ('removed', st)",
      "assert os.listdir(fd) == [], ('removed', os.listdir(fd))",
      'os.close(fd)',
      "os.mkdir(f'{d}/dA')",
      "os.mkdir(f'{d}/dB')",
      "fd = os.open(f'{d}/dB', os.O_RDONLY | os.O_DIRECTORY)",
      "os.rename(f'{d}/dA', f'{d}/dB')",
      'st = os.fstat(fd)',
      "assert stat.S_ISDIR(st.st_mode) and st.st_nlink == 0, ('replaced', st)",
      "assert os.listdir(fd) == [], ('replaced', os.listdir(fd))",
      'os.close(fd)',
      // The open directory that keeps its path still answers by path, as a live directory.
      "fd = os.open(f'{d}/dB', os.O_RDONLY | os.O_DIRECTORY)",
      "with open(f'{d}/dB/inside', 'wb') as h: h.write(b'x')",
      'st = os.fstat(fd)',
      "assert stat.S_ISDIR(st.st_mode) and st.st_nlink >= 2, ('live', st)",
      "assert os.listdir(fd) == ['inside'], os.listdir(fd)",
      'os.close(fd)',
      "print('ok')",
    ], [`${m.dir}/managed`]);
    assert.equal(py.code, 0, py.stderr);
    assert.equal(py.stdout.trim(), 'ok');
  });

  test('overwrite makes version 2 and leaves version 1 intact', async () => {
    const f = `${m.dir}/sts/versioned.txt`;
    assert.equal((await sh(`echo one > '${f}'`)).code, 0);
    const id = await idOf(f);
    const v1 = await synapseBytes(id);
    assert.equal((await sh(`echo two > '${f}'`)).code, 0);
    assert.equal(await idOf(f), id, 'same synID');
    const versions = stack.seed.versions(id);
    assert.equal(versions.length, 2);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'two\n');
    const old = stack.seed.fileHandle(String(versions.find((v) => v.versionNumber === 1)!.fileHandleId));
    assert.equal((await stack.seed.objectBytes(old.bucketName, old.key)).toString(), 'one\n');
    assert.equal(md5(v1.bytes), md5(Buffer.from('one\n')));
    // Unchanged bytes make no version.
    assert.equal((await sh(`echo two > '${f}'`)).code, 0);
    assert.equal(stack.seed.versions(id).length, 2);
  });

  test('two processes appending to one file at once (parallel jobs, `>>`): every line is published, no NUL bytes', async () => {
    // QA: the two opens raced in the mount and each built its own copy of the file; one close
    // failed (ESTALE) and the published file had NUL bytes where the other's lines belonged.
    // With --metadata-ttl 0 every open asks Synapse for the folder, so the two opens interleave.
    // Slow listings keep both opens in the mount at once.
    const w = await mountForeground(stack, projectId, ['--metadata-ttl', '0', '--spool-dir', path.join(scratch, 'spool-append2')]);
    try {
      stack.dev.addFault({ target: 'synapse', pathPattern: '/entity/children', latencyMs: 300, rate: 1 });
      await appendTogether(w);
    } finally {
      stack.dev.clearFaults();
      await w.unmount();
    }
  });

  async function appendTogether(w: Mounted): Promise<void> {
    for (const folder of ['sts', 'managed']) {
      const f = `${w.dir}/${folder}/jobs.log`;
      assert.equal((await sh(`echo header > '${f}'`)).code, 0);
      const py = await runPython([
        'import os, sys, multiprocessing as mp',
        'p = sys.argv[1]',
        'bar = mp.Barrier(2)',
        'def job(tag, q):',
        '    bar.wait()',
        '    fd = os.open(p, os.O_WRONLY | os.O_APPEND)',
        '    bar.wait()',
        "    for i in range(100): os.write(fd, f'{tag} {i}\\n'.encode())",
        '    try:',
        "        os.close(fd); q.put('ok')",
        '    except OSError as e:',
        '        q.put(str(e))',
        'q = mp.Queue()',
        "ps = [mp.Process(target=job, args=(t, q)) for t in 'AB']",
        '[x.start() for x in ps]',
        '[x.join() for x in ps]',
        'print(sorted(q.get() for _ in ps))',
      ], [f]);
      assert.equal(py.code, 0, py.stderr);
      assert.equal(py.stdout.trim(), "['ok', 'ok']", `${folder}: both closes succeed`);
      const text = (await sh(`cat '${f}'`)).stdout;
      assert.ok(!text.includes('\0'), `${folder}: no NUL bytes`);
      const lines = text.split('\n').filter((l) => l.length > 0);
      assert.equal(lines[0], 'header');
      for (const tag of ['A', 'B']) {
        assert.deepEqual(lines.filter((l) => l.startsWith(`${tag} `)), Array.from({ length: 100 }, (_, i) => `${tag} ${i}`), `${folder}: job ${tag}'s lines, in order`);
      }
      assert.equal(lines.length, 201);
    }
  }

  test('append with >> and python seek-and-rewrite', async () => {
    const f = `${m.dir}/sts/log.txt`;
    assert.equal((await sh(`printf 'abc\\n' > '${f}' && printf 'def\\n' >> '${f}'`)).code, 0);
    assert.equal((await sh(`cat '${f}'`)).stdout, 'abc\ndef\n');
    const py = await sh(`python3 -c "
f=open('${f}','r+b'); f.seek(1); f.write(b'ZZ'); f.seek(0,2); f.write(b'end'); f.close()"`);
    assert.equal(py.code, 0, py.stderr);
    assert.equal((await sh(`cat '${f}'`)).stdout, 'aZZ\ndef\nend');
    assert.equal((await synapseBytes(await idOf(f))).bytes.toString(), 'aZZ\ndef\nend');
  });

  test('a streamed file read back while open (its parts already on S3), then rewritten in place, publishes exactly what was written', async () => {
    // Streamed bytes are kept only in the upload (write-handle.ts): the read makes the mount
    // bring them back from S3 into the spool, and writing goes on from there.
    const f = `${m.dir}/sts/readback.bin`;
    const py = await sh(`python3 -c "
import hashlib
blk = bytes(range(256)) * 4096
f = open('${f}', 'w+b')
for i in range(40):
    f.write(blk)
f.flush()
f.seek(5 * 1048576 + 7)
got = f.read(100)
assert got == blk[7:107], 'read-back of a streamed part'
f.seek(0, 2); f.write(b'tail')
f.seek(100); f.write(b'ZZ')
f.close()
want = bytearray(blk * 40 + b'tail'); want[100:102] = b'ZZ'
print(hashlib.md5(want).hexdigest())"`, { timeoutMs: 120_000 });
    assert.equal(py.code, 0, py.stderr);
    const want = py.stdout.trim();
    assert.equal(md5((await synapseBytes(await idOf(f))).bytes), want, 'Synapse has the exact bytes');
    assert.equal((await sh(`md5sum < '${f}'`)).stdout.split(' ')[0], want, 'the mount reads them back');
  });

  test('a streamed file rewritten behind its parts, truncated mid-stream, or moved to another folder while open goes to the spool, publishes exactly what was written, and the spool ends empty', async () => {
    // Each file streams several 16 MiB parts to S3 first, then does what a streamed upload
    // cannot: write behind the sent parts (seek), cut them off (truncate), or move to a folder
    // in other storage (mv). The mount moves each to the spool and goes on; Synapse must get the
    // final bytes exactly. Debug logging says which of them spilled, and why.
    const spool = path.join(scratch, 'spool-spill');
    const level = process.env['SYNAPSE_MOUNT_TEST_LOG'];
    process.env['SYNAPSE_MOUNT_TEST_LOG'] = 'debug';
    const ms = await mountForeground(stack, projectId, ['--spool-dir', spool]).finally(() => {
      if (level === undefined) delete process.env['SYNAPSE_MOUNT_TEST_LOG'];
      else process.env['SYNAPSE_MOUNT_TEST_LOG'] = level;
    });
    try {
      const py = [
        'import hashlib, os, sys',
        'd = sys.argv[1]',
        'blk = bytes(range(256)) * 4096  # 1 MiB',
        'def stream(f, mib):',
        '    for _ in range(mib): f.write(blk)',
        '    f.flush()',
        'out = {}',
        "f = open(os.path.join(d, 'sts', 'spill-seek.bin'), 'w+b', buffering=0); stream(f, 40)",
        "f.seek(3 * 1048576 + 5); f.write(b'SEEK'); f.seek(0, 2); f.write(b'end'); f.close()",
        "w = bytearray(blk * 40 + b'end'); w[3 * 1048576 + 5:3 * 1048576 + 9] = b'SEEK'; out['sts/spill-seek.bin'] = w",
        "f = open(os.path.join(d, 'sts', 'spill-trunc.bin'), 'w+b', buffering=0); stream(f, 40)",
        "f.truncate(20 * 1048576 + 3); f.seek(0, 2); f.write(b'after'); f.close()",
        "out['sts/spill-trunc.bin'] = (blk * 40)[:20 * 1048576 + 3] + b'after'",
        "f = open(os.path.join(d, 'sts', 'spill-mv.bin'), 'w+b', buffering=0); stream(f, 40)",
        "os.rename(os.path.join(d, 'sts', 'spill-mv.bin'), os.path.join(d, 'managed', 'spill-mv.bin'))",
        "f.write(b'moved'); f.close()",
        "out['managed/spill-mv.bin'] = blk * 40 + b'moved'",
        "print(' '.join(k + '=' + hashlib.md5(v).hexdigest() for k, v in out.items()))",
      ];
      const r = await runPython(py, [ms.dir], 180_000);
      assert.equal(r.code, 0, `the writer finished: ${r.stderr}\n${ms.output()}`);
      for (const pair of r.stdout.trim().split(' ')) {
        const [name, want] = pair.split('=') as [string, string];
        const p = `${ms.dir}/${name}`;
        assert.equal((await sh(`md5sum < '${p}'`)).stdout.split(/\s+/)[0], want, `${name} reads back through the mount`);
        assert.equal(md5((await synapseBytes(await idOf(p))).bytes), want, `${name}: Synapse has the exact bytes`);
      }
      assert.equal(await childId(stack, stsId, 'spill-mv.bin'), undefined, 'nothing published in the folder it left');
      assert.ok(await childId(stack, managedId, 'spill-mv.bin'), 'published in the folder it moved to');
      const spilled = [...ms.output().matchAll(/"why":"([^"]+)"[^\n]*streamed bytes move to the spool/g)].map((x) => x[1]);
      for (const why of ['non-sequential write', 'truncate', 'move to another folder']) assert.ok(spilled.includes(why), `a spill for a ${why}: ${spilled.join(', ')}`);
      // Published files leave nothing behind: no spool copy, no journal entry, no open upload.
      for (const sub of ['files', 'journal', 'uploads']) {
        assert.equal((await sh(`test -d '${path.join(spool, sub)}'`)).code, 0, `the spool has ${sub}/ (the mount used it)`);
        const left = (await sh(`ls -A '${path.join(spool, sub)}' 2>/dev/null`)).stdout.trim();
        assert.equal(left, '', `spool ${sub}/ is empty after the closes`);
      }
    } finally {
      await ms.unmount();
    }
  });

  test('touch in STS storage publishes an empty file', async () => {
    assert.equal((await sh(`touch '${m.dir}/sts/.gitkeep'`)).code, 0);
    const { fh } = await synapseBytes(await waitForId(`${m.dir}/sts/.gitkeep`));
    assert.equal(Number(fh.contentSize), 0);
  });

  test('rsync -a of a tree; a second rsync -a transfers nothing and makes no version', async () => {
    const tree = path.join(scratch, 'tree');
    await sh(`mkdir -p '${tree}/a/b' && echo 1 > '${tree}/top.txt' && echo 2 > '${tree}/a/mid.txt' && head -c 100000 /dev/urandom > '${tree}/a/b/deep.bin'`);
    const r1 = await sh(`rsync -a '${tree}/' '${m.dir}/sts/tree/'`, { timeoutMs: 120_000 });
    assert.equal(r1.code, 0, r1.stderr);
    const diff = await sh(`diff -r '${tree}' '${m.dir}/sts/tree'`);
    assert.equal(diff.code, 0, diff.stdout + diff.stderr);
    const id = await idOf(`${m.dir}/sts/tree/a/b/deep.bin`);
    const before = stack.seed.versions(id).length;
    const r2 = await sh(`rsync -a -i '${tree}/' '${m.dir}/sts/tree/'`);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.stdout.trim(), '', `second rsync itemized nothing: ${r2.stdout}`);
    assert.equal(stack.seed.versions(id).length, before);
  });

  test('after a remount with the same spool, rsync -a still transfers nothing (mtimes kept on this machine)', async () => {
    const tree = path.join(scratch, 'tree-remount');
    await sh(`mkdir -p '${tree}/a' && echo 1 > '${tree}/top.txt' && head -c 70000 /dev/urandom > '${tree}/a/data.bin' && touch -d '2021-03-04 05:06:07' '${tree}/top.txt'`);
    const spool = path.join(scratch, 'spool-remount');
    const first = await mountForeground(stack, projectId, ['--spool-dir', spool]);
    let id: string;
    try {
      const r1 = await sh(`rsync -a '${tree}/' '${first.dir}/sts/tree-remount/'`, { timeoutMs: 120_000 });
      assert.equal(r1.code, 0, r1.stderr);
      // Changed at the source, so the second rsync replaces the file's content (temp file renamed over it).
      await sh(`echo 2 > '${tree}/top.txt' && touch -d '2022-03-04 05:06:07' '${tree}/top.txt'`);
      const r2 = await sh(`rsync -a '${tree}/' '${first.dir}/sts/tree-remount/'`, { timeoutMs: 120_000 });
      assert.equal(r2.code, 0, r2.stderr);
      id = await idOf(`${first.dir}/sts/tree-remount/top.txt`);
      // QA: `touch -d` on a file already there (coreutils opens it for writing, then futimens),
      // and `cp -p` onto identical bytes (no new version): both times were lost at remount.
      const one = path.join(scratch, 'remount-one.txt');
      await sh(`echo same > '${one}' && cp '${one}' '${first.dir}/sts/touched.txt' && TZ=UTC touch -m -d '2018-01-02 03:04:05' '${first.dir}/sts/touched.txt'`);
      await sh(`cp '${one}' '${first.dir}/sts/copied.txt' && TZ=UTC touch -d '2017-01-02 03:04:05' '${one}' && cp -p '${one}' '${first.dir}/sts/copied.txt'`);
    } finally {
      await first.unmount();
    }
    const versions = stack.seed.versions(id).length;
    const again = await mountForeground(stack, projectId, ['--spool-dir', spool]);
    try {
      const times = await sh(`stat -c %Y '${again.dir}/sts/tree-remount/top.txt' '${tree}/top.txt'`);
      const [shown, source] = times.stdout.trim().split('\n');
      assert.equal(shown, source, 'the time rsync set, not Synapse\'s modifiedOn');
      const kept = await sh(`stat -c %Y '${again.dir}/sts/touched.txt' '${again.dir}/sts/copied.txt'`);
      assert.deepEqual(kept.stdout.trim().split('\n'), [String(Date.parse('2018-01-02T03:04:05Z') / 1000), String(Date.parse('2017-01-02T03:04:05Z') / 1000)]);
      const r3 = await sh(`rsync -a -i '${tree}/' '${again.dir}/sts/tree-remount/'`, { timeoutMs: 120_000 });
      assert.equal(r3.code, 0, r3.stderr);
      assert.equal(r3.stdout.trim(), '', `rsync after the remount itemized nothing: ${r3.stdout}`);
      assert.equal(stack.seed.versions(id).length, versions);
      // A folder's time moves when a file is added through the mount, as on a local disk (it
      // showed the time rsync gave it, from the source).
      const folderTime = async (): Promise<number> => Number((await sh(`stat -c %.3Y '${again.dir}/sts/tree-remount/a'`)).stdout.trim()) * 1000;
      const before = await folderTime();
      const t0 = Date.now();
      assert.equal((await sh(`echo new > '${again.dir}/sts/tree-remount/a/added.txt'`)).code, 0);
      const after = await folderTime();
      assert.ok(after >= t0 && after > before, `folder mtime ${before} → ${after} (file added at ${t0})`);
    } finally {
      await again.unmount();
    }
  });

  test('cp -p keeps the mtime; tar x works', async () => {
    const src = path.join(scratch, 'dated.txt');
    await sh(`echo dated > '${src}' && touch -d '2020-01-02 03:04:05' '${src}'`);
    const cp = await sh(`cp -p '${src}' '${m.dir}/sts/dated.txt' && stat -c %Y '${m.dir}/sts/dated.txt' '${src}'`);
    assert.equal(cp.code, 0, cp.stderr);
    const [a, b] = cp.stdout.trim().split('\n');
    assert.equal(a, b);
    const tar = await sh(`cd '${scratch}' && touch -d '2019-05-06 07:08:09' tree/* && tar cf t.tar tree && mkdir -p '${m.dir}/sts/untar' && tar xf t.tar -C '${m.dir}/sts/untar' && diff -r tree '${m.dir}/sts/untar/tree'`);
    assert.equal(tar.code, 0, tar.stderr + tar.stdout);
    // tar sets mtimes alone (futimens with the access time UTIME_OMIT), as `touch -m` does:
    // libfuse 2 dropped those calls (QA). `touch -a` leaves the mtime alone.
    const times = await sh(`cd '${scratch}/tree' && for f in *; do [ -f "$f" ] || continue; echo "$(stat -c %Y "$f") $(stat -c %Y '${m.dir}/sts/untar/tree/'"$f")"; done`);
    for (const line of times.stdout.trim().split('\n')) {
      const [want, got] = line.split(' ');
      assert.equal(got, want, `tar x kept the mtime: ${times.stdout}`);
    }
    const f = `${m.dir}/sts/dated.txt`;
    const touched = await sh(`touch -m -d '2018-03-04 05:06:07' '${f}' && stat -c %Y '${f}' && touch -a -d '2001-01-01' '${f}' && stat -c %Y '${f}'`);
    assert.equal(touched.code, 0, touched.stderr);
    const want = String(Math.floor(new Date(2018, 2, 4, 5, 6, 7).getTime() / 1000));
    assert.deepEqual(touched.stdout.trim().split('\n'), [want, want]);
    // Written afterwards: the mtime is the write's, not the one touch set (QA).
    const rewritten = await sh(`echo new > '${f}' && stat -c %Y '${f}'`);
    assert.ok(Number(rewritten.stdout.trim()) > Date.now() / 1000 - 300, `mtime after a write: ${rewritten.stdout}`);
  });

  test('git clone into the mount, then git fsck', async () => {
    const repo = path.join(scratch, 'repo');
    const mk = await sh(`git init -q '${repo}' && cd '${repo}' && echo hi > a.txt && mkdir d && echo x > d/b.txt && git add . && git -c user.email=t@e -c user.name=t commit -qm init`);
    assert.equal(mk.code, 0, mk.stderr);
    const clone = await sh(`git clone -q --no-hardlinks '${repo}' '${m.dir}/sts/clone' && cd '${m.dir}/sts/clone' && git fsck && cat a.txt`, { timeoutMs: 120_000 });
    assert.equal(clone.code, 0, clone.stderr);
    assert.match(clone.stdout, /hi/);
  });

  test('rename onto an existing file keeps the target synID and adds a version', async () => {
    const a = `${m.dir}/sts/target.txt`;
    const b = `${m.dir}/sts/incoming.txt`;
    await sh(`echo old > '${a}' && echo new > '${b}'`);
    const targetId = await idOf(a);
    const mv = await sh(`mv '${b}' '${a}'`);
    assert.equal(mv.code, 0, mv.stderr);
    assert.equal(await idOf(a), targetId);
    assert.equal((await sh(`cat '${a}'`)).stdout, 'new\n');
    assert.equal(stack.seed.versions(targetId).length, 2);
    assert.equal((await sh(`ls '${b}'`)).code, 2, 'source is gone');
  });

  test('mv out of the STS folder falls back to copy + delete (EXDEV)', async () => {
    await sh(`echo moving > '${m.dir}/sts/moveme.txt'`);
    const oldId = await idOf(`${m.dir}/sts/moveme.txt`);
    const mv = await sh(`mv '${m.dir}/sts/moveme.txt' '${m.dir}/managed/moveme.txt'`);
    assert.equal(mv.code, 0, mv.stderr);
    assert.equal((await sh(`cat '${m.dir}/managed/moveme.txt'`)).stdout, 'moving\n');
    assert.notEqual(await idOf(`${m.dir}/managed/moveme.txt`), oldId);
    assert.equal((await sh(`ls '${m.dir}/sts/moveme.txt'`)).code, 2);
  });

  /** rename(2) from Python (mv would fall back to copying): 'renamed' or the errno's name. */
  async function renameOutcome(src: string, dest: string): Promise<string> {
    const py = await runPython([
      'import errno, os, sys',
      'try:',
      '    os.rename(sys.argv[1], sys.argv[2])',
      "    print('renamed')",
      'except OSError as e:',
      "    print(errno.errorcode[e.errno])",
    ], [src, dest]);
    assert.equal(py.code, 0, py.stderr);
    return py.stdout.trim();
  }

  test('a folder renamed onto an empty folder replaces it; one refused (into the STS folder: EXDEV) leaves the target as it was', async () => {
    // Synapse has no rename-over: the empty target is deleted, then the folder moved. A move
    // Synapse then refused had already deleted the target: os.rename failed with EXDEV and the
    // target folder was gone from Synapse (its synID, annotations and sharing with it).
    const d = `${m.dir}/managed`;
    assert.equal((await sh(`mkdir '${d}/rdA' '${d}/rdB' && echo a > '${d}/rdA/f.txt'`)).code, 0);
    const aId = await waitForId(`${d}/rdA`);
    assert.equal((await sh(`mv -T '${d}/rdA' '${d}/rdB'`)).code, 0);
    assert.equal(await idOf(`${d}/rdB`), aId);
    assert.equal((await sh(`cat '${d}/rdB/f.txt'`)).stdout, 'a\n');
    // The permission checks of what the mount itself created ask by the folder's ACL, once: a
    // new entity has no ACL of its own (before, each new folder or file cost a request of its own).
    const bundles = (): number => stack.dev.stats().synapse.byRoute['POST /entity/{id}/bundle2'] ?? 0;
    const before = bundles();
    const loop = await sh(`cd '${d}' && mkdir rdD && for i in 1 2 3; do mkdir rdC && mv -T rdC rdD && printf $i > rdB/t$i && mv rdB/t$i rdB/f.txt || exit 1; done`);
    assert.equal(loop.code, 0, loop.stderr);
    assert.equal((await sh(`cat '${d}/rdB/f.txt'`)).stdout, '3');
    assert.ok(bundles() - before <= 1, `${bundles() - before} permission requests for 6 renames of new entities`);
    // Likewise in the mount's root, a project: a project always has an ACL of its own.
    const atRoot = bundles();
    const rootLoop = await sh(`cd '${m.dir}' && for i in 1 2 3; do printf $i > rt$i && mv rt$i rootf.txt || exit 1; done; rm rootf.txt`);
    assert.equal(rootLoop.code, 0, rootLoop.stderr);
    assert.ok(bundles() - atRoot <= 1, `${bundles() - atRoot} permission requests in the root`);

    assert.equal((await sh(`mkdir '${d}/xA' '${m.dir}/sts/xB' && echo x > '${d}/xA/g.txt'`)).code, 0);
    const bId = await waitForId(`${m.dir}/sts/xB`);
    assert.equal(await renameOutcome(`${d}/xA`, `${m.dir}/sts/xB`), 'EXDEV');
    assert.equal(await idOf(`${m.dir}/sts/xB`), bId, 'the target folder is the one it was');
    assert.equal(stack.seed.entity(bId).name, 'xB');
    assert.equal((await sh(`cat '${d}/xA/g.txt'`)).stdout, 'x\n');
  });

  test('a folder rename Synapse refuses after the target folder was deleted puts the target back (trash can restore)', async () => {
    // The target goes first (Synapse has no rename-over); a move that then failed (here a 409,
    // as when someone else took the name or changed the folder meanwhile) left the empty target
    // in the trash can: rename failed and the folder, its synID and sharing, were gone.
    const d = `${m.dir}/managed`;
    assert.equal((await sh(`mkdir '${d}/ryA' '${d}/ryB' && echo y > '${d}/ryA/h.txt'`)).code, 0);
    const aId = await waitForId(`${d}/ryA`);
    const bId = await waitForId(`${d}/ryB`);
    stack.dev.addFault({ target: 'synapse', pathPattern: `/entity/${aId}`, method: 'PUT', status: 409, count: 1 });
    try {
      assert.equal(await renameOutcome(`${d}/ryA`, `${d}/ryB`), 'EEXIST');
    } finally {
      stack.dev.clearFaults();
    }
    assert.equal(stack.seed.entity(bId).parentId, stack.seed.entity(aId).parentId, 'the target is back in its folder');
    assert.equal(stack.seed.entity(bId).name, 'ryB');
    assert.equal(await idOf(`${d}/ryB`), bId, 'the mount shows the target again');
    assert.equal(await idOf(`${d}/ryA`), aId);
    assert.equal((await sh(`cat '${d}/ryA/h.txt'`)).stdout, 'y\n');
    // And the rename works once Synapse takes it.
    assert.equal((await sh(`mv -T '${d}/ryA' '${d}/ryB'`)).code, 0);
    assert.equal(await idOf(`${d}/ryB`), aId);

    // A target shared by an ACL of its own stays in the trash can: Synapse drops that ACL there,
    // and restored it would be open to whatever its parent allows (review).
    const fresh = await mountForeground(stack, projectId, ['--metadata-ttl', '0', '--spool-dir', path.join(scratch, 'spool-own-acl')]);
    try {
      const fd = `${fresh.dir}/managed`;
      assert.equal((await sh(`mkdir '${fd}/rzA'`)).code, 0);
      const zA = await waitForId(`${fd}/rzA`);
      const zB = (await stack.seed.folder(managedId, 'rzB')).id;
      stack.seed.grant(zB, stack.secondUserId, ['READ']);
      stack.dev.addFault({ target: 'synapse', pathPattern: `/entity/${zA}`, method: 'PUT', status: 409, count: 1 });
      try {
        assert.equal(await renameOutcome(`${fd}/rzA`, `${fd}/rzB`), 'EEXIST');
      } finally {
        stack.dev.clearFaults();
      }
      assert.throws(() => stack.seed.entity(zB), /no entity/, 'left in the trash can');
      assert.match(fresh.output(), /sharing settings of its own, which Synapse does not bring back, so it is left in your Synapse trash can/);
      assert.equal(await idOf(`${fd}/rzA`), zA);
      // A restore Synapse refuses (someone took the name meanwhile): the log says where it went,
      // and the mount does not show the folder that is no longer there.
      assert.equal((await sh(`mkdir '${fd}/rwB'`)).code, 0);
      const wB = await waitForId(`${fd}/rwB`);
      stack.dev.addFault({ target: 'synapse', pathPattern: `/entity/${zA}`, method: 'PUT', status: 409, count: 1 });
      stack.dev.addFault({ target: 'synapse', pathPattern: `/trashcan/restore/${wB}`, method: 'PUT', status: 409, count: 1 });
      try {
        assert.equal(await renameOutcome(`${fd}/rzA`, `${fd}/rwB`), 'EEXIST');
      } finally {
        stack.dev.clearFaults();
      }
      assert.match(fresh.output(), /the target could not be restored: it is in your Synapse trash can/);
      assert.equal((await sh(`ls '${fd}/rwB'`)).code, 2, 'not shown: it is in the trash can');
    } finally {
      await fresh.unmount();
    }
  });

  test('names another client took after this mount listed the folder: mv onto the file replaces it, mkdir -p goes on into the folder', async () => {
    // QA (two mounts): `mv out.csv.tmp out.csv` failed with EEXIST (Synapse's 409) — rename(2)
    // never answers that for a file — and left out.csv.tmp behind; `mkdir -p` of a folder made
    // elsewhere failed (EEXIST, then ENOENT for the folder) until the listing's TTL ran out.
    const d = `${m.dir}/managed/taken`;
    assert.equal((await sh(`mkdir '${d}' && ls '${d}'`)).code, 0); // listed: empty
    const folderId = await waitForId(d);
    const theirs = await stack.seed.file(folderId, 'out.csv', Buffer.from('theirs\n'));
    assert.equal((await sh(`echo mine > '${d}/out.csv.tmp'`)).code, 0);
    const mv = await sh(`mv '${d}/out.csv.tmp' '${d}/out.csv'`);
    assert.equal(mv.code, 0, mv.stderr);
    assert.equal(await idOf(`${d}/out.csv`), theirs.id, 'their file, with our bytes as its next version');
    assert.equal((await sh(`cat '${d}/out.csv'`)).stdout, 'mine\n');
    assert.equal(stack.seed.versions(theirs.id).length, 2);
    assert.equal((await sh(`ls -A '${d}'`)).stdout, 'out.csv\n', 'no temporary file left');

    const results = await stack.seed.folder(folderId, 'results');
    const mk = await sh(`mkdir -p '${d}/results/run1' && echo ok > '${d}/results/run1/f.txt'`);
    assert.equal(mk.code, 0, mk.stderr);
    assert.equal(await idOf(`${d}/results`), results.id, 'into their folder');
  });

  test('SQLite killed mid-transaction (pages already in the database): Synapse keeps the committed state; the next open through the mount rolls it back and publishes it sound', async () => {
    // Review (session 29): with the journal kept in the mount only, the kernel's close of the
    // killed program's database published half a transaction nothing outside could undo.
    const db = `${m.dir}/managed/killed.db`;
    const setup = await sh(`python3 -c "
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute('create table t (x)')
c.executemany('insert into t values (?)', [(i,) for i in range(100)])
c.commit(); c.close()
" '${db}'`, { timeoutMs: 60_000 });
    assert.equal(setup.code, 0, setup.stderr);
    const id = await idOf(db);
    const committed = (await synapseBytes(id)).fh.contentMd5;
    // A tiny page cache: the transaction's pages spill into the database before any commit; then kill -9.
    const killed = await sh(`python3 -c "
import os, signal, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute('pragma cache_size=1')
c.execute('begin')
c.executemany('insert into t values (?)', [(i, ) for i in range(20000)])
c.execute('update t set x = -1')
os.kill(os.getpid(), signal.SIGKILL)
" '${db}'`, { timeoutMs: 60_000 });
    assert.notEqual(killed.code, 0);
    assert.equal((await synapseBytes(id)).fh.contentMd5, committed, 'Synapse keeps the committed database');
    const open = await sh(`python3 -c "
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute('pragma integrity_check').fetchone()[0], c.execute('select count(*), min(x) from t').fetchone())
c.execute('insert into t values (100)'); c.commit(); c.close()
" '${db}' && ls -A '${m.dir}/managed' | grep -c killed.db-journal`, { timeoutMs: 60_000 });
    assert.equal(open.stdout, 'ok (100, 0)\n0\n', open.stderr);
    const copy = path.join(scratch, 'killed-from-synapse.db');
    await writeFile(copy, (await synapseBytes(id)).bytes);
    const check = await sh(`python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('pragma integrity_check').fetchone()[0], c.execute('select count(*) from t').fetchone()[0])" '${copy}'`);
    assert.equal(check.stdout, 'ok 101\n', check.stderr);
  });

  test('vim can save a file (scratch files stay local)', async () => {
    const f = `${m.dir}/sts/edit.txt`;
    await sh(`printf 'hello world\\n' > '${f}'`);
    const id = await idOf(f);
    const vim = await sh(`vim -E -s -n -c '%s/world/there/' -c 'wq' '${f}'`, { timeoutMs: 30_000 });
    assert.equal(vim.code, 0, vim.stderr + vim.stdout);
    assert.equal((await sh(`cat '${f}'`)).stdout, 'hello there\n');
    assert.equal(await idOf(f), id, 'still the same entity');
    const ls = await sh(`ls -a '${m.dir}/sts'`);
    assert.doesNotMatch(ls.stdout, /~$|\.swp/m);
    // Saves in quick succession, with a backup: each one lands (QA: the mtime changed after the
    // publish, vim saw "changed since reading it" and skipped the write, in 4 of 5 runs).
    for (const n of [1, 2, 3]) {
      const save = await sh(`vim -E -s -n -u NONE -c 'set backup backupcopy=no' -c 'normal Goline${n}' -c 'wq' '${f}'`, { timeoutMs: 30_000 });
      assert.equal(save.code, 0, save.stderr + save.stdout);
    }
    assert.equal((await sh(`cat '${f}'`)).stdout, 'hello there\nline1\nline2\nline3\n');
    assert.equal(await idOf(f), id);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'hello there\nline1\nline2\nline3\n');
  });

  test('truncate -s publishes when truncate(1) closes the file, not at the later release', async () => {
    const f = `${m.dir}/sts/trunc.txt`;
    assert.equal((await sh(`printf 'BBBBBBCC' > '${f}'`)).code, 0);
    const id = await idOf(f);
    assert.equal((await sh(`truncate -s 3 '${f}'`)).code, 0);
    // No wait: close() returned only once the version was in Synapse.
    assert.equal((await synapseBytes(id)).bytes.toString(), 'BBB');
  });

  test('mv f f~ hides f without touching Synapse; mv f~ g moves the file; rm f~ removes it (rm -rf works)', async () => {
    const dir = `${m.dir}/sts`;
    await sh(`printf 'keep me\\n' > '${dir}/bk.txt'`);
    const id = await idOf(`${dir}/bk.txt`);
    assert.equal((await sh(`mv '${dir}/bk.txt' '${dir}/bk.txt~'`)).code, 0);
    const names = async (): Promise<string[]> => (await sh(`ls -a '${dir}'`)).stdout.split('\n').filter((n) => n.startsWith('bk'));
    assert.deepEqual(await names(), ['bk.txt~'], 'only the backup name is listed');
    assert.equal((await sh(`cat '${dir}/bk.txt~'`)).stdout, 'keep me\n');
    assert.equal(await childId(stack, stsId, 'bk.txt'), id, 'untouched in Synapse');

    assert.equal((await sh(`mv '${dir}/bk.txt~' '${dir}/bk-moved.txt'`)).code, 0);
    assert.deepEqual(await names(), ['bk-moved.txt']);
    assert.equal(await idOf(`${dir}/bk-moved.txt`), id, 'the same entity, moved');
    assert.equal((await sh(`cat '${dir}/bk-moved.txt'`)).stdout, 'keep me\n');

    // rm of the only name left (QA: the file showed again, and rm -rf said "Directory not empty").
    assert.equal((await sh(`mkdir '${dir}/bkdir' && printf x > '${dir}/bkdir/f' && mv '${dir}/bkdir/f' '${dir}/bkdir/f~'`)).code, 0);
    const rmrf = await sh(`rm -rf '${dir}/bkdir'`);
    assert.equal(rmrf.code, 0, rmrf.stderr);
    assert.equal(await childId(stack, stsId, 'bkdir'), undefined);
  });

  test('mv -b and rsync -b keep a backup and give the file a new version; a data file named 4913 is published', async () => {
    const dir = `${m.dir}/sts/backups`;
    assert.equal((await sh(`mkdir -p '${dir}' && printf 'one\\n' > '${dir}/f.txt' && printf 'two\\n' > '${dir}/g.txt'`)).code, 0);
    const id = await idOf(`${dir}/f.txt`);
    // QA: "cannot move … File exists" — Synapse still held the name the backup hid.
    const mv = await sh(`mv -b '${dir}/g.txt' '${dir}/f.txt'`);
    assert.equal(mv.code, 0, mv.stderr);
    assert.equal((await sh(`cat '${dir}/f.txt'`)).stdout, 'two\n');
    assert.equal((await sh(`cat '${dir}/f.txt~'`)).stdout, 'one\n', 'the backup shows the old bytes');
    assert.equal(await idOf(`${dir}/f.txt`), id, 'a new version of the same entity');
    const src = path.join(scratch, 'rsync-b');
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'f.txt'), 'three\n');
    await writeFile(path.join(src, '4913'), 'sample 4913\n');
    const rs = await sh(`rm -f '${dir}/f.txt~' && rsync -rb '${src}/' '${dir}/'`, { timeoutMs: 60_000 });
    assert.equal(rs.code, 0, rs.stderr);
    assert.equal((await sh(`cat '${dir}/f.txt'`)).stdout, 'three\n');
    assert.equal((await sh(`cat '${dir}/f.txt~'`)).stdout, 'two\n');
    assert.equal(await idOf(`${dir}/f.txt`), id);
    // QA: `4913` (vim's probe name) was kept local and never published; rsync left its temp entity.
    const sampleId = await waitForId(`${dir}/4913`);
    assert.match(sampleId, /^syn\d+$/);
    assert.equal((await sh(`cat '${dir}/4913'`)).stdout, 'sample 4913\n');
    const ls = await sh(`ls -a '${dir}'`);
    assert.deepEqual(ls.stdout.split('\n').filter(Boolean).sort(), ['.', '..', '4913', 'f.txt', 'f.txt~']);
    // A backup view of a managed-storage file moved within the STS folder: Synapse refuses the
    // move (EXDEV), so mv copies (QA: EXDEV came after the view was taken apart; "cannot stat").
    assert.equal((await sh(`printf 'XS\\n' > '${m.dir}/managed/xs.txt' && mv '${m.dir}/managed/xs.txt' '${dir}/xs.txt~'`)).code, 0);
    const across = await sh(`mv '${dir}/xs.txt~' '${dir}/ys.txt'`);
    assert.equal(across.code, 0, across.stderr);
    assert.equal((await sh(`cat '${dir}/ys.txt'`)).stdout, 'XS\n');
  });

  /** `tail -f` of `file` in the background, from its first line unless `fromStart` is false. */
  function tailFollowing(file: string, label: string, fromStart = true): { printed: (text: string, what: string) => Promise<void>; output: () => Promise<string>; stop: () => Promise<void> } {
    const out = path.join(scratch, `tail-${label}.out`);
    const pidFile = path.join(scratch, `tail-${label}.pid`);
    // tail polls (no inotify events cross FUSE from the mount's writes); `timeout` bounds it.
    const tail = sh(`timeout 60 tail -s 0.2 ${fromStart ? '-n +1 ' : ''}-f '${file}' > '${out}' 2>&1 & echo $! > '${pidFile}'; wait`, { timeoutMs: 70_000 });
    const output = async (): Promise<string> => (await sh(`cat '${out}'`)).stdout;
    return {
      output,
      printed: (text, what) => waitFor(`tail to print ${what}`, async () => (await output()).includes(text), 20_000),
      stop: async () => {
        await sh(`kill $(cat '${pidFile}') 2>/dev/null`);
        await tail;
      },
    };
  }

  /**
   * A python3 program on `args` that runs `before`, says so (ready() resolves), then waits — up
   * to a minute — for go() before it runs `after`.
   */
  function pausedPython(label: string, before: string[], after: string[], args: string[]): { ready: () => Promise<void>; go: () => Promise<void>; done: Promise<ShResult> } {
    const ready = path.join(scratch, `${label}.ready`);
    const go = path.join(scratch, `${label}.go`);
    const done = runPython([
      'import os, sys, time', ...before,
      `open('${ready}', 'w').close()`,
      'end = time.time() + 60',
      `while not os.path.exists('${go}') and time.time() < end: time.sleep(0.05)`,
      ...after,
    ], args, 90_000);
    return { ready: () => waitFor(`${label}: the program half way`, async () => (await sh(`test -e '${ready}'`)).code === 0), go: () => writeFile(go, ''), done };
  }

  /** A process holding `file` open for appending: writes `first`, then on go() writes `last` and closes. */
  function holdingAppender(file: string, label: string, first: string, last = ''): { go: () => Promise<void>; done: Promise<{ code: number | null }> } {
    const go = path.join(scratch, `${label}-go`);
    const done = runPython([
      'import os, sys, time',
      `f = open(sys.argv[1], 'ab', buffering=0); f.write(${JSON.stringify(first)}.encode())`,
      'end = time.time() + 60',
      `while not os.path.exists('${go}') and time.time() < end: time.sleep(0.05)`,
      `f.write(${JSON.stringify(last)}.encode()); f.close()`,
    ], [file], 90_000);
    return { go: () => writeFile(go, ''), done };
  }

  test('tail -f follows a file appended to through the mount', async () => {
    const f = `${m.dir}/sts/follow.log`;
    assert.equal((await sh(`printf 'line 1\\n' > '${f}'`)).code, 0);
    const tail = tailFollowing(f, 'follow');
    try {
      await tail.printed('line 1', 'the first line');
      assert.equal((await sh(`printf 'line 2\\n' >> '${f}'`)).code, 0);
      // QA: tail stalled here — its fd read the version it opened, while fstat showed more.
      await tail.printed('line 2', 'the appended line');
      assert.equal((await sh(`printf 'line 3\\n' >> '${f}'`)).code, 0);
      await tail.printed('line 3', 'the next one');
      assert.equal(await tail.output(), 'line 1\nline 2\nline 3\n');
    } finally {
      await tail.stop();
    }
  });

  test('SQLite opening its database read-write (its default) and querying reads a few 1 MiB pieces, not the whole file or whole blocks; an update then publishes', async () => {
    // QA (session 25): every connection copied the whole database into the spool before its first read.
    /** Python's sqlite3 on `db` (opened as it opens by default: read-write), then `lines`. */
    const onDb = (db: string, ...lines: string[]): Promise<ShResult> => runPython(['import sqlite3, sys', 'c = sqlite3.connect(sys.argv[1])', ...lines], [db]);
    const local = path.join(scratch, 'rows.sqlite');
    const build = await runPython([
      'import sqlite3, sys',
      'c = sqlite3.connect(sys.argv[1])',
      "c.execute('create table t (id integer primary key, v text)')",
      "c.executemany('insert into t values (?, ?)', ((i, 'x' * 200 + str(i)) for i in range(150000)))",
      'c.commit()',
    ], [local]);
    assert.equal(build.code, 0, build.stderr);
    const size = Number((await sh(`stat -c %s '${local}'`)).stdout.trim());
    assert.ok(size > 30 * MiB, `a database of ${size} bytes`);
    assert.equal((await sh(`cp '${local}' '${m.dir}/sts/rows.sqlite'`)).code, 0);
    const fresh = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool-sqlite')]);
    try {
      const sent = stack.dev.stats().s3.bytesOut;
      const q = await onDb(`${fresh.dir}/sts/rows.sqlite`, "print(c.execute('select v from t where id = 123456').fetchone()[0][-6:])");
      assert.equal(q.stdout.trim(), '123456', q.stderr);
      const fetched = stack.dev.stats().s3.bytesOut - sent;
      // Block 0 (the page cache's readahead after the header makes a run of it), then a 1 MiB
      // piece per B-tree page elsewhere (session 26; was an 8 MiB block each: 24 MiB here).
      assert.ok(fetched <= 12 * MiB, `${fetched} of ${size} bytes fetched for one indexed SELECT`);
      assert.ok(!(await statusOf(fresh.dir)).uploads.some((u) => u.path.endsWith('rows.sqlite')), 'nothing being written');
      const u = await onDb(`${fresh.dir}/sts/rows.sqlite`, "c.execute(\"update t set v = 'changed' where id = 7\")", 'c.commit()', 'c.close()');
      assert.equal(u.code, 0, u.stderr);
    } finally {
      await fresh.unmount();
    }
    // Read back through another fresh mount (this suite's own mount may still show its own version for a TTL).
    const after = await mountForeground(stack, projectId, ['--read-only']);
    try {
      const check = await onDb(`${after.dir}/sts/rows.sqlite`, "print(c.execute('select v from t where id = 7').fetchone()[0], c.execute('select count(*) from t').fetchone()[0])");
      assert.equal(check.stdout.trim(), 'changed 150000', check.stderr);
    } finally {
      await after.unmount();
    }
  });

  test('tail -f follows a log another client appends to (its new versions), in both storage kinds', async () => {
    // QA (session 25): a teammate's tail -f printed nothing new, ever — its fd read the version it
    // opened. A reader at the end of its version now moves on to the newer one the mount hears of.
    const mt = await mountForeground(stack, projectId, ['--read-only', '--metadata-ttl', '1']);
    try {
      for (const dir of ['sts', 'managed']) {
        const folder = await idOf(`${m.dir}/${dir}`);
        const log = await stack.seed.file(folder, `teammate-${dir}.log`, Buffer.from('line 1\n'));
        const tail = tailFollowing(`${mt.dir}/${dir}/teammate-${dir}.log`, `teammate-${dir}`);
        try {
          await tail.printed('line 1', `${dir}: the first line`);
          await stack.seed.fileVersion(log.id, Buffer.from('line 1\nline 2\n'));
          await tail.printed('line 2', `${dir}: the line another client appended`);
          await stack.seed.fileVersion(log.id, Buffer.from('line 1\nline 2\nline 3\n'));
          await tail.printed('line 3', `${dir}: the next one`);
          assert.equal(await tail.output(), 'line 1\nline 2\nline 3\n');
        } finally {
          await tail.stop();
        }
      }
    } finally {
      await mt.unmount();
    }
  });

  test('tail -f started before a long-running writer sees its lines before the writer closes; one started after lets the file go at its close', async () => {
    const f = `${m.dir}/sts/daemon.log`;
    assert.equal((await sh(`printf 'start\\n' > '${f}'`)).code, 0);
    const id = await idOf(f);
    const before = tailFollowing(f, 'daemon');
    await before.printed('start', 'the first line');
    const writer = holdingAppender(f, 'daemon', 'line 1\n');
    let after: ReturnType<typeof tailFollowing> | undefined;
    try {
      // The writer holds the file open: nothing is in Synapse yet, and tail shows the line anyway.
      await before.printed('line 1', 'the unpublished line');
      after = tailFollowing(f, 'daemon-after'); // opened while the writer has the file
      await after.printed('line 1', 'the line, to the tail opened after the writer');
    } finally {
      await writer.go();
      await writer.done;
    }
    try {
      // The writer closed while a reader still had its bytes: the file is let go (QA: it stayed
      // open for writing until the reader closed — EBUSY for vim's backup rename, which then
      // replaced the file with a new entity, and other clients' versions hidden).
      const st = await statusOf(m.dir);
      assert.deepEqual(st.uploads.filter((u) => u.path.endsWith('daemon.log')), []);
      const mv = await sh(`mv '${f}' '${f}~' && mv '${f}~' '${f}'`);
      assert.equal(mv.code, 0, mv.stderr);
      assert.equal(await idOf(f), id);
    } finally {
      await before.stop();
      await after?.stop();
    }
    assert.equal((await sh(`cat '${f}'`)).stdout, 'start\nline 1\n');
  });

  test('tail -f of an empty file kept local (storage cannot hold 0 bytes) follows what is then written and published', async () => {
    const f = `${m.dir}/managed/app.log`;
    assert.equal((await sh(`touch '${f}'`)).code, 0);
    const tail = tailFollowing(f, 'app', false);
    await waitFor('tail to hold the file open', async () => (await sh(`for p in $(pgrep -x tail); do ls -l /proc/$p/fd 2>/dev/null; done | grep -q 'managed/app.log'`)).code === 0, 20_000);
    const writer = holdingAppender(f, 'app', 'line 1\n', 'line 2\n');
    try {
      // QA: an empty local file's readers read 0 bytes for good.
      await tail.printed('line 1', 'the line being written');
      await writer.go();
      assert.equal((await writer.done).code, 0);
      await tail.printed('line 2', 'the published line');
    } finally {
      await writer.go();
      await tail.stop();
    }
    assert.equal(await tail.output(), 'line 1\nline 2\n');
  });

  test('readers of an empty local file keep reading that file when it is removed or replaced (as on a local disk)', async () => {
    const d = `${m.dir}/managed/empties`;
    assert.equal((await sh(`mkdir -p '${d}' && touch '${d}/a' '${d}/b'`)).code, 0);
    // Each reader opens its empty file, the file is removed or replaced, and the name written again.
    const r = await runPython([
      'import os, sys',
      'd = sys.argv[1]',
      "ra = os.open(d + '/a', os.O_RDONLY); rb = os.open(d + '/b', os.O_RDONLY)",
      "os.remove(d + '/a'); open(d + '/a', 'w').write('new a')",
      "open(d + '/g', 'w').write('gee'); os.rename(d + '/g', d + '/b'); open(d + '/b', 'a').write(' more')",
      "print(repr(os.pread(ra, 100, 0)), repr(os.pread(rb, 100, 0)))",
    ], [d], 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "b'' b''", 'QA: they read whatever took the name next');
    assert.equal((await sh(`cat '${d}/a' '${d}/b'`)).stdout, 'new agee more');
  });

  test('a file being written follows its folder when another client renames it, and is published there', async () => {
    // Open files are keyed by path; another client renaming a folder above one must not leave
    // it behind (size 0 at the new path, or published under the old name).
    const w = await mountForeground(stack, projectId, ['--metadata-ttl', '0', '--spool-dir', path.join(scratch, 'spool-move')]);
    try {
      assert.equal((await sh(`mkdir '${w.dir}/sts/before-move'`)).code, 0);
      const folderId = await waitForId(`${w.dir}/sts/before-move`);
      const writer = pausedPython('move', ["f = open(sys.argv[1], 'wb'); f.write(b'hello '); f.flush()"], ["f.write(b'world'); f.close()"],
        [`${w.dir}/sts/before-move/a.txt`]);
      await writer.ready(); // holding the file open
      // Another client (the REST API, as the Python client does it) renames the folder.
      const headers = { Authorization: `Bearer ${stack.authToken}`, 'Content-Type': 'application/json' };
      const entity = await (await fetch(`${stack.endpoint}/repo/v1/entity/${folderId}`, { headers })).json() as Record<string, unknown>;
      const put = await fetch(`${stack.endpoint}/repo/v1/entity/${folderId}`, { method: 'PUT', headers, body: JSON.stringify({ ...entity, name: 'after-move' }) });
      assert.equal(put.status, 200, await put.text());
      assert.equal((await sh(`stat -c %s '${w.dir}/sts/after-move/a.txt'`)).stdout.trim(), '6', 'the bytes written so far, at the new path');
      assert.notEqual((await sh(`ls '${w.dir}/sts/before-move'`)).code, 0, 'the old path is gone');
      await writer.go();
      const r = await writer.done;
      assert.equal(r.code, 0, r.stderr);
      const id = await childId(stack, folderId, 'a.txt');
      assert.ok(id, 'published in the renamed folder');
      assert.equal((await synapseBytes(id)).bytes.toString(), 'hello world');
      assert.equal((await sh(`cat '${w.dir}/sts/after-move/a.txt'`)).stdout, 'hello world');
    } finally {
      await w.unmount();
    }
  });

  test('names Synapse refuses fail with EINVAL', async () => {
    const r = await sh(`echo x > '${m.dir}/sts/a:b.txt'`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Invalid argument/);
    const d = await sh(`mkdir '${m.dir}/sts/bad*dir'`);
    assert.match(d.stderr, /Invalid argument/);
  });

  test('mkdir, rename, unlink and rmdir are visible to a second client', async () => {
    const other = await mountForeground(stack, projectId, ['--metadata-ttl', '0', '--read-only']);
    try {
      assert.equal((await sh(`mkdir '${m.dir}/managed/shared' && echo s > '${m.dir}/managed/shared/f.txt'`)).code, 0);
      assert.equal((await sh(`cat '${other.dir}/managed/shared/f.txt'`)).stdout, 's\n');
      assert.equal((await sh(`mv '${m.dir}/managed/shared/f.txt' '${m.dir}/managed/shared/g.txt'`)).code, 0);
      assert.match((await sh(`ls '${other.dir}/managed/shared'`)).stdout, /^g\.txt$/m);
      assert.equal((await sh(`rm '${m.dir}/managed/shared/g.txt' && rmdir '${m.dir}/managed/shared'`)).code, 0);
      assert.equal((await sh(`ls '${other.dir}/managed/shared'`)).code, 2);
      const ne = await sh(`mkdir -p '${m.dir}/managed/full' && echo 1 > '${m.dir}/managed/full/x' && rmdir '${m.dir}/managed/full'`);
      assert.match(ne.stderr, /not empty/);
    } finally {
      await other.unmount();
    }
  });

  test('the second user (not the location creator) writes into the STS folder via the multipart API', async () => {
    const m2 = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool2')], stack.secondAuthToken);
    try {
      const data = patternBytes(6 * MiB, 42);
      await writeFile(path.join(scratch, 'u2.bin'), data);
      const cp = await sh(`cp '${scratch}/u2.bin' '${m2.dir}/sts/by-user2.bin'`);
      assert.equal(cp.code, 0, cp.stderr);
      const { bytes, fh } = await synapseBytes(await idOf(`${m2.dir}/sts/by-user2.bin`));
      assert.equal(md5(bytes), md5(data));
      assert.equal(fh.createdBy, stack.secondUserId);
      assert.equal(fh.storageLocationId, stsLocation);
    } finally {
      await m2.unmount();
    }
  });

  test('--read-only and a user without CREATE get clean errors', async () => {
    const ro = await mountForeground(stack, projectId, ['--read-only']);
    try {
      const r = await sh(`echo x > '${ro.dir}/sts/ro.txt'`, { timeoutMs: 20_000 });
      assert.match(r.stderr, /Read-only file system/);
    } finally {
      await ro.unmount();
    }
    const locked = (await stack.seed.folder(projectId, 'locked', { storage: 'managed' })).id;
    stack.seed.grant(locked, stack.secondUserId, ['READ', 'DOWNLOAD']);
    const m2 = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool3')], stack.secondAuthToken);
    try {
      const r = await sh(`mkdir '${m2.dir}/locked/x'; echo x > '${m2.dir}/locked/y.txt'`, { timeoutMs: 30_000 });
      assert.match(r.stderr, /Permission denied/);
    } finally {
      await m2.unmount();
    }
  });

  test('collaborators: a change Synapse would refuse fails at once (EACCES), journals nothing, leaves no file; a rename onto a file without DELETE changes nothing', async () => {
    // QA (collaborators): `echo x > f`, `>>`, `touch`, `truncate` "succeeded" for a read-only
    // user, each leaving an empty file and a journal entry recover could never publish; with
    // "Can edit" (no DELETE) `mv z x` committed z's bytes to x, then failed on the delete.
    const team = stack.seed.project('Team perms');
    const ro = (await stack.seed.folder(team, 'readonly', { storage: 'managed' })).id;
    const edit = (await stack.seed.folder(team, 'canedit', { storage: 'managed' })).id;
    stack.seed.grant(team, stack.secondUserId, ['READ', 'DOWNLOAD']);
    stack.seed.grant(edit, stack.secondUserId, ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE']);
    await stack.seed.file(ro, 'm.txt', Buffer.from('mine\n'));
    // A folder with an ACL of its own, which lets the second user add files where the project does not.
    const own = (await stack.seed.folder(team, 'own-acl', { storage: 'managed' })).id;
    stack.seed.grant(own, stack.secondUserId, ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE', 'DELETE']);
    const x = await stack.seed.file(edit, 'x.txt', Buffer.from('x1\n'));
    const z = await stack.seed.file(edit, 'z.txt', Buffer.from('z1\n'));
    const spoolDir = path.join(scratch, 'spool-perms');
    const m2 = await mountForeground(stack, team, ['--spool-dir', spoolDir], stack.secondAuthToken);
    try {
      const d = `${m2.dir}/readonly`;
      // touch -d of their file too (QA: it said 0, and the mount showed the date it set).
      for (const cmd of [`echo new > '${d}/new.txt'`, `echo more >> '${d}/m.txt'`, `echo over > '${d}/m.txt'`, `touch '${d}/t.txt'`, `truncate -s 2 '${d}/m.txt'`, `touch -d 2020-01-01 '${d}/m.txt'`, `touch -d 2020-01-01 '${d}'`]) {
        const r = await sh(cmd);
        assert.notEqual(r.code, 0, `${cmd}: refused`);
        assert.match(r.stderr, /Permission denied/, cmd);
      }
      assert.equal((await sh(`ls '${d}'`)).stdout.trim(), 'm.txt', 'no empty files left behind');
      assert.notEqual((await sh(`stat -c %Y '${d}/m.txt'`)).stdout.trim(), String(Date.parse('2020-01-01T00:00:00') / 1000), 'its time unchanged');
      assert.equal((await sh(`cat '${d}/m.txt'`)).stdout, 'mine\n');
      const mv = await sh(`mv '${m2.dir}/canedit/z.txt' '${m2.dir}/canedit/x.txt'`);
      assert.notEqual(mv.code, 0);
      assert.match(mv.stderr, /Permission denied/);
      assert.equal(stack.seed.versions(x.id).length, 1, 'x.txt unchanged');
      assert.equal(stack.seed.entity(z.id).name, 'z.txt', 'z.txt still there');
      // What they may do still works: a new file and a new version in the folder they can edit.
      assert.equal((await sh(`echo ok > '${m2.dir}/canedit/new.txt' && echo x2 > '${m2.dir}/canedit/x.txt'`)).code, 0);
      assert.equal(stack.seed.versions(x.id).length, 2);
      // Tools that write a temp file and rename it onto the file (rsync, sed -i) work for them too:
      // the temp file is published only under the name it gets (QA: each run left a published temp
      // file the rename could not delete, and they could not remove it).
      const src = path.join(scratch, 'edit-src');
      await mkdir(src, { recursive: true });
      await writeFile(path.join(src, 'x.txt'), 'x3 from rsync\n');
      await writeFile(path.join(src, 'r.txt'), 'r1\n');
      const rsync = await sh(`rsync -rt '${src}/' '${m2.dir}/canedit/' && sed -i 's/r1/r2/' '${m2.dir}/canedit/r.txt' && perl -pi -e 's/r2/r3/' '${m2.dir}/canedit/r.txt'`
        + ` && cat '${m2.dir}/canedit/x.txt' '${m2.dir}/canedit/r.txt'`, { timeoutMs: 60_000 });
      assert.equal(rsync.code, 0, rsync.stderr);
      assert.equal(rsync.stdout, 'x3 from rsync\nr3\n');
      assert.equal(stack.seed.versions(x.id).length, 3, 'rsync made x.txt\'s next version');
      // Python's atomic write (tempfile in the folder, then os.replace) too (QA: EACCES, and a temp
      // entity left they could not remove).
      const py = await sh(`python3 -c "import os,tempfile,sys; d=sys.argv[1]; f=tempfile.NamedTemporaryFile('w', dir=d, delete=False); f.write('x4 from python\\n'); f.close(); os.replace(f.name, os.path.join(d, 'x.txt'))" '${m2.dir}/canedit' && cat '${m2.dir}/canedit/x.txt'`, { timeoutMs: 60_000 });
      assert.equal(py.code, 0, py.stderr);
      assert.equal(py.stdout, 'x4 from python\n');
      assert.equal(stack.seed.versions(x.id).length, 4, 'os.replace made x.txt\'s next version');
      const names = (await sh(`ls -A '${m2.dir}/canedit'`)).stdout.trim().split('\n').sort();
      assert.deepEqual(names, ['new.txt', 'r.txt', 'x.txt', 'z.txt'], 'no temp files left');
      const listed = await fetch(`${stack.endpoint}/repo/v1/entity/children`, {
        method: 'POST', headers: { Authorization: `Bearer ${stack.authToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ parentId: edit, includeTypes: ['file'] }),
      });
      const inSynapse = ((await listed.json()) as { page: Array<{ name: string }> }).page.map((c) => c.name).sort();
      assert.deepEqual(inSynapse, ['new.txt', 'r.txt', 'x.txt', 'z.txt'], 'nor in Synapse');
      // git replaces config, index, HEAD and refs by renaming `<file>.lock` onto them (QA: `git
      // init` failed for them, leaving a published config.lock they could not remove).
      const git = await sh(`cd '${m2.dir}/canedit' && mkdir repo && cd repo && git init -q && git config user.email a@b && git config user.name A`
        + ` && echo hi > a.txt && git add a.txt && git -c gc.auto=0 commit -qm one && echo again >> a.txt && git commit -qam two && git log --oneline | wc -l && git status --porcelain`
        + ` && find .git -name '*.lock' && git gc -q 2>/dev/null && echo gc-ok && find .git -name gc.pid -o -name packed-refs.new`, { timeoutMs: 120_000 });
      assert.equal(git.code, 0, git.stderr);
      // git gc too (QA: unable to unlink packed-refs.new; gc.pid left in Synapse): its own temp
      // files are held; only removing the loose objects it packed needs DELETE (warnings, exit 0).
      assert.equal(git.stdout, '2\ngc-ok\n', 'two commits, a clean tree, no lock file left, gc done and its temp files gone');
      // SQLite in its default (rollback journal) mode: the -journal stays in this mount, the
      // database is published at each commit (QA: "disk I/O error" — the published journal could
      // not be deleted at the commit — and a hot journal left in Synapse that rolled back the next open).
      const sq = await sh(`python3 -c "
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute('create table t (x)')
for i in range(5):
    db.execute('insert into t values (?)', (i,))
    db.commit()
db.close()
db = sqlite3.connect(sys.argv[1])
print(db.execute('select count(*) from t').fetchone()[0])
db.close()
" '${m2.dir}/canedit/runs.db'`, { timeoutMs: 120_000 });
      assert.equal(sq.code, 0, sq.stderr);
      assert.equal(sq.stdout, '5\n');
      // The hand-made atomic save (`f + '.tmp'`, then os.replace) is held as tempfile's is.
      const tmpSave = await sh(`python3 -c "
import os, sys
f = os.path.join(sys.argv[1], 'x.txt')
with open(f + '.tmp', 'w') as out: out.write('x5 via .tmp\\n')
os.replace(f + '.tmp', f)
" '${m2.dir}/canedit' && cat '${m2.dir}/canedit/x.txt'`, { timeoutMs: 60_000 });
      assert.equal(tmpSave.code, 0, tmpSave.stderr);
      assert.equal(tmpSave.stdout, 'x5 via .tmp\n');
      assert.equal(stack.seed.versions(x.id).length, 5, 'os.replace of x.txt.tmp made x.txt\'s next version');
      assert.equal(stack.seed.fileHandle(String(stack.seed.entity(x.id).dataFileHandleId)).fileName, 'x.txt', 'its file handle is named for the file');
      // rsync's temp file as mkstemp names 0.6 % of them — no capital, no digit — made as mkstemp
      // makes it (O_EXCL, 0600): held too (CI: `.b.bin.yszklp` was published under that name, and
      // without DELETE the rename onto the file would then fail).
      const lower = await sh(`python3 -c "
import os, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, '.x.txt.yszklp'), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'x5b via .x.txt.yszklp\\n')
os.close(fd)
os.replace(os.path.join(d, '.x.txt.yszklp'), os.path.join(d, 'x.txt'))
" '${m2.dir}/canedit' && cat '${m2.dir}/canedit/x.txt'`, { timeoutMs: 60_000 });
      assert.equal(lower.code, 0, lower.stderr);
      assert.equal(lower.stdout, 'x5b via .x.txt.yszklp\n');
      assert.equal(stack.seed.versions(x.id).length, 6, 'x.txt\'s next version');
      assert.equal(stack.seed.fileHandle(String(stack.seed.entity(x.id).dataFileHandleId)).fileName, 'x.txt', 'its file handle is named for the file');
      // rsync --delay-updates: its `.~tmp~` stays in this mount; each file published once at the end.
      await writeFile(path.join(src, 'x.txt'), 'x6 delayed\n');
      await writeFile(path.join(src, 'd.txt'), 'd1\n');
      const delayed = await sh(`rsync -rt --delay-updates '${src}/x.txt' '${src}/d.txt' '${m2.dir}/canedit/' && cat '${m2.dir}/canedit/x.txt' '${m2.dir}/canedit/d.txt'`, { timeoutMs: 60_000 });
      assert.equal(delayed.code, 0, delayed.stderr);
      assert.equal(delayed.stdout, 'x6 delayed\nd1\n');
      assert.equal(stack.seed.versions(x.id).length, 7, 'x.txt\'s next version, no DELETE needed');
      const afterDb = await fetch(`${stack.endpoint}/repo/v1/entity/children`, {
        method: 'POST', headers: { Authorization: `Bearer ${stack.authToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ parentId: edit, includeTypes: ['file'] }),
      });
      const page = ((await afterDb.json()) as { page: Array<{ name: string; id: string }> }).page;
      assert.deepEqual(page.map((c) => c.name).sort(), ['d.txt', 'new.txt', 'r.txt', 'runs.db', 'x.txt', 'z.txt'], 'no journal, no temp file, no staging folder in Synapse');
      // What Synapse holds of the database is a committed state with every row.
      const dbCopy = path.join(scratch, 'runs-from-synapse.db');
      const dbHandle = stack.seed.fileHandle(String(stack.seed.entity(page.find((c) => c.name === 'runs.db')!.id).dataFileHandleId));
      await writeFile(dbCopy, await stack.seed.objectBytes(dbHandle.bucketName, dbHandle.key));
      const check = await sh(`python3 -c "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); print(db.execute('pragma integrity_check').fetchone()[0], db.execute('select count(*) from t').fetchone()[0])" '${dbCopy}'`);
      assert.equal(check.stdout, 'ok 5\n', check.stderr);
      // A folder with its own ACL keeps it when renamed (review: it was given the project's, whose
      // cached "may not add files" then refused a file its own ACL allows).
      const renamed = await sh(`mv '${m2.dir}/own-acl' '${m2.dir}/own-acl2' && echo mine > '${m2.dir}/own-acl2/f.txt'`);
      assert.equal(renamed.code, 0, renamed.stderr);
      assert.equal(stack.seed.entity(own).name, 'own-acl2');
    } finally {
      await m2.unmount();
    }
    assert.deepEqual(await readdir(path.join(spoolDir, 'journal')), [], 'nothing journaled');
  });

  test('collaborators: a new file waiting for recover, in a folder they may no longer add to, still reads but refuses a write at open (EACCES), its kept bytes untouched', async () => {
    const team = stack.seed.project('Team revoked');
    const shared = (await stack.seed.folder(team, 'shared', { storage: 'managed' })).id;
    stack.seed.grant(team, stack.secondUserId, ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE']);
    const spoolDir = path.join(scratch, 'spool-revoked');
    const journal = path.join(spoolDir, 'journal');
    const args = ['--spool-dir', spoolDir, '--retry-timeout', '2'];
    const first = await mountForeground(stack, team, args, stack.secondAuthToken);
    try {
      stack.dev.addFault({ target: 'synapse', pathPattern: '/file/multipart', method: 'POST', status: 503, rate: 1 });
      const failed = await sh(`python3 -c "
import sys
f = open(sys.argv[1], 'w'); f.write('kept\\n')
try:
    f.close()
except OSError as e:
    print(e.errno)
" '${first.dir}/shared/new.txt'`, { timeoutMs: 60_000 });
      assert.equal(failed.stdout.trim(), '5', `the close reports the failed publish (EIO): ${failed.stderr}`);
    } finally {
      stack.dev.clearFaults();
      await first.unmount();
    }
    const entries = (await readdir(journal)).filter((n) => n.endsWith('.json'));
    assert.equal(entries.length, 1, 'journaled');
    const entryBefore = await readFile(path.join(journal, entries[0]!), 'utf8');
    stack.seed.grant(shared, stack.secondUserId, ['READ', 'DOWNLOAD']);
    const again = await mountForeground(stack, team, args, stack.secondAuthToken);
    try {
      assert.equal((await sh(`cat '${again.dir}/shared/new.txt'`)).stdout, 'kept\n', 'its kept bytes are shown');
      const append = await sh(`echo more >> '${again.dir}/shared/new.txt'`);
      assert.notEqual(append.code, 0, 'refused at open');
      assert.match(append.stderr, /Permission denied/);
      assert.equal((await sh(`cat '${again.dir}/shared/new.txt'`)).stdout, 'kept\n', 'still the kept bytes');
      // Said in the log in one line, why: no stack (QA: ≈ 1 KB per refused write).
      const refusal = again.output().split('\n').find((l) => l.includes('"errno":"EACCES"'));
      assert.ok(refusal, again.output());
      assert.match(refusal, /canAddChild is false/);
      assert.doesNotMatch(refusal, /"stack"/);
    } finally {
      await again.unmount();
    }
    assert.deepEqual((await readdir(journal)).filter((n) => n.endsWith('.json')), entries, 'the same entry waits for recover');
    assert.equal(await readFile(path.join(journal, entries[0]!), 'utf8'), entryBefore, 'unchanged');
    assert.equal(await childId(stack, shared, 'new.txt'), undefined, 'nothing in Synapse');
  });

  test('a publish refused by Synapse fails close(); recover publishes the exact bytes once', async () => {
    const spoolDir = path.join(scratch, 'spool-fail');
    const mf = await mountForeground(stack, projectId, ['--spool-dir', spoolDir, '--retry-timeout', '2']);
    const data = patternBytes(3 * MiB, 77);
    await writeFile(path.join(scratch, 'fail.bin'), data);
    try {
      stack.dev.addFault({ target: 'synapse', pathPattern: '/externalFileHandle/s3', status: 503, rate: 1 });
      const cp = await sh(`cp '${scratch}/fail.bin' '${mf.dir}/sts/fail.bin'`, { timeoutMs: 60_000 });
      assert.notEqual(cp.code, 0, 'cp reports the failure');
      assert.match(cp.stderr, /Input\/output error|failed to close/);
    } finally {
      stack.dev.clearFaults();
      await mf.unmount();
    }
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const list = await cli(['recover', '--list', '--spool-dir', spoolDir], { env });
    assert.match(list.stdout, /fail\.bin/);
    const rec = await cli(['recover', '--spool-dir', spoolDir, '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint], { env });
    assert.equal(rec.code, 0, rec.stderr + rec.stdout);
    assert.match(rec.stdout, /published/);
    const again = await cli(['recover', '--spool-dir', spoolDir, '--endpoint', stack.endpoint], { env });
    assert.match(again.stdout, /nothing to recover/);
    const m3 = await mountForeground(stack, projectId, ['--read-only']);
    try {
      const id = await idOf(`${m3.dir}/sts/fail.bin`);
      assert.equal(md5((await synapseBytes(id)).bytes), md5(data));
      assert.equal(stack.seed.versions(id).length, 1);
    } finally {
      await m3.unmount();
    }
  });

  /**
   * managed/NAME published with `first` as its line, then `appended` added through a mount with
   * its own spool while Synapse refuses the new version: the failed publish is journaled there.
   */
  async function journaledAppend(spoolDir: string, name: string, first: string, appended: string): Promise<string> {
    assert.equal((await sh(`echo ${first} > '${m.dir}/managed/${name}'`)).code, 0);
    const id = await idOf(`${m.dir}/managed/${name}`);
    const mf = await mountForeground(stack, projectId, ['--spool-dir', spoolDir, '--retry-timeout', '2']);
    try {
      stack.dev.addFault({ target: 'synapse', pathPattern: `/entity/${id}`, method: 'PUT', status: 503, rate: 1 });
      // Python, not the shell: bash never checks the close() of a redirection.
      const w = await runPython([`f = open(__import__('sys').argv[1], 'a'); f.write('${appended}\\n'); f.close()`], [`${mf.dir}/managed/${name}`], 60_000);
      assert.notEqual(w.code, 0, 'close reports the failed publish');
    } finally {
      stack.dev.clearFaults();
      await mf.unmount();
    }
    return id;
  }

  test('recover keeps an entry whose file someone published since, and publishes it with --force', async () => {
    // A QA pass: recover made the failed write's older bytes the newest version of a file
    // rewritten since, and said only "published".
    const spoolDir = path.join(scratch, 'spool-conflict');
    const f = `${m.dir}/managed/conflict.txt`;
    const id = await journaledAppend(spoolDir, 'conflict.txt', 'base', 'failed write');
    // Meanwhile another writer publishes version 2.
    assert.equal((await sh(`echo newer > '${f}'`)).code, 0);
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const args = ['recover', '--spool-dir', spoolDir, '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint];
    const rec = await cli(args, { env });
    assert.equal(rec.code, 1, rec.stderr + rec.stdout);
    assert.match(rec.stdout, /^conflict\t.*conflict\.txt.*is at version 2 now, these bytes were written over version 1; not published/m);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'newer\n', 'the newer version stays the newest');
    const forced = await cli([...args, '--force'], { env });
    assert.equal(forced.code, 0, forced.stderr + forced.stdout);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'base\nfailed write\n');
    assert.equal(stack.seed.versions(id).length, 3, 'version 2 is kept in the history');
  });

  test('an append built on a version someone replaced since is not published over theirs (ESTALE, journaled as a conflict); a rewrite from empty still is', async () => {
    // QA (collaborators): with the folder listed a moment before, another user's new version was
    // silently hidden — the append published line1 + our line, without theirs.
    const spoolDir = path.join(scratch, 'spool-stale');
    const f = `${m.dir}/managed/stale.txt`;
    assert.equal((await sh(`echo line1 > '${f}'`)).code, 0);
    const id = await idOf(f);
    const mb = await mountForeground(stack, projectId, ['--spool-dir', spoolDir, '--metadata-ttl', '60']);
    try {
      assert.match((await sh(`ls -l '${mb.dir}/managed'`)).stdout, /stale\.txt/);
      await stack.seed.fileVersion(id, Buffer.from('line1\nline2 (other user)\n'));
      const w = await runPython(["f = open(__import__('sys').argv[1], 'a'); f.write('line3\\n'); f.close()"], [`${mb.dir}/managed/stale.txt`], 60_000);
      assert.notEqual(w.code, 0, 'close reports it');
      assert.match(w.stderr, /Stale file handle/);
      assert.equal((await synapseBytes(id)).bytes.toString(), 'line1\nline2 (other user)\n', 'their version stays the newest');
      assert.equal(stack.seed.versions(id).length, 2);
      const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
      const rec = await cli(['recover', '--list', '--spool-dir', spoolDir], { env });
      assert.match(rec.stdout, /stale\.txt.*\tconflict \(a newer version was published since/, 'journaled, and --list calls it what recover will: a conflict');
      // The path shows theirs at once, as the README says (session 29: the kept bytes showed until
      // the listing's TTL ran out), so `cat` there is what Synapse has.
      assert.equal((await sh(`cat '${mb.dir}/managed/stale.txt'`)).stdout, 'line1\nline2 (other user)\n');
      // Rewriting from empty does not build on anything: last writer wins (theirs stays in history).
      const rewrite = await sh(`echo rewritten > '${mb.dir}/managed/stale.txt'`);
      assert.equal(rewrite.code, 0, rewrite.stderr + mb.output().slice(-1500));
    } finally {
      await mb.unmount();
    }
    assert.equal((await synapseBytes(id)).bytes.toString(), 'rewritten\n');
    // The refused append is still what it was — bytes built on a version that is not the newest:
    // recover calls it a conflict (written over theirs, not over what it was built on).
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const rec = await cli(['recover', '--spool-dir', spoolDir, '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint], { env });
    assert.match(rec.stdout, /conflict/, rec.stdout + rec.stderr);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'rewritten\n', 'recover publishes nothing over it');
  });

  test('readers (and a writer that writes nothing) closing a file another process is still writing publish nothing: one version, whole', async () => {
    // QA: `head`, `md5sum`, an open-close made a truncated version of a file being written.
    for (const folder of ['sts', 'managed']) {
      const f = `${m.dir}/${folder}/growing.bin`;
      const writer = pausedPython(`growing-${folder}`, ["f = open(sys.argv[1], 'wb', buffering=0)", 'for i in range(4): f.write(bytes([i]) * 1048576)'],
        ['for i in range(4, 8): f.write(bytes([i]) * 1048576)', 'f.close()'], [f]);
      await writer.ready();
      const peek = await sh(`head -c 100 '${f}' | wc -c; md5sum < '${f}' > /dev/null; python3 -c "import os,sys; os.close(os.open(sys.argv[1], os.O_RDWR))" '${f}'`);
      assert.equal(peek.code, 0, peek.stderr);
      await writer.go();
      const w = await writer.done;
      assert.equal(w.code, 0, w.stderr);
      const id = await idOf(f);
      const want = Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.alloc(MiB, i)));
      assert.equal(stack.seed.versions(id).length, 1, `${folder}: one version`);
      assert.equal(md5((await synapseBytes(id)).bytes), md5(want), `${folder}: the whole file`);
    }
  });

  test('files waiting for recover: shown in the next mount; an append builds on the kept bytes and supersedes the entry; a rename renames an entry; removing drops it', async () => {
    const spoolDir = path.join(scratch, 'spool-kept');
    const a = await journaledAppend(spoolDir, 'kept-a.txt', 'one', 'two');
    const b = await journaledAppend(spoolDir, 'kept-b.txt', 'uno', 'dos');
    const mk = await mountForeground(stack, projectId, ['--spool-dir', spoolDir]);
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const d = `${mk.dir}/managed`;
    const entries = async (): Promise<string> => (await cli(['recover', '--list', '--spool-dir', spoolDir], { env })).stdout;
    try {
      assert.match(mk.output(), /2 file\(s\) wait for `synapse-mount recover`/);
      assert.equal((await sh(`cat '${d}/kept-a.txt'`)).stdout, 'one\ntwo\n', 'the kept bytes, not Synapse\'s version');
      // The kernel was told the kept size: an append lands after the kept bytes and builds on them.
      const append = await sh(`python3 -c "f = open('${d}/kept-a.txt', 'a'); f.write('three\\n'); f.close()"`);
      assert.equal(append.code, 0, append.stderr);
      assert.equal((await synapseBytes(a)).bytes.toString(), 'one\ntwo\nthree\n');
      assert.doesNotMatch(await entries(), /kept-a\.txt/, 'published from the mount: its entry is no longer needed');
      assert.equal((await sh(`mv '${d}/kept-b.txt' '${d}/kept-c.txt'`)).code, 0);
      assert.match(await entries(), /\/kept-c\.txt\t/, 'the entry follows the rename');
      assert.equal((await sh(`cat '${d}/kept-c.txt'`)).stdout, 'uno\ndos\n');
      assert.equal((await sh(`rm '${d}/kept-c.txt'`)).code, 0);
      assert.deepEqual(await readdir(path.join(spoolDir, 'journal')), [], 'removed: nothing left for recover');
      assert.deepEqual(await readdir(path.join(spoolDir, 'files')), []);
    } finally {
      await mk.unmount();
    }
    assert.throws(() => stack.seed.entity(b), 'the removed file is gone in Synapse');
    const bare = await cli(['recover', '--spool-dir', spoolDir, '--discard'], { env });
    assert.equal(bare.code, 2, 'a bare --discard is a usage error, never a full recover');
  });

  test('tar x over existing files and an archive replaced by rename keep their synIDs: the new bytes are their next versions', async () => {
    // QA: tar x (unlink, then create) and zip (temp file, unlink, rename onto the name) gave every
    // file a new synID; the old ones — history, annotations, links — went to the trash can.
    const dir = `${m.dir}/managed/untar`;
    const src = path.join(scratch, 'tar-src');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'a.txt'), 'a version 1\n');
    await writeFile(path.join(src, 'sub', 'b.txt'), 'b version 1\n');
    const first = await sh(`mkdir '${dir}' && tar -C '${src}' -cf '${scratch}/t1.tar' . && tar -C '${dir}' -xf '${scratch}/t1.tar'`);
    assert.equal(first.code, 0, first.stderr);
    const [a, b] = [await waitForId(`${dir}/a.txt`), await waitForId(`${dir}/sub/b.txt`)];
    await writeFile(path.join(src, 'a.txt'), 'a version 2\n');
    const second = await sh(`tar -C '${src}' -cf '${scratch}/t2.tar' . && tar -C '${dir}' -xf '${scratch}/t2.tar' && cat '${dir}/a.txt' '${dir}/sub/b.txt'`);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'a version 2\nb version 1\n');
    assert.deepEqual([await idOf(`${dir}/a.txt`), await idOf(`${dir}/sub/b.txt`)], [a, b], 'the same entities');
    assert.equal(stack.seed.versions(a).length, 2, 'changed bytes: a next version');
    assert.equal(stack.seed.versions(b).length, 1, 'the same bytes: restored, no new version');
    assert.equal(stack.seed.entity(b).parentId, await idOf(`${dir}/sub`), 'b is out of the trash can, where it was');

    const zipLike = await sh(`printf 'archive 1' > '${dir}/t.zip' && printf 'archive 2' > '${dir}/ziTMPa12' && rm '${dir}/t.zip' && mv '${dir}/ziTMPa12' '${dir}/t.zip' && cat '${dir}/t.zip' && ls '${dir}'`);
    assert.equal(zipLike.code, 0, zipLike.stderr);
    assert.equal(zipLike.stdout, 'archive 2a.txt\nsub\nt.zip\n');
    const z = await idOf(`${dir}/t.zip`);
    assert.equal(stack.seed.versions(z).length, 2, 'the archive\'s first version is in its history');
  });

  test('recover --discard drops an entry and its kept bytes; an unknown id discards nothing', async () => {
    const spoolDir = path.join(scratch, 'spool-discard');
    const id = await journaledAppend(spoolDir, 'discard.txt', 'keep', 'unwanted');
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const list = await cli(['recover', '--list', '--spool-dir', spoolDir], { env });
    const entryId = list.stdout.split('\t')[0]!;
    assert.match(list.stdout, /discard\.txt/);
    const keptAt = /\tbytes: (\S+)$/m.exec(list.stdout)?.[1];
    assert.equal((await sh(`cat '${keptAt}'`)).stdout, 'keep\nunwanted\n', '--list says where the bytes are');
    const wrong = await cli(['recover', '--spool-dir', spoolDir, '--discard', 'nope', entryId], { env });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /no journal entry nope .*nothing discarded/);
    assert.equal((await readdir(path.join(spoolDir, 'journal'))).length, 1, 'kept');
    const spooled = await readdir(path.join(spoolDir, 'files'));
    assert.ok(spooled.length > 0, 'the failed write\'s bytes are in the spool');
    const d = await cli(['recover', '--spool-dir', spoolDir, '--discard', entryId], { env });
    assert.equal(d.code, 0, d.stderr);
    // Its bytes were uploaded (the entity update failed): QA — the note said nothing of them.
    assert.match(d.stdout, new RegExp(`^discarded\t${stack.seed.entity(id).parentId}/discard\\.txt\t${entryId}\tits uploaded bytes stay in storage as Synapse file handle \\d+ \\(no entity uses it\\)$`, 'm'));
    assert.deepEqual(await readdir(path.join(spoolDir, 'journal')), []);
    assert.deepEqual(await readdir(path.join(spoolDir, 'files')), [], 'the kept bytes are gone too');
    assert.match((await cli(['recover', '--list', '--spool-dir', spoolDir], { env })).stdout, /nothing to recover/);
    assert.equal((await synapseBytes(id)).bytes.toString(), 'keep\n', 'Synapse untouched');
  });

  test('a new file discarded by recover while the mount runs can be written again at once (the kernel\'s cached entry is stale: ESTALE, not ENOENT)', async () => {
    // QA: the kernel still held the name's entry (from `cat`), and `echo x > f` said ENOENT
    // for up to 2 × the metadata TTL.
    const spoolDir = path.join(scratch, 'spool-stale-entry');
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const mf = await mountForeground(stack, projectId, ['--spool-dir', spoolDir, '--retry-timeout', '2']);
    const f = `${mf.dir}/managed/discarded-new.txt`;
    try {
      stack.dev.addFault({ target: 'synapse', pathPattern: '/file/multipart', method: 'POST', status: 503, rate: 1 });
      const w = await runPython(["f = open(__import__('sys').argv[1], 'w'); f.write('draft\\n'); f.close()"], [f], 60_000);
      stack.dev.clearFaults();
      assert.notEqual(w.code, 0, 'close reports the failed publish');
      assert.equal((await sh(`cat '${f}'`)).stdout, 'draft\n', 'shown while it waits (and the kernel caches the entry)');
      const list = await cli(['recover', '--list', '--spool-dir', spoolDir], { env });
      const entryId = list.stdout.split('\t')[0]!;
      assert.match(list.stdout, /discarded-new\.txt/);
      const d = await cli(['recover', '--spool-dir', spoolDir, '--discard', entryId], { env });
      assert.equal(d.code, 0, d.stderr);
      const again = await sh(`echo fresh > '${f}'`);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await sh(`cat '${f}'`)).stdout, 'fresh\n');
      const id = await childId(stack, await idOf(`${mf.dir}/managed`), 'discarded-new.txt');
      assert.ok(id, 'published in Synapse at close');
      assert.equal((await synapseBytes(id)).bytes.toString(), 'fresh\n');
    } finally {
      stack.dev.clearFaults();
      await mf.unmount();
    }
  });

  test('a file another client deleted, still in the kernel\'s and the listing\'s cache here, rewritten from empty becomes a new file (not a journaled failure)', async () => {
    const other = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool-other')]);
    const mine = `${m.dir}/managed/deleted-elsewhere.txt`;
    const theirs = `${other.dir}/managed/deleted-elsewhere.txt`;
    try {
      assert.equal((await sh(`echo old > '${mine}'`)).code, 0);
      const oldId = await idOf(mine);
      assert.equal((await sh(`cat '${theirs}'`)).stdout, 'old\n', 'the other mount caches the entry and the listing');
      assert.equal((await sh(`rm '${mine}'`)).code, 0);
      const again = await sh(`echo new > '${theirs}'`);
      assert.equal(again.code, 0, again.stderr);
      const newId = await idOf(theirs);
      assert.notEqual(newId, oldId, 'a new file, not the deleted one');
      assert.equal((await synapseBytes(newId)).bytes.toString(), 'new\n');
      assert.equal(await childId(stack, await idOf(`${m.dir}/managed`), 'deleted-elsewhere.txt'), newId);
      assert.doesNotMatch(other.output(), /publish failed/);
    } finally {
      await other.unmount();
    }
  });

  test('an exclusive create (open(…, "x")) of a name another writer\'s file took after the listing: EEXIST at close, that file untouched, the bytes kept for recover; a plain create of such a name becomes its next version', async () => {
    const dir = `${m.dir}/managed`;
    assert.equal((await sh(`ls '${dir}' > /dev/null`)).code, 0, 'the folder listed before the other files exist');
    // Made in Synapse by another writer: this mount's listing (60 s TTL) has not seen them.
    const theirs = await stack.seed.file(managedId, 'excl-theirs.txt', Buffer.from('theirs\n'));
    const plain = await stack.seed.file(managedId, 'plain-theirs.txt', Buffer.from('theirs\n'));
    const r = await runPython([
      'import errno, sys',
      'd = sys.argv[1]',
      'try:',
      '    with open(d + "/excl-theirs.txt", "x") as f:',
      '        f.write("mine\\n")',
      '    print("excl: ok")',
      'except OSError as e:',
      '    print("excl:", errno.errorcode.get(e.errno))',
      'with open(d + "/plain-theirs.txt", "w") as f:',
      '    f.write("mine\\n")',
      'print("plain: ok")',
    ], [dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /excl: EEXIST/, 'the exclusive create fails, at close (its open could not know)');
    assert.match(r.stdout, /plain: ok/);
    const theirsVersions = stack.seed.versions(theirs.id);
    assert.equal(theirsVersions.length, 1, 'their file got no version from an exclusive create');
    assert.equal((await synapseBytes(theirs.id)).bytes.toString(), 'theirs\n');
    assert.equal(stack.seed.versions(plain.id).length, 2, 'a plain create (O_TRUNC) of the name: its next version');
    assert.equal((await synapseBytes(plain.id)).bytes.toString(), 'mine\n');
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const list = await cli(['recover', '--list', '--spool-dir', path.join(scratch, 'spool')], { env });
    assert.match(list.stdout, /excl-theirs\.txt/, 'the bytes wait for recover');
  });

  test('a journal entry that cannot be read is reported by recover and recover --list (exit 1), never "nothing to recover"', async () => {
    // QA: a torn entry (a crash before it reached the disk) was skipped silently.
    const spoolDir = path.join(scratch, 'spool-torn');
    await sh(`mkdir -p '${spoolDir}/journal' '${spoolDir}/files' && printf '{"id": "abc' > '${spoolDir}/journal/abc.json'`);
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const list = await cli(['recover', '--list', '--spool-dir', spoolDir], { env });
    assert.equal(list.code, 1, list.stdout + list.stderr);
    assert.match(list.stdout, /^unreadable\t.*abc\.json\t/m);
    assert.doesNotMatch(list.stdout, /nothing to recover/);
    const rec = await cli(['recover', '--spool-dir', spoolDir, '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint], { env });
    assert.equal(rec.code, 1, rec.stdout + rec.stderr);
    assert.match(rec.stdout, /^unreadable\t.*abc\.json/m);
  });

  test('recover against an unreachable Synapse with only another Synapse\'s entries says so at once, without waiting for it', async () => {
    // QA (session 24): it waited the whole --retry-timeout to report entries it would never touch.
    const spoolDir = path.join(scratch, 'spool-elsewhere');
    await sh(`mkdir -p '${spoolDir}/journal' '${spoolDir}/files' && printf 'kept\\n' > '${spoolDir}/files/e1'`);
    const entry = {
      id: 'e1', spoolFile: path.join(spoolDir, 'files', 'e1'), parentId: 'syn1', name: 'f.txt', size: 5, md5: '3e6e3d8f4b1c8e2a0d2c6f2d3a9f1b7c',
      createdAt: new Date().toISOString(), error: 'Synapse unreachable', inSpool: true, endpoint: 'https://repo-prod.example.org/repo/v1',
    };
    await writeFile(path.join(spoolDir, 'journal', 'e1.json'), JSON.stringify(entry));
    const env = { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken };
    const started = Date.now();
    const rec = await cli(['recover', '--spool-dir', spoolDir, '--endpoint', 'http://127.0.0.1:3/repo/v1', '--retry-timeout', '120'], { env, timeoutMs: 60_000 });
    assert.equal(rec.code, 0, rec.stdout + rec.stderr);
    assert.match(rec.stdout, /^elsewhere\tsyn1\/f\.txt\t\tjournaled by a mount of the Synapse at https:\/\/repo-prod\.example\.org/m);
    assert.doesNotMatch(rec.stderr, /unreachable/i, 'never asked the unreachable one');
    assert.ok(Date.now() - started < 30_000, `answered without the retry timeout (${Date.now() - started} ms)`);
    assert.equal((await readdir(path.join(spoolDir, 'journal'))).length, 1, 'the entry stays');
    // Nor does it need a token for that (QA: "no Synapse auth token", exit 1).
    const noToken: NodeJS.ProcessEnv = { ...process.env, HOME: scratch };
    delete noToken['SYNAPSE_AUTH_TOKEN'];
    const bare = await cli(['recover', '--spool-dir', spoolDir, '--endpoint', 'http://127.0.0.1:3/repo/v1'], { env: noToken, timeoutMs: 60_000 });
    assert.equal(bare.code, 0, bare.stdout + bare.stderr);
    assert.match(bare.stdout, /^elsewhere\tsyn1\/f\.txt/m);
  });

  test('a program writing more files at once than --max-write-memory has part buffers for never hangs; every file is published whole', async () => {
    // Four 5 MiB buffers, eight outputs written in turn, 64 KiB at a time (a demultiplexer):
    // streamed files used to wait for buffers only the same program's later writes would free.
    const mf = await mountForeground(stack, projectId, ['--spool-dir', path.join(scratch, 'spool-demux'), '--part-size', '5M', '--max-write-memory', '20M']);
    try {
      const n = 8;
      const size = 12 * MiB + 321;
      const py = [
        'import hashlib, os, sys',
        `n, size, d = ${n}, ${size}, sys.argv[1]`,
        "fs = [open(os.path.join(d, f'demux-{i}.bin'), 'wb', buffering=0) for i in range(n)]",
        'hs = [hashlib.md5() for _ in range(n)]',
        'off = 0',
        'while off < size:',
        '    for i, f in enumerate(fs):',
        '        c = bytes([(off // 65536 + i) % 251]) * min(65536, size - off)',
        '        f.write(c); hs[i].update(c)',
        '    off += 65536',
        'for f in fs: f.close()',
        "print(' '.join(h.hexdigest() for h in hs))",
      ];
      const r = await runPython(py, [`${mf.dir}/sts`], 120_000);
      assert.equal(r.code, 0, `the demultiplexer finished: ${r.stderr}`);
      const want = r.stdout.trim().split(' ');
      assert.equal(want.length, n);
      for (let i = 0; i < n; i++) {
        const p = `${mf.dir}/sts/demux-${i}.bin`;
        const back = await sh(`md5sum < '${p}'`);
        assert.equal(back.stdout.split(/\s+/)[0], want[i], `demux-${i} reads back`);
        const id = await idOf(p);
        const { bytes } = await synapseBytes(id);
        assert.equal(bytes.length, size);
        assert.equal(md5(bytes), want[i], `demux-${i} in Synapse`);
      }
    } finally {
      await mf.unmount();
    }
  });
});
