/**
 * Option values shared by the CLI and the composition root: size parsing (K/M/G suffixes,
 * powers of 1024, a bare number = MiB, as issue #3 specifies) and default paths that must work
 * with no HOME (mount at boot from /etc/fstab runs as root with an empty environment).
 */
import os from 'node:os';
import path from 'node:path';

const MiB = 1024 * 1024;

export class ConfigError extends Error {
  override readonly name: string = 'ConfigError';
}

/** A bad option value (a size, a duration, a mode, -o syntax): a usage error, exit 2 like yargs' own. */
export class UsageError extends ConfigError {
  override readonly name: string = 'UsageError';
}

/** "512M", "8m", "1G", "64K", "100" (MiB), "1.5G" → bytes. */
export function parseSize(value: string | number, what: string): number {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text);
  if (!m) throw new UsageError(`${what}: "${text}" is not a size (use e.g. 512M, 1G, 64K; a bare number means MiB)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toUpperCase();
  const mult = unit === 'K' ? 1024 : unit === 'G' ? 1024 * MiB : unit === 'T' ? 1024 * 1024 * MiB : MiB;
  return Math.round(n * mult);
}

/** parseSize, within [min, max] bytes (S3's part limits, a block the kernel can use). */
export function parseSizeWithin(value: string | number, what: string, min: number, max: number): number {
  const n = parseSize(value, what);
  const show = (b: number): string => (b >= 1024 ** 3 ? `${b / 1024 ** 3}G` : b >= MiB ? `${b / MiB}M` : `${b / 1024}K`);
  if (n < min || n > max) throw new UsageError(`${what}: ${String(value).trim()} is outside ${show(min)}–${show(max)}`);
  return n;
}

/** "60" seconds, or "indefinite" → Infinity. */
export function parseTtlSeconds(value: string | number, what: string): number {
  if (String(value) === 'indefinite') return Infinity;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${what}: "${value}" is not a number of seconds (or "indefinite")`);
  return n;
}

function home(): string | undefined {
  const h = process.env['HOME'];
  return h && h !== '/' ? h : undefined;
}

/** ~/.local/state/synapse-mount, or /var/lib/synapse-mount without HOME. */
export function defaultStateDir(): string {
  const h = home();
  if (process.env['XDG_STATE_HOME']) return path.join(process.env['XDG_STATE_HOME'], 'synapse-mount');
  return h ? path.join(h, '.local', 'state', 'synapse-mount') : '/var/lib/synapse-mount';
}

/** ~/.cache/synapse-mount, or /var/cache/synapse-mount without HOME. */
export function defaultCacheDir(): string {
  const h = home();
  if (process.env['XDG_CACHE_HOME']) return path.join(process.env['XDG_CACHE_HOME'], 'synapse-mount');
  return h ? path.join(h, '.cache', 'synapse-mount') : '/var/cache/synapse-mount';
}

export function defaultLogFile(mountpoint: string): string {
  const safe = path.resolve(mountpoint).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+/, '') || 'root';
  return path.join(defaultStateDir(), `${safe}.log`);
}

export function currentUid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : os.userInfo().uid;
}
export function currentGid(): number {
  return typeof process.getgid === 'function' ? process.getgid() : os.userInfo().gid;
}
