/**
 * The serving child's side of a background mount's token hand-over (mount-command.ts): the
 * parent writes one JSON document on the child's stdin and closes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { readHandedAuth } from '../../src/cli/mount-command.js';

test('the token and endpoint handed on stdin are read whole, however the pipe splits them', async () => {
  const doc = JSON.stringify({ token: 'tok-' + 'x'.repeat(5000), endpoint: 'https://repo-prod.prod.sagebase.org' });
  const input = Readable.from([Buffer.from(doc.slice(0, 7)), Buffer.from(doc.slice(7, 4000)), Buffer.from(doc.slice(4000))]);
  assert.deepEqual(await readHandedAuth(input), JSON.parse(doc));
});

test('nothing handed, or not the document: an error that quotes nothing of what came', async () => {
  await assert.rejects(readHandedAuth(Readable.from([])), /handed no auth token/);
  const secret = 'secret-token-value';
  await assert.rejects(readHandedAuth(Readable.from([Buffer.from(`{"token": "${secret}"`)])), (err: Error) => {
    assert.match(err.message, /handed no auth token/);
    assert.ok(!err.message.includes(secret));
    return true;
  });
  await assert.rejects(readHandedAuth(Readable.from([Buffer.from(JSON.stringify({ token: secret }))])), /handed no auth token/);
});
