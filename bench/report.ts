/**
 * The bench's table: every key of results.json with its value, the issue's target (#7 /
 * DESIGN §8), pass/FAIL, and a note from the run (baselines, request counts, CPU use).
 */
import type { Results } from './run.js';

export interface Row {
  key: string;
  value: number | null;
  note: string;
}

/**
 * What the mount's seq read and write are compared with the peers on: its best of the rounds the
 * peers ran in (run.ts: they run in the first rounds only). Absent: the figure itself.
 */
export interface AheadBasis {
  read?: number;
  write?: number;
}

type Check = (v: number, r: Results, basis: AheadBasis) => boolean | null;

interface Target {
  text: string;
  check: Check;
}

const num = (x: number | null): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** Targets from issue #7. A check returns null when a figure it depends on is missing. */
export const TARGETS: Record<string, Target> = {
  seq_read_ratio: { text: '≥ 0.9', check: (v) => v >= 0.9 },
  seq_read_ratio_latency: { text: '≥ 0.8', check: (v) => v >= 0.8 },
  seq_write_ratio: { text: '≥ 0.8', check: (v) => v >= 0.8 },
  par_read_ratio: { text: '≥ 0.8', check: (v) => v >= 0.8 },
  rand_read_4k_warm_iops: { text: '≥ 5000', check: (v) => v >= 5000 },
  ls_1000_cold_s: { text: '≤ 1.5', check: (v) => v <= 1.5 },
  ls_l_1000_warm_s: { text: '≤ 0.1', check: (v) => v <= 0.1 },
  ls_l_1000_cold_s: {
    text: '≤ 1.1 × bound',
    check: (v, r) => (num(r.ls_l_1000_throttle_bound_s) === null ? null : v <= 1.1 * r.ls_l_1000_throttle_bound_s!),
  },
  ls_l_1000_synapse_requests: { text: '≤ 1030', check: (v) => v <= 1030 },
  ls_l_1000_view_cold_s: { text: '≤ 3', check: (v) => v <= 3 },
  rss_peak_mib: {
    text: '≤ cache + write buf + 128',
    check: (v, r) => (num(r.cache_mib) === null || num(r.write_buffer_mib) === null ? null : v <= r.cache_mib! + r.write_buffer_mib! + 128),
  },
  seq_read_mbps: {
    text: '> s3fs, rclone',
    check: (v, r, basis) => aheadOf(basis.read ?? v, [r.peers.s3fs.seq_read_mbps, r.peers.rclone.seq_read_mbps]),
  },
  seq_write_mbps: {
    text: '> s3fs, rclone',
    check: (v, r, basis) => aheadOf(basis.write ?? v, [r.peers.s3fs.seq_write_mbps, r.peers.rclone.seq_write_mbps]),
  },
};

function aheadOf(v: number, peers: Array<number | null>): boolean | null {
  const known = peers.filter((p): p is number => num(p) !== null);
  if (known.length === 0) return null;
  return known.every((p) => v > p);
}

const UNITS: Record<string, string> = {
  seq_read_mbps: 'MiB/s', seq_write_mbps: 'MiB/s', ls_1000_cold_s: 's', ls_l_1000_cold_s: 's', ls_l_1000_warm_s: 's',
  ls_l_1000_throttle_bound_s: 's', ls_l_1000_view_cold_s: 's', rss_peak_mib: 'MiB', cache_mib: 'MiB', write_buffer_mib: 'MiB',
  rand_read_4k_warm_iops: 'IOPS',
};

function fmt(v: number | null, unit: string): string {
  if (v === null) return 'null';
  if (Number.isInteger(v)) return String(v);
  if (unit === 'MiB/s' || v >= 100) return v.toFixed(1);
  return v.toFixed(3);
}

/** The results as an aligned text table (also pasted into bench/README.md). */
export function formatTable(r: Results, rows: Row[], notes: string[], machine: string, basis: AheadBasis = {}): string {
  const noteOf = new Map(rows.map((x) => [x.key, x.note]));
  const lines: Array<[string, string, string, string, string]> = [];
  const flat: Array<[string, number | null]> = [];
  for (const [k, v] of Object.entries(r)) {
    if (k === 'peers') continue;
    flat.push([k, v as number | null]);
  }
  for (const peer of ['s3fs', 'rclone'] as const) {
    flat.push([`peers.${peer}.seq_read_mbps`, r.peers[peer].seq_read_mbps]);
    flat.push([`peers.${peer}.seq_write_mbps`, r.peers[peer].seq_write_mbps]);
  }
  for (const [k, v] of flat) {
    const t = TARGETS[k];
    let verdict = '';
    if (t) {
      const ok = v === null ? null : t.check(v, r, basis);
      verdict = ok === null ? '—' : ok ? 'pass' : 'FAIL';
    }
    const unit = UNITS[k.replace(/^peers\.\w+\./, '')] ?? '';
    lines.push([k, `${fmt(v, unit)}${unit && v !== null ? ` ${unit}` : ''}`, t?.text ?? '', verdict, noteOf.get(k) ?? '']);
  }
  const head: [string, string, string, string, string] = ['figure', 'value', 'target', '', 'notes'];
  const w = [0, 1, 2, 3].map((i) => Math.max(...[head, ...lines].map((l) => l[i]!.length)));
  const row = (l: string[]): string => `| ${l.map((c, i) => (i < 4 ? c.padEnd(w[i]!) : c)).join(' | ')} |`;
  const out = [
    `synapse-mount bench — ${machine}`,
    '',
    row(head),
    `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|---|`,
    ...lines.map(row),
  ];
  if (notes.length) out.push('', ...notes.map((n) => `- ${n}`));
  return out.join('\n');
}
