#!/usr/bin/env node
/**
 * synapse-mount CLI — the only module that imports yargs. Each command parses its options,
 * then hands off to src/cli/*. Exit status: 0 success, 1 runtime or user error (one line on
 * stderr), 2 usage error.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, currentGid, currentUid, parseSize, parseTtlSeconds } from '../src/config.js';
import { normaliseEntityId } from '../src/fs/mount.js';
import { runMount } from '../src/cli/mount-command.js';
import { runUnmount } from '../src/cli/unmount-command.js';
import { describeError, resolveAuth } from '../src/cli/common.js';
import type { LogLevel } from '../src/log.js';

const VERSION = '0.1.0';
let exitCode = 0;

function fail(err: unknown): never {
  process.stderr.write(`synapse-mount: ${describeError(err)}\n`);
  process.exit(1);
}

const authOptions = {
  endpoint: { type: 'string', describe: 'Synapse base URL (default https://repo-prod.prod.sagebase.org, or [endpoints] of ~/.synapseConfig)' },
  'auth-token-file': { type: 'string', describe: 'file holding a Synapse personal access token (else SYNAPSE_AUTH_TOKEN, else ~/.synapseConfig)' },
  'retry-timeout': { type: 'number', default: 60, describe: 'seconds to keep retrying a throttled or failing Synapse call' },
} as const;

const argv = hideBin(process.argv);

await yargs(argv)
  .scriptName('synapse-mount')
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
        'block-size': { type: 'string', default: '8M', describe: 'read block size (K/M/G; bare number = MiB)' },
        'metadata-ttl': { type: 'string', default: '60', describe: 'seconds a folder listing is trusted, or "indefinite"' },
        'read-timeout': { type: 'number', default: 30, describe: 'seconds before a stalled read fails with EIO' },
        'allow-other': { type: 'boolean', default: false, describe: 'let other users access the mount (needs user_allow_other in /etc/fuse.conf)' },
        uid: { type: 'number', describe: 'owner uid of files (default: yours)' },
        gid: { type: 'number', describe: 'group gid of files (default: yours)' },
        'file-mode': { type: 'string', default: '644', describe: 'permission bits of files (octal)' },
        'dir-mode': { type: 'string', default: '755', describe: 'permission bits of directories (octal)' },
        'log-level': { choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', describe: 'log verbosity' },
        'log-file': { type: 'string', describe: 'log file in background mode (default ~/.local/state/synapse-mount/<mountpoint>.log)' },
        foreground: { alias: 'f', type: 'boolean', default: false, describe: 'stay attached; log to stderr; Ctrl-C unmounts' },
      }),
    async (a) => {
      try {
        const { token, endpoint, warning } = await resolveAuth({ endpoint: a.endpoint, authTokenFile: a['auth-token-file'] });
        if (warning) process.stderr.write(`synapse-mount: warning: ${warning}\n`);
        const readOnly = a['read-only'];
        const fileMode = parseInt(a['file-mode'], 8);
        const dirMode = parseInt(a['dir-mode'], 8);
        if (Number.isNaN(fileMode) || Number.isNaN(dirMode)) throw new ConfigError('--file-mode/--dir-mode take octal permission bits, e.g. 644');
        exitCode = await runMount({
          config: {
            entityId: normaliseEntityId(a.entity!),
            mountpoint: a.mountpoint!,
            endpoint,
            authToken: token,
            ...(a['s3-endpoint'] ? { s3Endpoint: a['s3-endpoint'] } : {}),
            ...(a['s3-region'] ? { s3Region: a['s3-region'] } : {}),
            readOnly,
            useSts: a.sts,
            cacheBytes: parseSize(a['cache-size'], '--cache-size'),
            blockBytes: parseSize(a['block-size'], '--block-size'),
            metadataTtlMs: parseTtlSeconds(a['metadata-ttl'], '--metadata-ttl') * 1000,
            readTimeoutMs: a['read-timeout'] * 1000,
            retryTimeoutSec: a['retry-timeout'],
            allowOther: a['allow-other'],
            uid: a.uid ?? currentUid(),
            gid: a.gid ?? currentGid(),
            fileMode: readOnly ? fileMode & 0o555 : fileMode,
            dirMode,
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
    'unmount cleanly, finishing open uploads first',
    (y) => y.positional('mountpoint', { type: 'string', demandOption: true }),
    async (a) => {
      try {
        exitCode = await runUnmount(a.mountpoint!);
      } catch (err) {
        fail(err);
      }
    },
  )
  .strict()
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
