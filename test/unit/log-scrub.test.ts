/**
 * The log sink's second net (src/log.ts): registered secrets and presigned-URL authorisation
 * parameters never reach a log line, whatever object or message carried them (issue 8).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger, registerSecret, scrubSecrets } from '../../src/log.js';

test('scrubSecrets blanks registered values and presigned-URL signatures', () => {
  const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  registerSecret(secret);
  registerSecret('short'); // too short to be treated as a secret
  const url = 'https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA%2F20250101&X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2B&X-Amz-Signature=abcdef0123456789&x=1';
  const out = scrubSecrets(`failed with ${secret} at ${url} (short)`);
  assert.ok(!out.includes(secret));
  assert.ok(!out.includes('abcdef0123456789'));
  assert.ok(!out.includes('IQoJb3JpZ2luX2VjE'));
  assert.ok(!out.includes('ASIA%2F20250101'));
  assert.match(out, /X-Amz-Signature=\[redacted\]&x=1/);
  assert.match(out, /X-Amz-Algorithm=AWS4-HMAC-SHA256/);
  assert.match(out, /\(short\)/);
  const cf = scrubSecrets('https://d.cloudfront.net/x?Expires=1&Signature=Zm9v~bar&Key-Pair-Id=APKA123');
  assert.equal(cf, 'https://d.cloudfront.net/x?Expires=1&Signature=[redacted]&Key-Pair-Id=[redacted]');
});

test('a logger at trace level writes no registered secret, even inside an error message or nested URL', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'log-scrub-'));
  try {
    const file = path.join(dir, 'log');
    const token = 'tok_9f8e7d6c5b4a39281706';
    registerSecret(token);
    const log = createLogger('trace', file);
    log.trace({ deep: { list: [{ link: 'https://x/y?X-Amz-Signature=deadbeefcafe' }] } }, 'nested url');
    log.error({ err: new Error(`Synapse said: bad token ${token}`) }, `refused ${token}`);
    const text = await readFile(file, 'utf8');
    assert.equal(text.trim().split('\n').length, 2);
    assert.ok(!text.includes(token));
    assert.ok(!text.includes('deadbeefcafe'));
    assert.match(text, /\[redacted\]/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
