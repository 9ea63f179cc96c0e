/**
 * The bench's estimator (bench/rounds.ts): each ratio is the median of the rounds' own
 * mount ÷ direct ratios, not one side's best divided by the other's, and the rounds alternate
 * which side runs first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inTurn, pairedRatio, roundRatios, type Rounds } from '../../bench/rounds.js';

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
