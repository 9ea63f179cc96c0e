#!/usr/bin/env node
/**
 * synapse-mount CLI — the only module that imports yargs. Each command parses its options,
 * then hands off to src/cli/*. Exit status: 0 success, 1 runtime or user error (one line on
 * stderr), 2 usage error.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import path from 'node:path';
import os from 'node:os';
import { UsageError, currentGid, currentUid, defaultCacheDir, parseSize, parseSizeWithin, parseTtlSeconds } from '../src/config.js';
import { parseRequestSize } from '../src/fs/fuse-terms.js';
import { cacheLayout } from '../src/fs/cache-layout.js';
import { normaliseEntityId } from '../src/fs/mount.js';
import { canonicalMountpoint } from '../src/fs/preflight.js';
import { expandMountOptions } from '../src/cli/mount-options.js';
import { installFetchProxy } from '../src/net/proxy.js';
import { CHILD_ENV, readHandedAuth, runMount } from '../src/cli/mount-command.js';
import { runUnmount } from '../src/cli/unmount-command.js';
import { runRecover } from '../src/cli/recover-run.js';
import { describeError, resolveAuth } from '../src/cli/common.js';
import { clientFor } from '../src/cli/common.js';
import { runStsToken, STS_FORMATS, STS_PERMISSIONS, type StsFormat } from '../src/cli/sts-token-command.js';
import { formatCreateFolder, runCreateFolder } from '../src/cli/create-folder-command.js';
import { runAddS3File } from '../src/cli/add-s3-file-command.js';
import { formatInfo, runInfo } from '../src/cli/info-command.js';
import { mountRecordFor } from '../src/cli/mount-registry.js';
import { runStatus } from '../src/cli/status-command.js';
import type { StsPermission } from '../src/synapse/types.js';
import { scrubSecrets, type LogLevel } from '../src/log.js';

const VERSION = '0.1.0';
let exitCode = 0;

function fail(err: unknown): never {
  // One line, always: a Synapse reason may span lines.
  process.stderr.write(`synapse-mount: ${scrubSecrets(describeError(err)).replace(/\s*[\r\n]+\s*/g, ' ')}\n`);
  // A bad option value is a usage error, as yargs' own are (README: exit 2).
  process.exit(err instanceof UsageError ? 2 : 1);
}

const authOptions = {
  endpoint: { type: 'string', describe: 'Synapse base URL (default https://repo-prod.prod.sagebase.org, or [endpoints] of ~/.synapseConfig)' },
  'auth-token-file': { type: 'string', describe: 'file holding a Synapse personal access token, - for stdin (else SYNAPSE_AUTH_TOKEN, else ~/.synapseConfig)' },
  'retry-timeout': { type: 'number', default: 60, describe: 'seconds to keep retrying a throttled or failing Synapse call' },
} as const;

// HTTPS_PROXY / NO_PROXY for Synapse calls (Node 20's fetch ignores them); S3 agents apply them too.
installFetchProxy();

/**
 * `--auth-token-file -` (the token on stdin, as `docker login --password-stdin`): yargs takes a
 * lone `-` for a positional (QA: "Unknown argument: -"), so it is joined to its flag first.
 */
function tokenFromStdinJoined(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--auth-token-file' && args[i + 1] === '-') {
      out.push('--auth-token-file=-');
      i++;
    } else out.push(args[i]!);
  }
  return out;
}

// The mount-helper convention: `synapse-mount SRC DIR -o ro,cache_dir=/x` → long flags (mount-options.ts).
let argv: string[] = [];
try {
  argv = expandMountOptions(tokenFromStdinJoined(hideBin(process.argv)));
} catch (err) {
  fail(err);
}

await yargs(argv)
  .scriptName('synapse-mount')
  // A repeated option takes its last value (as mount -o and most CLIs do), never an array.
  .parserConfiguration({ 'duplicate-arguments-array': false })
  .version(VERSION)
  .usage('$0 <entity> <mountpoint> [options]\n\nMount a Synapse project or folder as a directory.')
  .command(
    '$0 <entity> <mountpoint>',
    'mount a Synapse project or folder (returns once the mount is ready; serves in the background)',
    (y) => y
      .positional('entity', { type: 'string', describe: 'Synapse ID of a project or folder (syn123)', demandOption: true })
      .positional('mountpoint', { type: 'string', describe: 'an empty directory', demandOption: true })
      .options(authOptions)
      .options({
        's3-endpoint': { type: 'string', describe: 'S3 endpoint URL for S3-compatible stores or the local server (default: AWS)' },
        's3-region': { type: 'string', describe: 'S3 region (STS credentials cannot look it up; default: learn it from redirects)' },
        'read-only': { type: 'boolean', default: false, describe: 'refuse every change (EROFS)' },
        sts: { type: 'boolean', default: true, describe: 'use STS credentials where the storage allows (--no-sts: presigned URLs everywhere)' },
        'cache-size': { type: 'string', default: '512M', describe: 'memory block cache size (K/M/G; bare number = MiB)' },
        'block-size': { type: 'string', default: '8M', describe: 'read block size, 4K–1G (K/M/G; bare number = MiB)' },
        'metadata-ttl': { type: 'string', default: '60', describe: 'seconds a folder (listing + sizes) is trusted after it finished loading, or "indefinite"; the kernel keeps stat answers twice as long' },
        'read-timeout': { type: 'number', default: 30, describe: 'seconds before a stalled read fails with EIO' },
        'spool-dir': { type: 'string', describe: 'where written files are staged before upload, and mtimes set through the mount are kept (default ~/.cache/synapse-mount/spool, /var/cache/synapse-mount/spool without HOME)' },
        'part-size': { type: 'string', default: '16M', describe: 'upload part size, 5M–5G (K/M/G); spooled files grow it so 10,000 parts cover the file; a streamed file past 10,000 parts moves to the spool' },
        'max-write-memory': { type: 'string', default: '256M', describe: 'memory for upload parts of all files being written (beyond it a writer waits for parts in flight, or goes on in the spool)' },
        'allow-other': { type: 'boolean', default: false, describe: 'let other users access the mount (needs user_allow_other in /etc/fuse.conf)' },
        'direct-io': { type: 'boolean', default: false, describe: 'every open file bypasses the kernel page cache, read-write opens and older kernels included (before Linux 6.9 shared mmap, e.g. numpy memmap, then fails with ENODEV)' },
        'max-request-size': { type: 'string', default: '1M', describe: 'largest FUSE read/write request to ask the kernel for, 128K–1M (granted from Linux 4.20; libfuse 2 alone gets 128K)' },
        'direct-reads': { type: 'boolean', describe: 'files opened read-only bypass the kernel page cache: faster cold reads at half the CPU, one FUSE request per read() (default: on where the kernel allows shared mmap of such files, Linux ≥ 6.9)' },
        'direct-writes': { type: 'boolean', describe: 'files opened write-only bypass the kernel page cache (default: on with Linux ≥ 6.6, whose page cache stays coherent for readers)' },
        uid: { type: 'number', describe: 'owner uid of files (default: yours)' },
        gid: { type: 'number', describe: 'group gid of files (default: yours)' },
        'file-mode': { type: 'string', default: '644', describe: 'permission bits of files (octal)' },
        'dir-mode': { type: 'string', default: '755', describe: 'permission bits of directories (octal)' },
        'cache-dir': { type: 'string', describe: 'keep blocks read from S3 and file sizes on local disk here, across remounts and shared by mounts (off by default)' },
        'cache-dir-size': { type: 'string', default: '10G', describe: 'bound on --cache-dir blocks (K/M/G; the disk also keeps 5% free)' },
        'metadata-view': { type: 'string', describe: 'Synapse ID of a file view covering the mounted tree: ls -l takes file sizes from one view query per folder instead of one request per file (docs/metadata-view.md)' },
        'log-level': { choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', describe: 'log verbosity' },
        'log-file': { type: 'string', describe: 'log file in background mode (default ~/.local/state/synapse-mount/<mountpoint>.log)' },
        foreground: { alias: 'f', type: 'boolean', default: false, describe: 'stay attached; log to stderr; Ctrl-C unmounts' },
      }),
    async (a) => {
      try {
        // The serving child of a background mount is handed what its parent resolved (and warned of).
        const { token, endpoint, warning } = process.env[CHILD_ENV]
          ? { ...(await readHandedAuth()), warning: undefined } // the parent printed its warnings
          : await resolveAuth({ endpoint: a.endpoint, authTokenFile: a['auth-token-file'] });
        if (warning) process.stderr.write(`synapse-mount: warning: ${warning}\n`);
        const readOnly = a['read-only'];
        const fileMode = parseInt(a['file-mode'], 8);
        const dirMode = parseInt(a['dir-mode'], 8);
        if (!/^[0-7]{3,4}$/.test(a['file-mode']) || !/^[0-7]{3,4}$/.test(a['dir-mode'])) {
          throw new UsageError('--file-mode/--dir-mode take octal permission bits, e.g. 644');
        }
        // yargs has made a number of the value already: a word is NaN by now (QA: `"NaN" is not …`).
        const given = (n: number): string => (Number.isNaN(n) ? 'the value given' : `"${n}"`);
        const readTimeout = a['read-timeout'];
        if (!Number.isFinite(readTimeout) || readTimeout <= 0) throw new UsageError(`--read-timeout: ${given(readTimeout)} is not a positive number of seconds`);
        const retryTimeout = a['retry-timeout'];
        if (!Number.isFinite(retryTimeout) || retryTimeout < 0) throw new UsageError(`--retry-timeout: ${given(retryTimeout)} is not a number of seconds`);
        // Owner ids the kernel can show: a word became 0 (root) and -1 "nobody" (QA).
        for (const [what, id] of [['--uid', a.uid], ['--gid', a.gid]] as const) {
          if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id < 0xffffffff)) throw new UsageError(`${what}: ${given(id)} is not a user or group id (an integer from 0)`);
        }
        if ((fileMode | dirMode) & ~0o777) throw new UsageError('--file-mode/--dir-mode: only permission bits (up to 777); setuid, setgid and sticky bits are not supported');
        // Checked here, not at the first read (QA: a mistyped --s3-endpoint mounted, then every read and write failed with EIO).
        const s3Endpoint = a['s3-endpoint'];
        if (s3Endpoint !== undefined && !/^https?:\/\/[^/\s]+/.test(s3Endpoint.trim())) throw new UsageError(`--s3-endpoint: ${JSON.stringify(s3Endpoint)} is not an http(s) URL`);
        if (s3Endpoint !== undefined) {
          try {
            new URL(s3Endpoint.trim());
          } catch {
            throw new UsageError(`--s3-endpoint: ${JSON.stringify(s3Endpoint)} is not an http(s) URL`);
          }
        }
        const blockBytes = parseSizeWithin(a['block-size'], '--block-size', 4096, 1024 ** 3);
        // A cache smaller than one block holds nothing (QA: --cache-size 0 mounted, and status said "29 MiB of 0 B").
        const cacheSize = (value: string, what: string): number => {
          const n = parseSize(value, what);
          if (n < blockBytes) throw new UsageError(`${what}: ${value.trim()} is less than one block (--block-size ${a['block-size']})`);
          return n;
        };
        const cacheDirBytes = cacheSize(a['cache-dir-size'], '--cache-dir-size'); // checked even without --cache-dir
        const cacheBytes = cacheSize(a['cache-size'], '--cache-size');
        // The block cache is memory: one larger than the machine's ends in the OOM killer (QA: 1T mounted without a word).
        if (cacheBytes > os.totalmem() / 2 && !process.env[CHILD_ENV]) {
          process.stderr.write(`synapse-mount: warning: --cache-size ${a['cache-size']} is more than half of this machine's memory (${Math.round(os.totalmem() / 1024 ** 3)} GiB); the cache lives in memory (--cache-dir keeps blocks on disk)\n`);
        }
        const layout = cacheLayout(cacheBytes, blockBytes);
        // Said once, by the command: the serving child's stderr is the log file, of JSON lines (QA).
        if (layout.totalBytes > cacheBytes && !process.env[CHILD_ENV]) {
          process.stderr.write(`synapse-mount: warning: --cache-size ${a['cache-size']} is too small for --block-size ${a['block-size']} (readahead, scans and the cache need a block or more each); the cache will hold up to ${Math.ceil(layout.totalBytes / 1024 ** 2)} MiB\n`);
        }
        // An option's value, so a usage error (the positional entity's is a MountError, exit 1).
        let metadataView: string | undefined;
        try {
          metadataView = a['metadata-view'] === undefined ? undefined : normaliseEntityId(a['metadata-view']);
        } catch (err) {
          throw new UsageError(`--metadata-view: ${(err as Error).message}`);
        }
        exitCode = await runMount({
          config: {
            entityId: normaliseEntityId(a.entity!),
            mountpoint: canonicalMountpoint(a.mountpoint!),
            endpoint,
            authToken: token,
            ...(a['s3-endpoint'] ? { s3Endpoint: a['s3-endpoint'] } : {}),
            ...(a['s3-region'] ? { s3Region: a['s3-region'] } : {}),
            readOnly,
            useSts: a.sts,
            cacheBytes,
            blockBytes,
            metadataTtlMs: parseTtlSeconds(a['metadata-ttl'], '--metadata-ttl') * 1000,
            readTimeoutMs: a['read-timeout'] * 1000,
            retryTimeoutSec: a['retry-timeout'],
            allowOther: a['allow-other'],
            directIo: a['direct-io'],
            ...(a['direct-writes'] !== undefined ? { directWrites: a['direct-writes'] } : {}),
            ...(a['direct-reads'] !== undefined ? { directReads: a['direct-reads'] } : {}),
            maxRequestBytes: parseRequestSize(a['max-request-size']),
            uid: a.uid ?? currentUid(),
            gid: a.gid ?? currentGid(),
            fileMode: readOnly ? fileMode & 0o555 : fileMode,
            dirMode,
            spoolDir: path.resolve(a['spool-dir'] ?? path.join(defaultCacheDir(), 'spool')),
            // S3's limits for a part: 5 MiB (but the last) to 5 GiB.
            partBytes: parseSizeWithin(a['part-size'], '--part-size', 5 * 1024 ** 2, 5 * 1024 ** 3),
            ...(a['cache-dir'] ? { cacheDir: path.resolve(a['cache-dir']), cacheDirBytes } : {}),
            maxWriteMemoryBytes: parseSize(a['max-write-memory'], '--max-write-memory'),
            ...(metadataView ? { metadataView } : {}),
          },
          foreground: a.foreground,
          logLevel: a['log-level'] as LogLevel,
          logFile: a['log-file'],
          argv: argv.filter((x) => x !== '-f' && x !== '--foreground'),
        });
      } catch (err) {
        fail(err);
      }
    },
  )
  .command(
    ['unmount <mountpoint>', 'umount <mountpoint>'],
    'unmount cleanly, finishing open uploads first (refused while in use, like umount, unless forced)',
    (y) => y.positional('mountpoint', { type: 'string', demandOption: true })
      .option('force', { type: 'boolean', default: false, describe: 'unmount even while in use: open files are cut off (ENOTCONN), files open for writing journaled for recover' }),
    async (a) => {
      try {
        exitCode = await runUnmount(a.mountpoint!, { force: a.force });
      } catch (err) {
        fail(err);
      }
    },
  )
  .command(
    'status [mountpoint]',
    'what a mount is doing: uploads in flight, files waiting for recover, cache use, Synapse/S3 request and error counts; without a mountpoint, one line per mount',
    (y) => y
      .positional('mountpoint', { type: 'string', describe: 'a synapse-mount mountpoint (default: list all mounts)' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON (for scripts)' }),
    async (a) => {
      try {
        exitCode = await runStatus({ mountpoint: a.mountpoint, json: a.json });
      } catch (err) {
        fail(err);
      }
    },
  )
  // -- Synapse S3 storage features (issue 5): the Python client's get-sts-token,
  //    create_s3_storage_location and external S3 file handles; `info` maps a mounted path back.
  .command(
    'sts-token <entity> <permission>',
    'print temporary AWS credentials for an STS-enabled folder or file (like `synapse get-sts-token`)',
    (y) => y
      .positional('entity', { type: 'string', describe: 'Synapse ID of a folder (or file) in an STS-enabled storage location', demandOption: true })
      .positional('permission', { choices: STS_PERMISSIONS, describe: 'read_only or read_write', demandOption: true })
      .options(authOptions)
      .option('output', {
        alias: 'o', choices: STS_FORMATS, default: 'shell' as StsFormat,
        describe: 'json: as Synapse sent it; boto: boto3 kwargs; shell/bash, cmd, powershell: lines to eval',
      })
      .example('eval "$($0 sts-token syn123 read_write)"', 'then: aws s3 ls "$SYNAPSE_STS_S3_LOCATION/"'),
    async (a) => {
      try {
        const api = await clientFor({ endpoint: a.endpoint, authTokenFile: a['auth-token-file'], retryTimeout: a['retry-timeout'] });
        process.stdout.write(await runStsToken(api, {
          entityId: normaliseEntityId(a.entity!), permission: a.permission as StsPermission, format: a.output as StsFormat,
        }));
      } catch (err) {
        fail(err);
      }
    },
  )
  .command(
    'create-folder',
    'create a folder whose files are stored in your S3 bucket (or Synapse storage), optionally STS-enabled; prints {"folderId", "storageLocationId", "projectSettingId"}',
    (y) => y
      .options(authOptions)
      .options({
        parent: { type: 'string', demandOption: true, describe: 'Synapse ID of the project or folder to create the folder in' },
        name: { type: 'string', demandOption: true, describe: 'folder name (an existing folder of that name is used)' },
        bucket: { type: 'string', describe: 'your S3 bucket (needs <base-key>/owner.txt holding your Synapse user name); default: Synapse storage' },
        'base-key': { type: 'string', implies: 'bucket', describe: 'key prefix inside --bucket for this folder' },
        sts: { type: 'boolean', default: false, describe: 'enable STS credentials (sts-token); only on a new or empty folder' },
      }),
    async (a) => {
      try {
        const api = await clientFor({ endpoint: a.endpoint, authTokenFile: a['auth-token-file'], retryTimeout: a['retry-timeout'] });
        process.stdout.write(formatCreateFolder(await runCreateFolder(api, {
          parentId: normaliseEntityId(a.parent), name: a.name, bucket: a.bucket, baseKey: a['base-key'], sts: a.sts,
        })));
      } catch (err) {
        fail(err);
      }
    },
  )
  .command(
    'add-s3-file <url>',
    'register an object already in the folder\'s S3 bucket as a Synapse file, without copying it; prints the synID',
    (y) => y
      .positional('url', { type: 'string', demandOption: true, describe: 's3://bucket/key of the object' })
      .options(authOptions)
      .options({
        parent: { type: 'string', demandOption: true, describe: 'Synapse ID of the folder (backed by that bucket) to add the file to' },
        name: { type: 'string', describe: 'name of the Synapse file (default: the last part of the key)' },
        'local-file': { type: 'string', describe: 'a local copy of the object to take MD5 and size from (else the object is read once with STS credentials)' },
        's3-endpoint': { type: 'string', describe: 'S3 endpoint URL for S3-compatible stores or the local server (default: AWS)' },
        's3-region': { type: 'string', describe: 'S3 region of the bucket (default: learned from S3 redirects)' },
      }),
    async (a) => {
      try {
        const api = await clientFor({ endpoint: a.endpoint, authTokenFile: a['auth-token-file'], retryTimeout: a['retry-timeout'] });
        const id = await runAddS3File(api, {
          parentId: normaliseEntityId(a.parent), url: a.url!, name: a.name, localFile: a['local-file'],
          s3Endpoint: a['s3-endpoint'], s3Region: a['s3-region'],
        });
        process.stdout.write(`${id}\n`);
      } catch (err) {
        fail(err);
      }
    },
  )
  .command(
    'info <path>',
    'show the synID, version, MD5, size, storage location and S3 URL of a file or folder in a mount',
    (y) => y
      .positional('path', { type: 'string', demandOption: true, describe: 'a file or folder inside a synapse-mount mount' })
      .options(authOptions)
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }),
    async (a) => {
      try {
        // Without --endpoint, the endpoint of the mount the path is in (its mount record).
        const endpoint = a.endpoint ?? (await mountRecordFor(a.path!))?.endpoint;
        const api = await clientFor({ endpoint, authTokenFile: a['auth-token-file'], retryTimeout: a['retry-timeout'] });
        process.stdout.write(formatInfo(await runInfo(api, a.path!), a.json));
      } catch (err) {
        fail(err);
      }
    },
  )
  .command(
    'recover',
    'publish files whose upload failed (kept in the spool journal); --list only shows them',
    (y) => y.options(authOptions).options({
      'spool-dir': { type: 'string', describe: 'the spool directory the mount used (default ~/.cache/synapse-mount/spool, /var/cache/synapse-mount/spool without HOME)' },
      list: { type: 'boolean', default: false, describe: 'list waiting entries without publishing (not with --discard or --force)' },
      force: { type: 'boolean', default: false, describe: 'publish even over a version someone published since the write (else such an entry is kept and reported)' },
      discard: { type: 'string', array: true, describe: 'drop these entries (ids from --list) and their kept bytes, unpublished' },
      's3-endpoint': { type: 'string', describe: 'S3 endpoint URL (as for the mount)' },
      's3-region': { type: 'string', describe: 'S3 region' },
      sts: { type: 'boolean', default: true, describe: 'use STS where allowed' },
      'part-size': { type: 'string', default: '16M', describe: 'upload part size' },
    }),
    async (a) => {
      try {
        // By hand: yargs' `conflicts` counts a default as given (review: every recover was refused).
        if (a.list && (a.force || a.discard !== undefined)) throw new UsageError('recover: --list only shows the entries; use it without --discard and --force');
        exitCode = await runRecover({
          spoolDir: path.resolve(a['spool-dir'] ?? path.join(defaultCacheDir(), 'spool')),
          spoolDirGiven: a['spool-dir'] !== undefined,
          list: a.list,
          force: a.force,
          ...(a.discard !== undefined ? { discard: a.discard.map(String) } : {}),
          auth: { endpoint: a.endpoint, authTokenFile: a['auth-token-file'], retryTimeout: a['retry-timeout'] },
          transfer: {
            ...(a['s3-endpoint'] ? { s3Endpoint: a['s3-endpoint'] } : {}),
            ...(a['s3-region'] ? { s3Region: a['s3-region'] } : {}),
            useSts: a.sts, readTimeoutMs: 60_000, partBytes: parseSizeWithin(a['part-size'], '--part-size', 5 * 1024 ** 2, 5 * 1024 ** 3),
          },
        });
      } catch (err) {
        fail(err);
      }
    },
  )
  .strict()
  .epilog('Mount-helper form (fstab, mount -t fuse.synapse-mount): synapse-mount SRC DIR -o ro,cache_dir=/x,... — each -o item is a long option with _ for -. Switches take --no- to turn off (--no-sts, --no-direct-reads, --no-direct-writes).')
  .help()
  .alias('h', 'help')
  .fail((msg, err) => {
    if (err) fail(err);
    process.stderr.write(`synapse-mount: ${msg}\nRun 'synapse-mount --help' for usage.\n`);
    process.exit(2);
  })
  .parseAsync();

// Exit explicitly: keep-alive sockets and the FUSE thread would otherwise hold the process open.
process.exit(exitCode);
