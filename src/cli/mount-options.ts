/**
 * The mount-helper calling convention (DESIGN §6): `mount -t fuse.synapse-mount syn123 /mnt/syn
 * -o ro,allow_other,cache_dir=/x` (or an /etc/fstab line) makes mount(8) run /sbin/mount.fuse,
 * which runs `synapse-mount syn123 /mnt/syn -o <options>` through /bin/sh — as root, with a
 * standard PATH and, at boot, no HOME. This module turns that `-o` list into the CLI's long
 * flags before yargs sees argv, so every mount option has exactly one meaning and one parser.
 *
 *  - Every long flag of the mount command may be given as `name=value` or, for switches, `name`
 *    (`no_name` / `name=false` to turn one off). `_` and `-` are interchangeable: `cache_dir`
 *    and `cache-dir` are the same option.
 *  - Standard mount options: `ro` → --read-only; `rw` is the default. These are accepted and
 *    have no further effect: defaults, auto, noauto, nofail, _netdev, user, users, nouser,
 *    suid, nosuid, dev, nodev, exec, noexec, async, atime, noatime, relatime, nodiratime,
 *    comment=…, and every x-… (x-systemd.automount, …) — mount(8) strips most of them, but
 *    systemd and other callers pass some through.
 *  - Anything else is an error that lists the valid options, so a typo in fstab fails loudly
 *    at mount time instead of being silently ignored.
 *  - An option set both by `-o` and by its long flag is an error (yargs would make an array).
 *
 * Only the mount command is rewritten: `sts-token … -o json` keeps its own `-o`.
 */
import { UsageError } from '../config.js';

export type FlagKind = 'string' | 'number' | 'boolean';

/**
 * Long flags of the mount command (bin/synapse-mount.ts) that `-o` may set. A test checks that
 * every flag in `synapse-mount --help` is here.
 */
export const MOUNT_FLAGS: Readonly<Record<string, FlagKind>> = {
  endpoint: 'string',
  'auth-token-file': 'string',
  'retry-timeout': 'number',
  's3-endpoint': 'string',
  's3-region': 'string',
  'read-only': 'boolean',
  sts: 'boolean',
  'cache-size': 'string',
  'block-size': 'string',
  'metadata-ttl': 'string',
  'read-timeout': 'number',
  'spool-dir': 'string',
  'part-size': 'string',
  'max-write-memory': 'string',
  'allow-other': 'boolean',
  'direct-io': 'boolean',
  'direct-writes': 'boolean',
  'direct-reads': 'boolean',
  'max-request-size': 'string',
  uid: 'number',
  gid: 'number',
  'file-mode': 'string',
  'dir-mode': 'string',
  'log-level': 'string',
  'log-file': 'string',
  'cache-dir': 'string',
  'cache-dir-size': 'string',
  'metadata-view': 'string',
  foreground: 'boolean',
};

/** Standard mount(8) options accepted without effect (`ro`/`rw` are handled apart). */
export const IGNORED_STANDARD_OPTIONS = [
  'defaults', 'auto', 'noauto', 'nofail', '_netdev', 'user', 'users', 'nouser',
  'suid', 'nosuid', 'dev', 'nodev', 'exec', 'noexec', 'async', 'atime', 'noatime', 'relatime', 'nodiratime',
] as const;

/** Subcommands: their argv is left alone (sts-token has its own -o). */
export const SUBCOMMANDS = ['unmount', 'umount', 'sts-token', 'create-folder', 'add-s3-file', 'info', 'recover'] as const;

/** The option list for an error message. */
export function validOptionsText(): string {
  const flags = Object.entries(MOUNT_FLAGS).map(([name, kind]) => {
    const o = name.replace(/-/g, '_');
    return kind === 'boolean' ? o : `${o}=${kind === 'number' ? 'N' : 'VALUE'}`;
  });
  return ['ro', 'rw', ...IGNORED_STANDARD_OPTIONS, 'x-*', 'comment=…', ...flags].join(', ');
}

/** Split an -o value on commas outside double quotes; quotes are removed. */
export function splitOptionList(list: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of list) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

/** One -o item → a long flag argument, `null` (accepted, no effect), or a thrown UsageError. */
function translate(item: string, set: Map<string, string>): void {
  const eq = item.indexOf('=');
  const rawName = eq < 0 ? item : item.slice(0, eq);
  const value = eq < 0 ? undefined : item.slice(eq + 1);
  if (rawName.startsWith('x-') || rawName === 'comment') return;
  if ((IGNORED_STANDARD_OPTIONS as readonly string[]).includes(rawName) && value === undefined) return;
  if (rawName === 'ro' && value === undefined) {
    set.set('read-only', '--read-only');
    return;
  }
  if (rawName === 'rw' && value === undefined) {
    set.set('read-only', '--no-read-only');
    return;
  }
  const name = rawName.replace(/_/g, '-');
  const negated = name.startsWith('no-') && MOUNT_FLAGS[name.slice(3)] === 'boolean' ? name.slice(3) : undefined;
  const flag = negated ?? name;
  const kind = MOUNT_FLAGS[flag];
  if (!kind) throw new UsageError(`-o ${item}: unknown mount option. Valid options: ${validOptionsText()}`);
  if (kind === 'boolean') {
    let on: boolean;
    if (value === undefined) on = !negated;
    else if (TRUE.has(value.toLowerCase()) && !negated) on = true;
    else if (FALSE.has(value.toLowerCase()) && !negated) on = false;
    else throw new UsageError(`-o ${item}: ${rawName} is a switch (give it alone, or =true/=false)`);
    set.set(flag, on ? `--${flag}` : `--no-${flag}`);
    return;
  }
  if (value === undefined || value === '') throw new UsageError(`-o ${item}: ${rawName} needs a value (${rawName}=…)`);
  set.set(flag, `--${flag}=${value}`);
}

/** Was `--flag` (or --flag=…, --no-flag) given directly in argv? */
function givenDirectly(argv: string[], flag: string): boolean {
  return argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`) || a === `--no-${flag}`);
}

/**
 * Rewrite the mount command's `-o a,b=c` (also `-oa,b=c`, repeated) into long flags; returns
 * argv unchanged for subcommands or when there is no `-o`. Throws UsageError on a bad option.
 */
export function expandMountOptions(argv: string[]): string[] {
  const first = argv.find((a) => !a.startsWith('-'));
  if (first !== undefined && (SUBCOMMANDS as readonly string[]).includes(first)) return argv;
  const rest: string[] = [];
  const set = new Map<string, string>();
  let seen = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let list: string | undefined;
    if (a === '-o') {
      list = argv[++i];
      if (list === undefined) throw new UsageError('-o needs a list of options (e.g. -o ro,allow_other)');
    } else if (a.startsWith('-o') && !a.startsWith('--')) {
      list = a.slice(2);
    } else {
      rest.push(a);
      continue;
    }
    seen = true;
    for (const item of splitOptionList(list)) translate(item, set);
  }
  if (!seen) return argv;
  for (const flag of set.keys()) {
    if (givenDirectly(rest, flag)) throw new UsageError(`--${flag} is given both as a flag and in -o; give it once`);
  }
  return [...rest, ...set.values()];
}
