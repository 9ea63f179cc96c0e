import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestQueue } from '../../src/synapse/http-client.js';

test('the queue keeps under the per-window request limit instead of sending into a 429', async () => {
  const q = new RequestQueue(10, { limit: 3, windowMs: 300 });
  const t0 = Date.now();
  const started: number[] = [];
  await Promise.all(Array.from({ length: 7 }, async () => {
    await q.acquire('high');
    started.push(Date.now() - t0);
    q.release();
  }));
  started.sort((a, b) => a - b);
  assert.ok(started[2]! < 150, `first three at once: ${started.join(',')}`);
  assert.ok(started[3]! >= 290, `the fourth waits for the window: ${started.join(',')}`);
  assert.ok(started[6]! >= 590, `the seventh waits two windows: ${started.join(',')}`);
  // Never more than 3 in any 300 ms window.
  for (let i = 3; i < started.length; i++) assert.ok(started[i]! - started[i - 3]! >= 290);
});

test('a full rate window reports that requests are held back (the mount logs it), a pause after a 429 does not', async () => {
  const holds: Array<[number, number]> = [];
  const q = new RequestQueue(5, { limit: 2, windowMs: 200 }, (waitMs, queued) => holds.push([waitMs, queued]));
  await q.acquire('high'); q.release();
  await q.acquire('high'); q.release();
  const third = q.acquire('high');
  assert.equal(holds.length, 1, 'told once');
  assert.ok(holds[0]![0] > 0 && holds[0]![0] <= 200, `wait ${holds[0]![0]} ms`);
  assert.equal(holds[0]![1], 1, 'one request held');
  // What `status` shows meanwhile (QA: "2 queued" said nothing of why).
  const held = q.heldForMs();
  assert.ok(held > 0 && held <= 200, `held ${held} ms`);
  await third; q.release();
  assert.equal(q.heldForMs(), 0, 'nothing waits');
  const p = new RequestQueue(5, { limit: 100, windowMs: 200 }, () => holds.push([0, 0]));
  p.pause(Date.now() + 50);
  await p.acquire('high');
  assert.equal(holds.length, 1, 'a Retry-After pause is not the window');
});
