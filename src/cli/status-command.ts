/**
 * `synapse-mount status [DIR] [--json]` (issue 8).
 *
 * With DIR: ask the process serving DIR over its control socket (control.ts) and print what it
 * is doing — uploads in flight with bytes uploaded, journal entries waiting for `recover`,
 * cache use, Synapse and S3 request/error counts, uptime, entity, endpoint (mount-status.ts).
 * Without DIR: one line per mount record (mount-registry.ts).
 *
 * A record whose process is gone is a dead mount, reported as such (with whether a stale FUSE
 * mount is left behind); a live process that does not answer within QUERY_TIMEOUT_MS is
 * "not answering". Exit status: 0 when DIR is live and answered (always 0 for the list), 1
 * otherwise. Nothing here touches a path inside a mount: /proc/self/mountinfo tells what is
 * mounted, so `status` works even on a hung mount.
 */
import path from 'node:path';
import { canonicalMountpoint, mountedType, readMountinfoText } from '../fs/preflight.js';
import type { MountStatus } from '../fs/mount-status.js';
import { ControlError, queryControl } from './control.js';
import { findMountRecord, listMountRecords, processAlive, removeMountRecord, socketOf, whereNow, type MountRecord } from './mount-registry.js';

const QUERY_TIMEOUT_MS = 3_000;

export type MountState = 'alive' | 'dead' | 'not-answering' | 'not-mounted';

export interface MountReport {
  mountpoint: string;
  state: MountState;
  pid?: number;
  entityId?: string;
  startedAt?: string;
  logFile?: string;
  /** Whether the mountpoint is in the mount table (a dead process can leave a stale mount). */
  mounted: boolean;
  /** Without a record of ours: mounted by synapse-mount all the same (another user's mount). */
  othersMount?: boolean;
  /** Why a live process gave no status. */
  error?: string;
  status?: MountStatus;
}

async function report(dir: string, rec: MountRecord | undefined): Promise<MountReport> {
  const type = await mountedType(dir);
  const mounted = type !== undefined;
  if (!rec) return { mountpoint: dir, state: 'not-mounted', mounted, ...(type === 'fuse.synapse-mount' ? { othersMount: true } : {}) };
  const base = {
    mountpoint: dir, pid: rec.pid, entityId: rec.entityId, startedAt: rec.startedAt, mounted,
    ...(rec.logFile ? { logFile: rec.logFile } : {}),
  };
  if (!processAlive(rec.pid)) return { ...base, state: 'dead' };
  try {
    const status = (await queryControl(socketOf(rec), 'status', QUERY_TIMEOUT_MS)) as MountStatus;
    // Where it is mounted now: the process knows only where it was mounted (QA: a folder above
    // it renamed, status of the new path printed the old one).
    return { ...base, state: 'alive', status: { ...status, mountpoint: dir } };
  } catch (err) {
    const e = err as ControlError;
    const why = e.code === 'ENOENT' ? 'no control socket (mounted by an older synapse-mount?)' : e.message;
    return { ...base, state: 'not-answering', error: why };
  }
}

export async function statusOf(mountpoint: string): Promise<MountReport> {
  const dir = canonicalMountpoint(mountpoint);
  return report(dir, await findMountRecord(dir));
}

/**
 * One report per recorded mount. A record whose process is gone and whose mountpoint is no
 * longer mounted says nothing any more (a killed mount someone unmounted by hand): it is
 * removed rather than listed forever. A dead process with its mount still there is listed.
 */
export async function statusAll(): Promise<MountReport[]> {
  const info = (await readMountinfoText()) ?? '';
  const records = await listMountRecords();
  const reports = await Promise.all(records.map((r) => report(whereNow(r, info) ?? r.mountpoint, r)));
  const live: MountReport[] = [];
  for (const [i, r] of reports.entries()) {
    if (r.state === 'dead' && !r.mounted && r.pid !== undefined) await removeMountRecord(records[i]!.mountpoint, r.pid).catch(() => undefined);
    else live.push(r);
  }
  return live;
}

// -- formatting --------------------------------------------------------------------------------

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatDuration(sec: number): string {
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function table(rows: string[][], indent = '  '): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => indent + r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

function oneLine(text: string, max = 100): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function deadLine(r: MountReport): string {
  const stale = r.mounted
    ? `a stale mount is left at ${r.mountpoint}; run: synapse-mount unmount ${r.mountpoint}`
    : `not mounted any more; clear the record with: synapse-mount unmount ${r.mountpoint}`;
  return `dead: the serving process (pid ${r.pid}) is gone; ${stale}`;
}

/** The full human report for one mount. */
export function formatReport(r: MountReport): string {
  if (r.state === 'not-mounted') {
    // Records are kept per user (XDG_STATE_HOME): another user's mount has none of ours (QA).
    if (r.othersMount) return `${r.mountpoint}: a synapse-mount mount with no record of yours: another user's (run status as the user who mounted it), or its record was removed\n`;
    return r.mounted
      ? `${r.mountpoint}: mounted, but not by synapse-mount (no mount record)\n`
      : `${r.mountpoint}: not a synapse-mount mount\n`;
  }
  if (r.state === 'dead') return `${r.mountpoint} (${r.entityId}): ${deadLine(r)}\n`;
  if (r.state === 'not-answering' || !r.status) {
    return `${r.mountpoint} (${r.entityId}, pid ${r.pid}): not answering: ${r.error ?? 'no status'}${r.logFile ? `; see ${r.logFile}` : ''}\n`;
  }
  const s = r.status;
  const lines: string[] = [];
  lines.push(`${s.mountpoint}: ${s.entityId} from ${s.endpoint} as ${s.userName}${s.readOnly ? ' (read-only)' : ''}`);
  lines.push(`  pid ${s.pid}, up ${formatDuration(s.uptimeSec)} (since ${s.startedAt})${s.logFile ? `, log ${s.logFile}` : ''}`);
  // Absent from a mount started by an older version.
  if (s.pageCache) {
    const use = (u: string): string => (u === 'kernel' ? 'use it' : 'bypass it');
    const rw = s.pageCache.readWriteOpens ? `; read-write opens ${use(s.pageCache.readWriteOpens)}` : '';
    const small = s.pageCache.smallReaders?.length ? ` (not for ${s.pageCache.smallReaders.join(', ')}: small reads)` : '';
    lines.push(`  Page cache: read-only opens ${use(s.pageCache.reads)}${small}${rw}; write-only opens ${use(s.pageCache.writeOnlyOpens)}`);
  }
  if (s.fuse) lines.push(`  FUSE:    ${s.fuse.kernelProtocol ? `protocol ${s.fuse.kernelProtocol}, ` : ''}requests up to ${formatBytes(s.fuse.maxReadBytes)} read, ${formatBytes(s.fuse.maxWriteBytes)} write`
    + ` (largest so far ${formatBytes(s.fuse.largestRead)} / ${formatBytes(s.fuse.largestWrite)})${s.pageCache?.reads === 'bypassed' ? `; shared mmap ${s.fuse.directIoSharedMmap ? 'allowed' : 'refused (ENODEV)'}` : ''}`);
  const sy = s.synapse;
  lines.push(`  Synapse: ${sy.requests} requests (${sy.calls} calls), ${sy.retries} retried, ${sy.throttled} throttled, ${sy.errors} errors; ${sy.inFlight} in flight, ${sy.queued} queued`
    // QA: a close waiting 45 s showed only "2 queued"; the wait is Synapse's 600 requests a minute.
    + (sy.heldForMs > 0 ? ` — held back ${Math.ceil(sy.heldForMs / 1000)} s more by Synapse's limit of 600 requests a minute` : ''));
  lines.push(`  S3:      ${s.s3.requests} requests, ${s.s3.errors} errors; ${formatBytes(s.s3.bytesDown)} down, ${formatBytes(s.s3.bytesUp)} up${s.s3Endpoint ? ` (${s.s3Endpoint})` : ''}`);
  const c = s.cache;
  const lookups = c.hits + c.misses;
  lines.push(`  Cache:   ${formatBytes(c.bytes)} of ${formatBytes(c.limitBytes)} in memory, ${formatBytes(c.fetchingBytes)} being fetched; `
    + `${c.hits} hits, ${c.misses} misses${lookups > 0 ? ` (${Math.round((100 * c.hits) / lookups)}% hit)` : ''}`
    + `${c.dir ? `; disk ${c.dir} (${c.diskHits} hits)` : ''}`);
  if (s.listings) lines.push(`  Folders: ${s.listings.folders} listings cached, ${s.listings.entries} entries (the least recently used go past 500,000)`);
  const uploads = inFlight(s);
  if (uploads.length === 0) {
    lines.push('  Uploads: none in flight');
  } else {
    lines.push(`  Uploads in flight (${uploads.length}):`);
    lines.push(table([
      ['PATH', 'SIZE', 'UPLOADED', 'STATE', 'ENTITY'],
      ...uploads.map((u) => [
        u.path, formatBytes(u.size),
        u.size > 0 ? `${formatBytes(u.uploaded)} (${Math.min(100, Math.floor((100 * u.uploaded) / u.size))}%)` : formatBytes(u.uploaded),
        u.state, u.entityId ?? 'new file',
      ]),
    ], '    '));
  }
  // Scratch files are never uploaded: listed apart, or they looked like uploads that never end (QA).
  const local = s.uploads.filter((u) => u.state === 'local');
  if (local.length > 0) {
    lines.push(`  Local only (${local.length}, never published; gone when the mount stops): ${local.map((u) => `${u.path} (${formatBytes(u.size)})`).join(', ')}`);
  }
  if (s.journal.length === 0) {
    lines.push(`  Journal: nothing waiting for recover (${s.spoolDir})`);
  } else {
    lines.push(`  Journal: ${s.journal.length} file(s) waiting for \`synapse-mount recover --spool-dir ${s.spoolDir}\`:`);
    lines.push(table([
      ['ID', 'TARGET', 'SIZE', 'SINCE', 'ERROR'],
      ...s.journal.map((j) => [j.id, `${j.parentId}/${j.name}`, formatBytes(j.size), j.createdAt, oneLine(j.error, 80)]),
    ], '    '));
  }
  if ((s.unreadableJournal ?? 0) > 0) {
    // QA: recover --list reported them and exited 1; status said nothing.
    lines.push(`  ${s.unreadableJournal} journal entr${s.unreadableJournal === 1 ? 'y' : 'ies'} cannot be read: \`synapse-mount recover --list --spool-dir ${s.spoolDir}\` names them (their bytes may be in the spool)`);
  }
  if (s.orphanedUploads > 0) {
    lines.push(`  ${s.orphanedUploads} orphaned S3 upload(s) from a dead process (aborted, or their unnamed objects deleted, at the next mount or recover)`);
  }
  return `${lines.join('\n')}\n`;
}

/** Files being written that will be published (scratch files, state `local`, never are). */
function inFlight(s: MountStatus): MountStatus['uploads'] {
  return s.uploads.filter((u) => u.state !== 'local');
}

/** One line per mount for the list. */
export function formatList(reports: MountReport[]): string {
  if (reports.length === 0) return 'no synapse-mount mounts\n';
  const rows = [['MOUNTPOINT', 'ENTITY', 'PID', 'STATE', 'UPTIME', 'UPLOADS', 'JOURNAL', 'CACHE', 'SYNAPSE REQ/ERR', 'S3 REQ/ERR']];
  for (const r of reports) {
    const s = r.status;
    if (r.state === 'alive' && s) {
      rows.push([
        r.mountpoint, s.entityId, String(s.pid), 'alive', formatDuration(s.uptimeSec), String(inFlight(s).length), String(s.journal.length),
        `${formatBytes(s.cache.bytes)}/${formatBytes(s.cache.limitBytes)}`, `${s.synapse.requests}/${s.synapse.errors}`, `${s.s3.requests}/${s.s3.errors}`,
      ]);
    } else {
      const state = r.state === 'dead' ? (r.mounted ? 'dead (stale mount)' : 'dead') : r.state;
      rows.push([r.mountpoint, r.entityId ?? '-', r.pid !== undefined ? String(r.pid) : '-', state, '-', '-', '-', '-', '-', '-']);
    }
  }
  return `${table(rows, '')}\n`;
}

export async function runStatus(opts: { mountpoint: string | undefined; json: boolean }, out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  if (opts.mountpoint === undefined) {
    const reports = await statusAll();
    out(opts.json ? `${JSON.stringify({ mounts: reports }, null, 2)}\n` : formatList(reports));
    return 0;
  }
  const r = await statusOf(opts.mountpoint);
  // A mount that is not there (dead, not ours, not answering) is the command's error: stderr,
  // like every other CLI error; --json always answers on stdout.
  if (opts.json) out(`${JSON.stringify(r, null, 2)}\n`);
  else if (r.state === 'alive') out(formatReport(r));
  else err(`synapse-mount: ${formatReport(r)}`); // one line, prefixed as every CLI error is
  return r.state === 'alive' ? 0 : 1;
}
