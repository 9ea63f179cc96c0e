/**
 * --metadata-view end to end: a real FUSE mount served by the CLI (dist/) against the local
 * stack with Synapse throttling on (3 concurrent, 600/min) and 50 ms latency. A cold `ls -l` of a
 * 300-file folder takes every size from one view query (≤ 10 Synapse requests for sizes, none per
 * file), and a file changed after the view last replicated (the view's currentVersion lags the
 * listing's) still shows its right size, fetched the per-file way — for that file only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type Stack, type StatsSnapshot } from '../server/stack.js';
import { mountForeground, sh, synapseQuiet, type Mounted } from './harness.js';

/** A file's size on its own: bundle2 (with the handle its open needs), or /version without DOWNLOAD. */
const PER_FILE_ROUTES = ['GET /entity/{id}/version', 'POST /entity/{id}/bundle2'];
const QUERY_ROUTES = ['POST /entity/{id}/table/query/async/start', 'GET /entity/{id}/table/query/async/get/{asyncToken}'];
const SIZE_ROUTES = [...PER_FILE_ROUTES, ...QUERY_ROUTES, 'POST /fileHandle/batch'];

function routeDelta(a: StatsSnapshot, b: StatsSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.synapse.byRoute)) {
    const d = v - (a.synapse.byRoute[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}
const sum = (d: Record<string, number>, keys: string[]): number => keys.reduce((n, k) => n + (d[k] ?? 0), 0);

/** name → size from `ls -l` output (GNU ls: the size is the 5th field, the name the last). */
function lsSizes(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 9 && f[0]!.startsWith('-')) m.set(f.slice(8).join(' '), Number(f[4]));
  }
  return m;
}

describe('--metadata-view', () => {
  let stack: Stack;
  let projectId: string;
  let viewId: string;
  const mounts: Mounted[] = [];
  const many = new Map<string, number>();
  let changedFolder: string;
  const changed: Array<{ id: string; name: string; size: number }> = [];

  /** Wait until the mount stops talking to Synapse. */
  const quiet = (): Promise<void> => synapseQuiet(stack);

  before(async () => {
    stack = await startStack({ fixture: 'empty' });
    projectId = stack.seed.project('Metadata View Test');
    const folder = await stack.seed.folder(projectId, 'many');
    for (let i = 0; i < 300; i++) {
      const name = `f${String(i).padStart(3, '0')}.dat`;
      const size = (i * 37) % 1000;
      await stack.seed.file(folder.id, name, Buffer.alloc(size, i % 251));
      many.set(name, size);
    }
    changedFolder = (await stack.seed.folder(projectId, 'changed')).id;
    for (let i = 0; i < 20; i++) {
      const name = `c${i}.txt`;
      const size = 10 + i;
      const f = await stack.seed.file(changedFolder, name, Buffer.alloc(size, 7));
      changed.push({ id: f.id, name, size });
    }
    viewId = stack.seed.view(projectId, 'Project files', [projectId]);
    stack.dev.setConfig({ throttle: true, synapseLatencyMs: 50 });
  });

  after(async () => {
    for (const m of mounts) await m.unmount().catch(() => undefined);
    await stack?.close();
  });

  test('cold ls -l of 300 files: sizes from one view query, ≤ 10 Synapse requests for sizes, none per file', async (t) => {
    const m = await mountForeground(stack, projectId, ['--metadata-view', viewId]);
    mounts.push(m);
    await quiet();
    const s0 = stack.dev.stats();
    const t0 = Date.now();
    const ls = await sh(`ls -l '${m.dir}/many'`);
    const ms = Date.now() - t0;
    assert.equal(ls.code, 0, ls.stderr);
    const got = lsSizes(ls.stdout);
    assert.equal(got.size, 300);
    for (const [name, size] of many) assert.equal(got.get(name), size, name);
    await quiet();
    const d = routeDelta(s0, stack.dev.stats());
    t.diagnostic(`cold ls -l of 300 files: ${ms} ms; requests ${JSON.stringify(d)}`);
    assert.equal(sum(d, PER_FILE_ROUTES), 0, 'no per-file size request');
    assert.ok(sum(d, SIZE_ROUTES) <= 10, `size requests: ${JSON.stringify(d)}`);
    assert.ok(sum(d, QUERY_ROUTES) >= 2, 'the view was asked');
    assert.equal(d['POST /entity/children'], 1 + 6, 'the root listing and 6 pages of 50');
    assert.equal(stack.dev.stats().synapse.throttled - s0.synapse.throttled, 0, 'never throttled');

    // warm: all memory
    const s1 = stack.dev.stats();
    const warm = await sh(`ls -l '${m.dir}/many'`);
    assert.equal(lsSizes(warm.stdout).size, 300);
    assert.equal(stack.dev.stats().synapse.requests - s1.synapse.requests, 0, 'a warm ls -l makes no request');
    await m.unmount();
    mounts.splice(mounts.indexOf(m), 1);
  });

  test('a file changed after the view replicated shows its right size via the per-file fallback', async (t) => {
    // The view stops replicating now; two files then get new versions (new sizes) in Synapse.
    const at = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    stack.dev.setConfig({ viewSnapshotAtMs: at });
    try {
      const bumped = [changed[3]!, changed[11]!];
      for (const f of bumped) {
        f.size = 5000 + f.size;
        await stack.seed.fileVersion(f.id, Buffer.alloc(f.size, 9));
      }
      const m = await mountForeground(stack, projectId, ['--metadata-view', viewId]);
      mounts.push(m);
      await quiet();
      const s0 = stack.dev.stats();
      const ls = await sh(`ls -l '${m.dir}/changed'`);
      assert.equal(ls.code, 0, ls.stderr);
      const got = lsSizes(ls.stdout);
      for (const f of changed) assert.equal(got.get(f.name), f.size, f.name);
      await quiet();
      const d = routeDelta(s0, stack.dev.stats());
      t.diagnostic(`requests ${JSON.stringify(d)}`);
      assert.equal(sum(d, PER_FILE_ROUTES), 2, 'exactly the two files whose view row is stale, once each');
      assert.ok(sum(d, QUERY_ROUTES) <= 4);
      await m.unmount();
      mounts.splice(mounts.indexOf(m), 1);
    } finally {
      stack.dev.setConfig({ viewSnapshotAtMs: 0 });
    }
  });

  test('-o metadata_view= works too; a --metadata-view that is not a view fails the mount with a clear message', async () => {
    const m = await mountForeground(stack, projectId, ['-o', `metadata_view=${viewId}`]);
    mounts.push(m);
    const ls = await sh(`ls -l '${m.dir}/changed'`);
    assert.equal(ls.code, 0, ls.stderr);
    await m.unmount();
    mounts.splice(mounts.indexOf(m), 1);

    await assert.rejects(mountForeground(stack, projectId, ['--metadata-view', changedFolder]), /is a Folder, not a file view/);
  });
});
