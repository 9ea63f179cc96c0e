/**
 * Disk cache and request budget, end to end (issue 9): real FUSE mounts served by the CLI in
 * child processes, S3 and Synapse traffic counted by the local stack's /_dev/stats.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, rm, stat, writeFile, truncate } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type Stack, type StatsSnapshot } from '../server/stack.js';
import { mountForeground, patternBytes, sh, synapseQuiet, tempDir, type Mounted } from './harness.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

function routeDelta(a: StatsSnapshot, b: StatsSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.synapse.byRoute)) {
    const d = v - (a.synapse.byRoute[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

async function md5Of(file: string): Promise<string> {
  const r = await sh(`md5sum '${file}'`);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split(' ')[0]!;
}

/** Block files under a cache dir: { file, size }. */
async function blockFiles(cacheDir: string): Promise<Array<{ file: string; size: number }>> {
  const out: Array<{ file: string; size: number }> = [];
  const root = path.join(cacheDir, 'blocks');
  for (const o of await readdir(root).catch(() => [] as string[])) {
    for (const f of await readdir(path.join(root, o)).catch(() => [] as string[])) {
      const st = await stat(path.join(root, o, f)).catch(() => undefined);
      if (st) out.push({ file: path.join(root, o, f), size: st.size });
    }
  }
  return out;
}

describe('disk cache and request budget', () => {
  let stack: Stack;
  let projectId: string;
  const big = patternBytes(40 * MiB, 11);
  const managedBytes = patternBytes(12 * MiB + 5, 12);
  const small = Buffer.from('small file\n');
  const scratch: string[] = [];
  const mounts: Mounted[] = [];

  async function mountWith(args: string[]): Promise<Mounted> {
    const m = await mountForeground(stack, projectId, args);
    mounts.push(m);
    return m;
  }
  async function unmount(m: Mounted): Promise<void> {
    await m.unmount();
    mounts.splice(mounts.indexOf(m), 1);
  }
  async function cacheDir(): Promise<string> {
    const d = await tempDir('cachedir-');
    scratch.push(d);
    return d;
  }
  /** Wait until the mount stops talking to Synapse (background size fetches after a listing). */
  const quiet = (): Promise<void> => synapseQuiet(stack, 300, 20_000);

  before(async () => {
    stack = await startStack({ fixture: 'empty' });
    projectId = stack.seed.project('Disk Cache Test');
    const sts = await stack.seed.folder(projectId, 'sts', { storage: 'sts' });
    await stack.seed.file(sts.id, 'big.bin', big);
    for (let i = 0; i < 5; i++) await stack.seed.file(sts.id, `small-${i}.txt`, small);
    const managed = await stack.seed.folder(projectId, 'managed', { storage: 'managed' });
    await stack.seed.file(managed.id, 'm.bin', managedBytes);
  });

  after(async () => {
    for (const m of [...mounts]) await m.unmount().catch(() => undefined);
    for (const d of scratch) await rm(d, { recursive: true, force: true }).catch(() => undefined);
    await stack?.close();
  });

  test('a remount with the same --cache-dir reads from disk: almost no S3 bytes, right md5, cold ls -l costs only the listing', async () => {
    const dir = await cacheDir();
    const first = await mountWith(['--cache-dir', dir]);
    assert.equal(await md5Of(`${first.dir}/sts/big.bin`), md5(big));
    assert.equal(await md5Of(`${first.dir}/managed/m.bin`), md5(managedBytes));
    const ls1 = await sh(`ls -l '${first.dir}/sts'`);
    assert.equal(ls1.code, 0, ls1.stderr);
    await quiet();
    await unmount(first);
    const stored = (await blockFiles(dir)).map((b) => path.basename(b.file)).sort();
    const blocks = stored.filter((f) => f.startsWith(`${8 * MiB}-`));
    assert.equal(blocks.length, 5 + 2, `five 8 MiB blocks of big.bin and two of m.bin on disk (${stored.join(' ')})`);
    // md5sum's first read is small (a header's, to the mount): its 1 MiB piece came first, and
    // gave way to its whole block.
    assert.deepEqual(stored.filter((f) => !blocks.includes(f)), [], 'and nothing else: no piece beside its block');

    const s0 = stack.dev.stats();
    const second = await mountWith(['--cache-dir', dir]);
    await quiet();
    const s1 = stack.dev.stats();
    const ls = await sh(`ls -l '${second.dir}/sts'`);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(` ${big.length} .* big\\.bin$`, 'm'), ls.stdout);
    assert.match(ls.stdout, new RegExp(` ${small.length} .* small-0\\.txt$`, 'm'));
    await quiet();
    const lsRoutes = routeDelta(s1, stack.dev.stats());
    assert.deepEqual(lsRoutes, { 'POST /entity/children': 2 }, 'cold ls -l after a remount: the root and folder listings only (sizes from the cache dir)');

    const s2 = stack.dev.stats();
    assert.equal(await md5Of(`${second.dir}/sts/big.bin`), md5(big));
    assert.equal(await md5Of(`${second.dir}/managed/m.bin`), md5(managedBytes));
    const s3 = stack.dev.stats();
    assert.ok(s3.s3.bytesOut - s2.s3.bytesOut < 64 * 1024, `S3 sent ${s3.s3.bytesOut - s2.s3.bytesOut} bytes for 52 MiB read from the disk cache`);
    const readRoutes = routeDelta(s2, s3);
    assert.ok(!readRoutes['POST /fileHandle/batch'], 'no presigned URL needed when every block is on disk');
    assert.ok(s0.synapse.requests < s3.synapse.requests);
    await unmount(second);
  });

  test('a truncated block file is detected and refetched, never served', async () => {
    const dir = await cacheDir();
    const m1 = await mountWith(['--cache-dir', dir]);
    assert.equal(await md5Of(`${m1.dir}/sts/big.bin`), md5(big));
    await unmount(m1);
    const victim = (await blockFiles(dir)).find((b) => b.file.endsWith(`${8 * MiB}-2.blk`));
    assert.ok(victim, 'block 2 of big.bin is cached');
    await truncate(victim.file, 4 * MiB);

    const s0 = stack.dev.stats();
    const m2 = await mountWith(['--cache-dir', dir]);
    assert.equal(await md5Of(`${m2.dir}/sts/big.bin`), md5(big));
    const sent = stack.dev.stats().s3.bytesOut - s0.s3.bytesOut;
    assert.ok(sent >= 8 * MiB && sent < 9 * MiB, `exactly the damaged block came from S3 (${sent} bytes)`);
    await unmount(m2);
    const again = (await blockFiles(dir)).find((b) => b.file === victim.file);
    assert.ok(again && again.size > 8 * MiB, 'the block was rewritten whole');
  });

  test('random reads keep their 1 MiB pieces on disk: a remount\'s same reads need no S3, and a later md5sum fetches only the rest', async () => {
    const dir = await cacheDir();
    // Four 4 KiB reads in four different blocks (each a seek), as python reads them.
    const offsets = [33 * MiB + 5000, 9 * MiB + 77, 25 * MiB + 4096, 17 * MiB + 123456];
    const reader = `import hashlib, sys
h = hashlib.md5()
with open(sys.argv[1], 'rb') as f:
    for off in map(int, sys.argv[2:]):
        f.seek(off); h.update(f.read(4096))
print(h.hexdigest())`;
    const readAt = async (m: Mounted, at: number[]): Promise<void> => {
      const r = await sh(`python3 -c "$R" '${m.dir}/sts/big.bin' ${at.join(' ')}`, { env: { ...process.env, R: reader } });
      assert.equal(r.stdout.trim(), md5(Buffer.concat(at.map((o) => big.subarray(o, o + 4096)))), r.stderr);
    };
    const readAll = (m: Mounted): Promise<void> => readAt(m, offsets);
    const first = await mountWith(['--cache-dir', dir]);
    const s0 = stack.dev.stats().s3.bytesOut;
    await readAll(first);
    assert.ok(stack.dev.stats().s3.bytesOut - s0 <= 4 * MiB + 64, 'a piece per read from S3');
    await quiet();
    await unmount(first);
    const pieces = (await blockFiles(dir)).filter((b) => path.basename(b.file).startsWith(`p${MiB}-`));
    assert.equal(pieces.length, 4, 'four pieces on disk');
    // A remount reads one of them (from disk), then the whole file: the other three pieces,
    // never in this mount's memory, come from disk too.
    const second = await mountWith(['--cache-dir', dir]);
    const s1 = stack.dev.stats().s3.bytesOut;
    await readAt(second, offsets.slice(0, 1));
    assert.ok(stack.dev.stats().s3.bytesOut - s1 < 64 * 1024, `a read after a remount came from disk (${stack.dev.stats().s3.bytesOut - s1} bytes from S3)`);
    const s2 = stack.dev.stats().s3.bytesOut;
    assert.equal(await md5Of(`${second.dir}/sts/big.bin`), md5(big));
    const rest = stack.dev.stats().s3.bytesOut - s2;
    assert.ok(rest <= big.length - 4 * MiB + 64 * 1024, `md5sum after it fetched ${rest} bytes: not the pieces on disk`);
    await quiet();
    await unmount(second);
    const left = (await blockFiles(dir)).filter((b) => path.basename(b.file).startsWith(`p${MiB}-`));
    assert.deepEqual(left.map((b) => b.file), [], 'the whole blocks took their pieces\' place on disk');
    // And every one of the reads, on a third mount, from disk.
    const third = await mountWith(['--cache-dir', dir]);
    const s3 = stack.dev.stats().s3.bytesOut;
    await readAll(third);
    assert.ok(stack.dev.stats().s3.bytesOut - s3 < 64 * 1024, `the same reads after a remount came from disk (${stack.dev.stats().s3.bytesOut - s3} bytes from S3)`);
    await unmount(third);
  });

  test('two mounts sharing one cache dir read correctly at once', async () => {
    const dir = await cacheDir();
    const [a, b] = await Promise.all([mountWith(['--cache-dir', dir]), mountWith(['--cache-dir', dir])]);
    const s0 = stack.dev.stats();
    const r = await sh([
      `md5sum '${a.dir}/sts/big.bin' > ${dir}/a1 &`,
      `md5sum '${b.dir}/sts/big.bin' > ${dir}/b1 &`,
      `md5sum '${a.dir}/managed/m.bin' > ${dir}/a2 &`,
      `md5sum '${b.dir}/managed/m.bin' > ${dir}/b2 &`,
      'wait',
      `cat ${dir}/a1 ${dir}/b1 ${dir}/a2 ${dir}/b2`,
    ].join('\n'));
    assert.equal(r.code, 0, r.stderr);
    const sums = r.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    assert.deepEqual(sums, [md5(big), md5(big), md5(managedBytes), md5(managedBytes)]);
    assert.ok(stack.dev.stats().s3.bytesOut - s0.s3.bytesOut <= 2 * (big.length + managedBytes.length) + MiB);
    await Promise.all([unmount(a), unmount(b)]);
    // Whatever either mount left is whole: a third mount reads it all from disk.
    const c = await mountWith(['--cache-dir', dir]);
    const s1 = stack.dev.stats();
    assert.equal(await md5Of(`${c.dir}/sts/big.bin`), md5(big));
    assert.ok(stack.dev.stats().s3.bytesOut - s1.s3.bytesOut < 64 * 1024, 'served from the shared cache');
    await unmount(c);
    assert.deepEqual(await readdir(path.join(dir, 'tmp')), [], 'no temp files left behind');
  });

  test('the cache stays under --cache-dir-size', async () => {
    const dir = await cacheDir();
    const bound = 10 * MiB;
    const m = await mountWith(['--cache-dir', dir, '--cache-dir-size', '10M', '--block-size', '1M']);
    assert.equal(await md5Of(`${m.dir}/sts/big.bin`), md5(big));
    assert.equal(await md5Of(`${m.dir}/managed/m.bin`), md5(managedBytes));
    await unmount(m);
    const blocks = await blockFiles(dir);
    const total = blocks.reduce((n, b) => n + b.size, 0);
    assert.ok(blocks.length > 0, 'some blocks are kept');
    assert.ok(total <= bound, `${total} bytes stored, bound ${bound}`);
  });

  test('after a listing and the first open, reading a file costs no Synapse request', async () => {
    // A small memory cache, so re-reads go back to S3 (not just to memory). A listing TTL longer
    // than the test, so a slow machine does not see the (legitimate) listing refresh.
    const m = await mountWith(['--cache-size', '16M', '--metadata-ttl', '600']);
    const ls = await sh(`ls -l '${m.dir}/sts' '${m.dir}/managed'`);
    assert.equal(ls.code, 0, ls.stderr);
    await quiet();

    const s0 = stack.dev.stats();
    const t0 = Date.now();
    assert.equal(await md5Of(`${m.dir}/sts/big.bin`), md5(big));
    assert.equal(await md5Of(`${m.dir}/managed/m.bin`), md5(managedBytes));
    const s1 = stack.dev.stats();
    const firstOpen = routeDelta(s0, s1);
    // The bundle of the version `ls -l` showed (the kernel may still hold that size: filesystem.ts).
    const bundles = ['POST /entity/{id}/bundle2', 'POST /entity/{id}/version/{n}/bundle2'];
    for (const route of Object.keys(firstOpen)) {
      assert.ok([...bundles, 'GET /entity/{id}/sts', 'POST /fileHandle/batch'].includes(route), `first open: ${route}`);
    }
    assert.ok(bundles.reduce((n, r) => n + (firstOpen[r] ?? 0), 0) <= 2, 'one bundle per file');
    // One STS request per storage location: the STS one (a token) and the managed one (a 400
    // that tells the mount to use presigned URLs — asked once per location, then remembered).
    assert.ok((firstOpen['GET /entity/{id}/sts'] ?? 0) <= 2, `one STS request per storage location: ${JSON.stringify(firstOpen)}`);
    assert.ok((firstOpen['POST /fileHandle/batch'] ?? 0) <= 1, 'one presigned URL for the managed file');

    // Again and again, sequential and random, dropping the kernel's page cache between reads.
    const reads = [
      `dd if='${m.dir}/sts/big.bin' of=/dev/null bs=1M iflag=nocache status=none`,
      `dd if='${m.dir}/sts/big.bin' of=/dev/null bs=1M iflag=nocache status=none`,
      `for s in 3 17 29 38 5; do dd if='${m.dir}/sts/big.bin' of=/dev/null bs=1M skip=$s count=1 iflag=nocache status=none; done`,
      `md5sum '${m.dir}/sts/big.bin' '${m.dir}/managed/m.bin' >/dev/null`,
      `stat '${m.dir}/sts/big.bin' >/dev/null; cat '${m.dir}/sts/small-1.txt' >/dev/null`,
    ];
    const s2 = stack.dev.stats();
    const t2 = Date.now();
    for (const cmd of reads) {
      const r = await sh(cmd);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    }
    const s3 = stack.dev.stats();
    const again = routeDelta(s2, s3);
    // The managed file's presigned URL lives 20 s: re-reading it from S3 later may refresh it
    // (at most once per 20 s) — the one kind of request reads may cost.
    const refreshes = again['POST /fileHandle/batch'] ?? 0;
    assert.ok(refreshes <= Math.ceil((Date.now() - t0) / 20_000), `${refreshes} URL refreshes in ${Date.now() - t0} ms`);
    delete again['POST /fileHandle/batch'];
    // small-1.txt is opened for the first time here: its handle came with its size, in the
    // bundle2 of the `ls -l` above — no request for it (until session 28: /version, then a bundle).
    const bundlesAgain = bundles.reduce((n, r) => n + (again[r] ?? 0), 0);
    for (const r of bundles) delete again[r];
    assert.equal(bundlesAgain, 0, `no bundle for the newly opened file (${Date.now() - t2} ms)`);
    assert.deepEqual(again, {}, `re-reads cost Synapse requests: ${JSON.stringify(again)} (${Date.now() - t2} ms)`);
    assert.ok(s3.s3.bytesOut - s2.s3.bytesOut > 40 * MiB, 're-reads did reach S3 (the memory cache is small)');
    await unmount(m);
  });
  test('a file written through the mount (Synapse storage) fills the disk cache: the next mount reads it without S3', async () => {
    const dir = await cacheDir();
    const data = patternBytes(9 * MiB + 3, 21);
    const src = path.join(dir, 'src.bin');
    await writeFile(src, data);
    const w = await mountWith(['--cache-dir', path.join(dir, 'c'), '--spool-dir', path.join(dir, 'spool')]);
    const cp = await sh(`cp '${src}' '${w.dir}/managed/written.bin'`);
    assert.equal(cp.code, 0, cp.stderr);
    await unmount(w);
    const r = await mountWith(['--cache-dir', path.join(dir, 'c'), '--read-only']);
    const s0 = stack.dev.stats().s3.bytesOut;
    assert.equal(await md5Of(`${r.dir}/managed/written.bin`), md5(data));
    assert.ok(stack.dev.stats().s3.bytesOut - s0 < 64 * 1024, 'served from the disk cache filled at write time');
    await unmount(r);
  });
  test('a cache on the spool\'s disk gives way when a write needs the room (no ENOSPC while the cache holds blocks)', async () => {
    // QA: spool and --cache-dir on one 64 MiB disk; an 80 MiB read left 49 MiB of blocks, and
    // the next 100 MiB write failed with ENOSPC after 15 MiB.
    const disk = await tempDir('shared-disk-');
    scratch.push(disk);
    assert.equal((await sh(`mount -t tmpfs -o size=64m synapse-test-tmpfs '${disk}'`)).code, 0);
    try {
      const m = await mountWith(['--cache-dir', `${disk}/cache`, '--spool-dir', `${disk}/spool`]);
      assert.equal(await md5Of(`${m.dir}/sts/big.bin`), md5(big));
      const cached = (await sh(`du -sm '${disk}/cache'`)).stdout.split('\t')[0];
      assert.ok(Number(cached) >= 30, `the read filled the cache (${cached} MiB)`);
      const w = await sh(`head -c ${40 * MiB} /dev/urandom > '${disk}/../src-40m' && cp '${disk}/../src-40m' '${m.dir}/managed/big-write.bin' && cmp '${disk}/../src-40m' '${m.dir}/managed/big-write.bin'`, { timeoutMs: 120_000 });
      assert.equal(w.code, 0, w.stderr);
      const after = (await sh(`du -sm '${disk}/cache'`)).stdout.split('\t')[0];
      assert.ok(Number(after) < Number(cached), `the cache gave way (${cached} → ${after} MiB)`);
      await unmount(m);
    } finally {
      await sh(`umount '${disk}'; rm -f '${disk}/../src-40m'`);
    }
  });
});
