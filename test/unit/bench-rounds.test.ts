/**
 * The bench's estimator (bench/rounds.ts): each ratio is the median of the rounds' own
 * mount ÷ direct ratios, not one side's best divided by the other's, and the rounds alternate
 * which side runs first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeThreadTimes, inTurn, Pacer, pairedRatio, roundRatios, type Rounds } from '../../bench/rounds.js';
import { threadTimes, threadTimesSince } from '../../bench/sys.js';

const run = (seconds: number) => ({ mbps: 1024 / seconds, seconds, cpu: 0 });

test('a ratio is the median of the rounds\' own ratios, so one lucky run of either side does not set it', () => {
  // Round 3: the direct client drew a quiet spell (1 s). Best-of-each would say 2.0 / 1.0 → 0.5.
  const r: Rounds = { direct: [run(2), run(2.2), run(1), run(2)], mount: [run(2.5), run(2.2), run(2.2), run(2)] };
  assert.deepEqual(roundRatios(r).map((x) => Number(x.toFixed(3))), [0.8, 1, 0.455, 1]);
  assert.equal(pairedRatio(r), 0.9, 'even count: the mean of the middle two (0.8, 1.0)');
  r.direct.push(run(2));
  r.mount.push(run(4));
  assert.equal(pairedRatio(r), 0.8, 'odd count: the middle one');
});

test('a round missing one side (the bench failed half-way) is not paired with another round', () => {
  const r: Rounds = { direct: [run(1), run(1), run(1)], mount: [run(2), run(1)] };
  assert.deepEqual(roundRatios(r), [0.5, 1]);
});

test('rounds alternate which side runs first', async () => {
  const order: string[] = [];
  for (let i = 0; i < 4; i++) await inTurn(i, async () => { order.push(`d${i}`); }, async () => { order.push(`m${i}`); });
  assert.deepEqual(order, ['d0', 'm0', 'm1', 'd1', 'd2', 'm2', 'm3', 'd3']);
});

test('a paced group stops only after an even number of rounds, at least the minimum, when two more would eat the reserve', () => {
  let t = 0;
  const stops: Array<[number, number]> = [];
  // Started 400 s into a 600 s run; the groups after it need 100 s: 100 s left for this one.
  const pacer = new Pacer({ startedAt: -400_000, targetS: 600, reserveS: 100, minRounds: 4, now: () => t, onStop: (r, s) => stops.push([r, s]) });
  const ran: number[] = [];
  for (let round = 0; round < 8 && pacer.another(round); round++) {
    ran.push(round);
    t += 15_000; // each round 15 s
  }
  // After 4 rounds (60 s used) two more end at 90 s ≤ 100: rounds 4 and 5 run. After 6 (90 s)
  // two more would end at 120 s > 100: it stops there, at an even number.
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(stops, [[6, 30]]);
});

test('a paced group with time to spare runs every round; one short of time still runs its minimum', () => {
  let t = 0;
  const roomy = new Pacer({ startedAt: 0, targetS: 600, reserveS: 100, minRounds: 4, now: () => t });
  let n = 0;
  for (let round = 0; round < 8 && roomy.another(round); round++, n++) t += 10_000;
  assert.equal(n, 8);
  t = 0;
  const late = new Pacer({ startedAt: -590_000, targetS: 600, reserveS: 100, minRounds: 4, now: () => t });
  n = 0;
  for (let round = 0; round < 8 && late.another(round); round++, n++) t += 10_000;
  assert.equal(n, 4);
});

test('a paced group with an expected round length does not start a pair that would not fit, even before timing one', () => {
  const t = 0;
  // 30 s left before the reserve; two rounds expected at 20 s each: no first pair.
  const tight = new Pacer({ startedAt: -470_000, targetS: 600, reserveS: 100, minRounds: 0, firstRoundS: 20, now: () => t });
  assert.equal(tight.another(0), false);
  // Without the expectation it would have started one.
  const blind = new Pacer({ startedAt: -470_000, targetS: 600, reserveS: 100, minRounds: 0, now: () => t });
  assert.equal(blind.another(0), true);
});

test('thread times: this process\'s main thread is found and its CPU seconds grow with work', async () => {
  const before = await threadTimes(process.pid);
  assert.ok(before['main'], 'the thread whose id is the pid is "main"');
  // 60 ms of this thread's own CPU time (not wall time: a loaded machine may not give it a CPU).
  const c0 = process.cpuUsage();
  let x = 0;
  while (process.cpuUsage(c0).user < 60_000) for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + 1);
  assert.ok(x > 0);
  const spent = threadTimesSince(before, await threadTimes(process.pid));
  assert.ok((spent['main']?.run ?? 0) >= 0.05, `main ran ${JSON.stringify(spent)}`);
});

test('thread times are described as medians per side, s3rver\'s thread apart from the clients\'', () => {
  const timed = (server: number, client: Record<string, [number, number]>) => ({
    ...run(2), sched: {
      server: { main: { run: server, wait: server / 10 } },
      client: Object.fromEntries(Object.entries(client).map(([g, [r, w]]) => [g, { run: r, wait: w }])),
    },
  });
  const r: Rounds = {
    direct: [timed(1.5, { main: [0.5, 0.1] }), timed(1.7, { main: [0.6, 0.3] })],
    mount: [timed(1.8, { main: [0.5, 0.3], fuse: [0.3, 0.4] }), timed(1.6, { main: [0.7, 0.5], fuse: [0.3, 0.2] })],
  };
  assert.equal(describeThreadTimes(r),
    'threads, s on a CPU/waiting for one (medians): s3rver\'s thread in direct runs 1.60/0.16, in mount runs 1.70/0.17, '
    + 'direct client\'s main 0.55/0.20, mount\'s main 0.60/0.40, mount\'s fuse 0.30/0.30');
  assert.equal(describeThreadTimes({ direct: [run(1)], mount: [run(1)] }), '', 'nothing said without thread times');
});
