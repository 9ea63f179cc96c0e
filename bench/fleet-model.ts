/**
 * bench/fleet-model — how many nodes can mount the same project before Synapse says no?
 *
 * Measures, on the local stack, the Synapse requests one mount makes for: starting; a cold
 * `ls -lR` of a tree; opening and reading files (STS and Synapse-managed storage); and the same
 * `ls -lR` again after a remount with --cache-dir (sizes persisted). From those counts it
 * projects the requests per minute of N nodes × M files against Synapse's per-user limit of
 * 600 requests per 60 s (all nodes usually share one token), and prints where it breaks and
 * which setting avoids it. Usage:
 *
 *   npx tsx bench/fleet-model.ts [--nodes 100] [--files 1000] [--folders 10] [--stagger-min 10] [--read-hours 1]
 *
 * The model (per node, requests):
 *   startup            measured (token check + root entity)
 *   listing            ceil(files_per_folder / 50) pages per folder (measured per folder)
 *   sizes              1 per file (measured), 0 with --metadata-view (≈3 per folder) or a warm --cache-dir
 *   opens              1 bundle2 per file opened (measured), + 1 STS per storage location per hour
 *   reading            0 for STS storage; 1 batch per 20 s of reading for presigned storage
 *   relisting          folders × pages every --metadata-ttl seconds while in use (0 with indefinite)
 */
import { parseArgs } from 'node:util';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type Stack } from '../test/server/stack.js';
import { mountForeground, sh, tempDir } from '../test/e2e/harness.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    files: { type: 'string', default: '1000' },
    folders: { type: 'string', default: '10' },
    'stagger-min': { type: 'string', default: '10' },
    'read-hours': { type: 'string', default: '1' },
  },
});
const NODES = Number(values.nodes);
const FILES = Number(values.files);
const FOLDERS = Number(values.folders);
const STAGGER_MIN = Math.max(1 / 60, Number(values['stagger-min']));
const READ_HOURS = Number(values['read-hours']);
const LIMIT_PER_MIN = 600;

function total(stack: Stack): number {
  return stack.dev.stats().synapse.requests;
}

interface Measured {
  startup: number; lsLR: number; lsLRWarmDisk: number; folders: number; filesListed: number;
  perStsOpen: number; perManagedOpen: number;
}

async function measure(): Promise<Measured> {
  const stack = await startStack({ fixture: 'empty' });
  const scratch = await tempDir('fleet-');
  try {
    const p = stack.seed.project('Fleet');
    const sts = await stack.seed.folder(p, 'sts', { storage: 'sts' });
    const managed = await stack.seed.folder(p, 'managed', { storage: 'managed' });
    const perFolder = 120; // > 2 pages of 50
    for (let i = 0; i < perFolder; i++) {
      await stack.seed.file(sts.id, `s${i}.txt`, Buffer.from(`sts ${i}\n`));
      await stack.seed.file(managed.id, `m${i}.txt`, Buffer.from(`managed ${i}\n`));
    }
    const cacheDir = path.join(scratch, 'cache');
    const r0 = total(stack);
    const m = await mountForeground(stack, p, ['--read-only', '--cache-dir', cacheDir]);
    const startup = total(stack) - r0;
    const r1 = total(stack);
    await sh(`ls -lR '${m.dir}' > /dev/null`);
    const lsLR = total(stack) - r1;
    const r2 = total(stack);
    await sh(`cat '${m.dir}'/sts/s1*.txt > /dev/null`); // 31 files in one STS location
    const stsOpens = total(stack) - r2;
    const r3 = total(stack);
    await sh(`cat '${m.dir}'/managed/m1*.txt > /dev/null`); // 31 presigned files
    const managedOpens = total(stack) - r3;
    await m.unmount();
    const m2 = await mountForeground(stack, p, ['--read-only', '--cache-dir', cacheDir]);
    const r4 = total(stack);
    await sh(`ls -lR '${m2.dir}' > /dev/null`);
    const lsLRWarmDisk = total(stack) - r4;
    await m2.unmount();
    return {
      startup, lsLR, lsLRWarmDisk, folders: 2, filesListed: 2 * perFolder,
      perStsOpen: stsOpens / 31, perManagedOpen: managedOpens / 31,
    };
  } finally {
    await stack.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

const m = await measure();
const pagesPerFolder = Math.ceil(FILES / FOLDERS / 50);
const listing = (m.lsLR - m.filesListed) / m.folders; // per folder (pages + folder overhead)
const perNode = {
  startup: m.startup,
  listing: FOLDERS * Math.max(listing, pagesPerFolder),
  sizes: FILES,
  opens: FILES * Math.max(m.perStsOpen, m.perManagedOpen),
  stsPerHour: 1,
};
const coldPerNode = perNode.startup + perNode.listing + perNode.sizes + perNode.opens;
const warmPerNode = perNode.startup + perNode.listing + perNode.opens; // sizes from --cache-dir
const viewPerNode = perNode.startup + perNode.listing + FOLDERS * 3 + perNode.opens;
const perMinute = (perNodeRequests: number): number => (NODES * perNodeRequests) / STAGGER_MIN;

console.log('measured per mount (local stack):');
console.log(`  startup ${m.startup} requests; ls -lR of ${m.filesListed} files in ${m.folders} folders ${m.lsLR}` +
  ` (${m.lsLRWarmDisk} after a remount with --cache-dir); per open: STS ${m.perStsOpen.toFixed(2)}, presigned ${m.perManagedOpen.toFixed(2)}`);
console.log(`projection: ${NODES} nodes × ${FILES} files in ${FOLDERS} folders, starts spread over ${STAGGER_MIN} min, one token (${LIMIT_PER_MIN}/min):`);
const rows: Array<[string, number]> = [
  ['cold (ls -lR + read every file)', coldPerNode],
  ['with --cache-dir warm (sizes on disk)', warmPerNode],
  ['with --metadata-view', viewPerNode],
];
for (const [label, n] of rows) {
  const rpm = perMinute(n);
  const maxNodes = Math.floor((LIMIT_PER_MIN * STAGGER_MIN) / n);
  console.log(`  ${label.padEnd(40)} ${String(Math.round(n)).padStart(7)} req/node  ${rpm.toFixed(0).padStart(8)} req/min  ${rpm > LIMIT_PER_MIN ? 'BREAKS' : 'ok'}  (max ${maxNodes} nodes)`);
}
const steadyPerMin = (NODES * perNode.stsPerHour) / 60;
console.log(`  steady reading (STS storage, ${READ_HOURS} h): ${(steadyPerMin).toFixed(1)} req/min — one STS refresh per node per location per hour`);
const worst = perMinute(coldPerNode);
if (worst > LIMIT_PER_MIN) {
  const neededStagger = Math.ceil((NODES * coldPerNode) / LIMIT_PER_MIN);
  console.log(`advice: at ${worst.toFixed(0)} req/min the fleet is throttled (429s, retried). Any of:`);
  console.log(`  - spread starts over ≥ ${neededStagger} min (e.g. RandomizedDelaySec in the systemd unit, or a Slurm array throttle);`);
  console.log('  - a shared --cache-dir on each node (sizes and blocks survive remounts);');
  console.log('  - --metadata-view <file view> (sizes for a folder in one query);');
  console.log('  - --metadata-ttl indefinite for data that does not change (no re-listing);');
  console.log('  - one token per user/group rather than one for the whole fleet (limits are per user).');
}
