/**
 * `npm run demo`: try synapse-mount with no Synapse account. Starts the local Synapse + S3
 * stack with the sample project, mounts it at ./demo-mnt with the real CLI (a child process —
 * this process serves the stack, so it must never touch the mount itself), prints what to
 * try, and unmounts on Ctrl-C. `--no-mount` only starts the servers.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack } from './stack.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const mnt = path.resolve(process.argv.includes('--mnt') ? process.argv[process.argv.indexOf('--mnt') + 1]! : path.join(root, 'demo-mnt'));

async function isMounted(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === dir.replace(/ /g, '\\040'));
}

const stack = await startStack({ fixture: 'sample' });
const projectId = stack.sample!.projectId;

if (process.argv.includes('--no-mount')) {
  // The servers alone: mount them yourself (several mounts, other options, a debugger).
  console.log(`
synapse-mount demo servers: the sample project is ${projectId}
  local Synapse at ${stack.endpoint}, local S3 at ${stack.s3Endpoint}

Mount it, in another terminal:
  export SYNAPSE_AUTH_TOKEN=${stack.authToken}
  mkdir -p /tmp/syn && npx tsx bin/synapse-mount.ts ${projectId} /tmp/syn --endpoint ${stack.endpoint} --s3-endpoint ${stack.s3Endpoint}

Press Ctrl-C to stop the servers.`);
  const stopServers = (): void => void stack.close().then(() => process.exit(0));
  process.on('SIGINT', stopServers);
  process.on('SIGTERM', stopServers);
  await new Promise<never>(() => undefined);
}
await mkdir(mnt, { recursive: true });
if (await isMounted(mnt)) {
  spawn('fusermount', ['-uz', mnt]);
  await new Promise((r) => setTimeout(r, 300));
} else if ((await readdir(mnt)).length > 0) {
  console.error(`demo: ${mnt} is not empty; remove its contents or pass --mnt DIR`);
  await stack.close();
  process.exit(1);
}

// The demo's Synapse lives in memory: a spool left by an earlier run names entities of a server
// that is gone (or, worse, ids this one reuses for other files) — start with an empty one.
const spoolDir = path.join(root, '.tmp', 'demo-spool');
await rm(spoolDir, { recursive: true, force: true });

const child = spawn(process.execPath, [
  '--import', 'tsx', path.join(root, 'bin', 'synapse-mount.ts'), projectId, mnt, '--foreground',
  '--endpoint', stack.endpoint, '--s3-endpoint', stack.s3Endpoint, '--log-level', 'warn',
  '--spool-dir', spoolDir,
], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, SYNAPSE_AUTH_TOKEN: stack.authToken } });

const deadline = Date.now() + 30_000;
while (!(await isMounted(mnt))) {
  if (child.exitCode !== null || Date.now() > deadline) {
    console.error('demo: the mount did not start (see the messages above)');
    await stack.close();
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

console.log(`
synapse-mount demo: the sample project ${projectId} is mounted at ${mnt}
  (local Synapse at ${stack.endpoint}, local S3 at ${stack.s3Endpoint})

Try, in another terminal:
  ls -l ${mnt}/sts-data ${mnt}/managed          # folders → directories, sizes from Synapse
  md5sum ${mnt}/sts-data/reads.bin               # 10 MiB read with STS credentials from S3
  cat ${mnt}/managed/notes.txt                   # Synapse-managed storage, presigned URLs
  readlink ${mnt}/readme-link                    # a Link entity as a symlink
  cp /etc/services ${mnt}/sts-data/ && ls -l ${mnt}/sts-data   # becomes a Synapse file on close
  getfattr -d ${mnt}/sts-data/README.txt         # synID, version and MD5 as xattrs

Other commands against this server (token in the environment):
  export SYNAPSE_AUTH_TOKEN=${stack.authToken}
  npx tsx bin/synapse-mount.ts sts-token ${stack.sample!.stsFolderId} read_only --endpoint ${stack.endpoint}

Press Ctrl-C to unmount and stop.`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\ndemo: unmounting…');
  if (child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise<void>((r) => { child.once('exit', () => r()); setTimeout(r, 15_000); });
  }
  if (await isMounted(mnt)) spawn('fusermount', ['-uz', mnt]);
  await stack.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
child.on('exit', () => void stop());
