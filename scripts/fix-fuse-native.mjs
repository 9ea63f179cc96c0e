#!/usr/bin/env node
// Install step (run by `prepare`, so by `npm ci`): fuse-native 2.2.6 passes the access time
// twice to `utimens` (fuse-native.c: FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)), so a filesystem
// never learns the mtime that `rsync -a`, `cp -p` and `tar x` set. Fix that one line and build
// the addon locally; node-gyp-build prefers build/Release over the bundled prebuild. If the
// build cannot run (no compiler or Node headers), the prebuild stays and utimens falls back to
// the access time — the mount still works; the README says so.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let dir;
try {
  dir = path.dirname(require.resolve('fuse-native/package.json'));
} catch {
  process.exit(0);
}
const src = path.join(dir, 'fuse-native.c');
const BUG = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)';
const FIX = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)';
const text = readFileSync(src, 'utf8');
const built = path.join(dir, 'build', 'Release', 'fuse.node');
if (text.includes(FIX) && existsSync(built)) process.exit(0);
writeFileSync(src, text.replace(BUG, FIX));

const nodeDir = path.resolve(path.dirname(process.execPath), '..');
const gyp = [
  path.join(nodeDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
].find((p) => existsSync(p));
const headers = existsSync(path.join(nodeDir, 'include', 'node', 'node_api.h'));
if (!gyp || !headers) {
  console.warn('synapse-mount: cannot rebuild fuse-native (node-gyp or Node headers missing); utimens will see access times only');
  process.exit(0);
}
try {
  execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  console.log('synapse-mount: rebuilt fuse-native with the utimens mtime fix');
} catch (err) {
  console.warn(`synapse-mount: fuse-native rebuild failed (${String(err.stderr ?? err.message).split('\n')[0]}); using the prebuild`);
}
