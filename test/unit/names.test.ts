/** Which names the mount publishes, keeps local, or refuses (src/fs/names.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isProbeName, isScratchName, MAX_NAME_LENGTH, NAME_MAX, nameProblem } from '../../src/fs/names.js';

test('editors\' scratch names stay local: vim backups, swap files and probes; emacs autosaves and locks; rsync temps of them', () => {
  for (const n of ['notes.txt~', '.notes.txt.swp', '.notes.txt.swo', '.notes.txt.swx', '.notes.txt.swpx', '#notes.txt#', '.#notes.txt', '.notes.txt~.a1B2c3']) {
    assert.ok(isScratchName(n), n);
  }
  for (const n of ['notes.txt', 'data.swp', '.hidden', '#', 'yarn.lock', '4913', '4914', '~notes', '.notes.txt.a1B2c3', '.notes~.abc']) {
    assert.ok(!isScratchName(n), n);
  }
  // SQLite's rollback journal and WAL index beside a database with an extension (QA); its WAL and
  // extensionless names like a lab notebook's are real files.
  for (const n of ['runs.db-journal', 'places.sqlite-journal', 'map.gpkg-shm', 'x.sqlite3-shm']) assert.ok(isScratchName(n), n);
  for (const n of ['lab-journal', 'runs.db-wal', 'runs.db', '2024-journal', 'my.journal', 'v1.2-journal']) assert.ok(!isScratchName(n), n);
  // vim's other probe is a real name too, local only while empty (scratch-names.test.ts).
  for (const n of ['4913', '5036', '5159', '17213']) assert.ok(isProbeName(n), n);
  for (const n of ['4913.csv', '4914', '5000', '790', '04913']) assert.ok(!isProbeName(n), n);
});

test('Synapse\'s name rules: length, characters, surrounding spaces', () => {
  assert.equal(nameProblem('a'.repeat(NAME_MAX)), undefined);
  // Synapse takes 256; the mount makes none over NAME_MAX, which statfs reports (QA).
  assert.match(nameProblem('a'.repeat(NAME_MAX + 1)) ?? '', /longer than 255 characters \(NAME_MAX/);
  assert.match(nameProblem('a'.repeat(MAX_NAME_LENGTH + 1)) ?? '', /longer than 256/);
  assert.match(nameProblem('a:b') ?? '', /may only contain/);
  assert.match(nameProblem(' a') ?? '', /trims/);
  assert.equal(nameProblem("results (v2), final+'draft'.csv"), undefined);
});
