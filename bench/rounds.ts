/**
 * How the bench's throughput rounds are run and compared (run.ts runs them).
 *
 * Throughput figures run interleaved rounds — the direct client and a fresh mount back to back,
 * their order swapped every round (inTurn) — and each ratio is the median over rounds of that
 * round's own ratio (pairedRatio). This 2-core VM is shared (noisy neighbours, host-side memory
 * reclaim): one run of either side varies by 2× between rounds, and the server's own CPU per GiB
 * is bimodal here (≈ 1.7–2.2 s or ≈ 4.4–5.9 s for the same cold read, whichever client asks —
 * `serverCpu` in the details). Two runs of one round are seconds apart and mostly share the
 * machine's mood, so their ratio cancels most of it; the median then ignores the odd round one
 * side spent in a slow spell.
 *
 * Until session 13 each ratio divided each side's best run by the other's. That followed each
 * side's luckiest round: in session 12's two full runs best-of-N put seq_read_ratio at 0.756 and
 * 1.160 and the latency ratio at 0.856 and 0.664 (round by round 0.58–1.06). The best-of ratio is
 * still in each note, and every run is kept in .tmp/bench-details.json.
 *
 * Rounds come in even numbers so that each side runs second as often as first (whichever runs
 * second starts just after the other freed its memory, which on this VM can tilt a comparison).
 */

import type { ThreadTimes } from './sys.js';

/** `x` to `digits` decimals, as the bench reports every figure. */
export const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

export interface Run {
  mbps: number;
  seconds: number;
  cpu: number;
  /** This process (s3rver, the gate, Synapse) during the run: CPU s, of which GC s, and minor page faults. */
  serverCpu?: number;
  serverGc?: number;
  serverFaults?: number;
  s3Bytes?: number;
  s3Requests?: number;
  /** Writes: how long s3rver took to answer CompleteMultipartUpload (a copy of every part here; metadata only on S3). */
  s3CompleteSeconds?: number;
  /** Seconds on a CPU and waiting for one, by thread group, of this process and of the client (the mount or the direct client) during the run. */
  sched?: { server: ThreadTimes; client: ThreadTimes };
}

export interface Rounds {
  direct: Run[];
  mount: Run[];
}

export function fastest(runs: Run[]): Run {
  return runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

export function best(r: Rounds): { mount: Run; direct: Run } {
  return { mount: fastest(r.mount), direct: fastest(r.direct) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Each round's mount ÷ direct throughput (the same bytes each side, so direct's seconds ÷ the mount's). */
export function roundRatios(r: Rounds): number[] {
  const n = Math.min(r.mount.length, r.direct.length);
  return Array.from({ length: n }, (_, i) => r.direct[i]!.seconds / r.mount[i]!.seconds);
}

/** The figure: the median of the rounds' own ratios (see this module's head). */
export function pairedRatio(r: Rounds): number {
  return round(median(roundRatios(r)));
}

/** What .tmp/bench-details.json keeps of a figure's rounds: each side's best, every run, the rounds' ratios. */
export function roundsDetail(r: Rounds): { mount: Run; direct: Run; runs: Rounds; round_ratios: number[] } {
  return { ...best(r), runs: r, round_ratios: roundRatios(r) };
}

export function describeRounds(r: Rounds): string {
  const { mount, direct } = best(r);
  const ratios = roundRatios(r);
  return `median of ${ratios.length} rounds' ratios ${ratios.map((x) => x.toFixed(2)).join(', ')}; `
    + `best of each side ${round(direct.seconds / mount.seconds)} (mount ${r.mount.map((x) => x.mbps).join(', ')}; direct ${r.direct.map((x) => x.mbps).join(', ')})`;
}

/**
 * Medians over the runs of each side of the seconds threads spent on a CPU and waiting for one:
 * s3rver's thread (this process's main thread) and the client's threads (the direct client's
 * main; the mount's main and its other named threads). '' when no run has them.
 */
export function describeThreadTimes(r: Rounds): string {
  /** "run/wait" medians of one thread group over `runs` (undefined when no run has it). */
  const medians = (runs: Run[], side: 'server' | 'client', group: string): string | undefined => {
    const ts = runs.map((x) => x.sched?.[side][group]).filter((t): t is ThreadTimes[string] => t !== undefined);
    return ts.length ? `${median(ts.map((t) => t.run)).toFixed(2)}/${median(ts.map((t) => t.wait)).toFixed(2)}` : undefined;
  };
  const mountGroups = [...new Set(r.mount.flatMap((x) => Object.keys(x.sched?.client ?? {})))];
  const parts = [
    ['s3rver\'s thread in direct runs', medians(r.direct, 'server', 'main')],
    ['in mount runs', medians(r.mount, 'server', 'main')],
    ['direct client\'s main', medians(r.direct, 'client', 'main')],
    ...mountGroups.map((g) => [`mount's ${g}`, medians(r.mount, 'client', g)]),
  ].filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`);
  return parts.length ? `threads, s on a CPU/waiting for one (medians): ${parts.join(', ')}` : '';
}

/**
 * One round's two sides, the direct client's first in even rounds and the mount's first in odd
 * ones. Whichever runs second starts right after the other's process exited, and on this VM
 * that can matter: part of its fresh memory is what the other just freed. In one comparison a
 * variant run second looked 17 % faster in a fixed order and was slower once the order
 * alternated (bench/README.md, "Session 12"). Until session 12 the direct client always ran first.
 */
export async function inTurn(i: number, directSide: () => Promise<void>, mountSide: () => Promise<void>): Promise<void> {
  if (i % 2 === 0) {
    await directSide();
    await mountSide();
  } else {
    await mountSide();
    await directSide();
  }
}


export interface PacerOptions {
  /** When the run started (ms since the epoch). */
  startedAt: number;
  /** The run's time limit, s. */
  targetS: number;
  /** What the groups after this one need, s. */
  reserveS: number;
  /** Rounds always run (an even number). */
  minRounds: number;
  /** What a round is expected to take before one has been timed (s; default 0: the first pair always runs past minRounds). */
  firstRoundS?: number;
  /** Told when the group stops early: rounds run, and the two more that did not fit (s). */
  onStop?: (rounds: number, pairS: number) => void;
  now?: () => number;
}

/**
 * Keeps a group of rounds inside the run's time limit. `another(round)` is asked before each
 * round; the group stops only after an even number of rounds (each side first as often as
 * second), at least `minRounds`, and only when two more rounds as long as its longest so far
 * would leave the groups after it less than `reserveS`.
 */
export class Pacer {
  private last: number;
  private longestS: number;
  private readonly now: () => number;

  constructor(private readonly opts: PacerOptions) {
    this.now = opts.now ?? Date.now;
    this.last = this.now();
    this.longestS = opts.firstRoundS ?? 0;
  }

  another(round: number): boolean {
    const now = this.now();
    if (round > 0) this.longestS = Math.max(this.longestS, (now - this.last) / 1000);
    this.last = now;
    if (round < this.opts.minRounds || round % 2 === 1) return true;
    const elapsedS = (now - this.opts.startedAt) / 1000;
    if (elapsedS + 2 * this.longestS <= this.opts.targetS - this.opts.reserveS) return true;
    this.opts.onStop?.(round, 2 * this.longestS);
    return false;
  }
}
