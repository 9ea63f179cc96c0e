/** Which names the mount publishes, keeps local, or refuses (src/fs/names.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isScratchName, MAX_NAME_LENGTH, nameProblem } from '../../src/fs/names.js';

test('editors\' scratch names stay local: vim backups, swap files and probes; emacs autosaves and locks', () => {
  for (const n of ['notes.txt~', '.notes.txt.swp', '.notes.txt.swo', '.notes.txt.swx', '4913', '#notes.txt#', '.#notes.txt']) {
    assert.ok(isScratchName(n), n);
  }
  for (const n of ['notes.txt', 'data.swp', '.hidden', '#', 'yarn.lock', '4914', '~notes']) {
    assert.ok(!isScratchName(n), n);
  }
});

test('Synapse\'s name rules: length, characters, surrounding spaces', () => {
  assert.equal(nameProblem('a'.repeat(MAX_NAME_LENGTH)), undefined);
  assert.match(nameProblem('a'.repeat(MAX_NAME_LENGTH + 1)) ?? '', /longer than 256/);
  assert.match(nameProblem('a:b') ?? '', /may only contain/);
  assert.match(nameProblem(' a') ?? '', /trims/);
  assert.equal(nameProblem("results (v2), final+'draft'.csv"), undefined);
});
