/**
 * Token discovery: where the Synapse personal access token (and optionally the endpoint) comes
 * from. The token is returned to the caller and never logged or put into an error message.
 *
 * Order (first hit wins):
 *   1. `token` option (a string given programmatically)      → source 'option'
 *   2. `tokenFile` option (`--auth-token-file PATH`), trimmed → source 'file'
 *   3. `SYNAPSE_AUTH_TOKEN` in the environment, trimmed       → source 'env'
 *   4. the config file's `[authentication] authtoken`         → source 'config'
 *      (the `[default]` section of the newer profile format is read when `[authentication]` has
 *      no token).
 * NOTE: synapseclient 3.x/4.x actually consults ~/.synapseConfig *before* SYNAPSE_AUTH_TOKEN
 * (credential_provider.py: UserArgs, ConfigFile, EnvironmentVariable); 2.x did env first. We keep
 * env before config on purpose: an environment variable is the explicit, per-process choice (a
 * systemd unit, a test harness pointing at a local server) and must not be overridden by a file in
 * whatever HOME the process happens to have — otherwise a real synapse.org token could be sent to
 * a test server.
 *
 * The config file is `$HOME/.synapseConfig` unless `configPath` is given (the Python client has no
 * environment variable for it either, only a path argument). With HOME unset (a mount from
 * /etc/fstab at boot) we fall back to the passwd home directory, as Python's expanduser does, and
 * to no config file at all if that fails too — never a crash. A missing default config file is
 * not an error; a missing explicitly given one is.
 *
 * `[endpoints] repoEndpoint` (e.g. https://repo-prod.prod.sagebase.org/repo/v1) is read whatever
 * the token source is, and reported as the base URL (the `/repo/v1` suffix stripped), because our
 * `--endpoint` is the base under which /repo/v1, /file/v1 and /auth/v1 live.
 *
 * The INI parser is deliberately small but follows Python's configparser where it matters: `=` or
 * `:` separators, `#`/`;` comment lines, case-insensitive keys, section names case-sensitive,
 * indented continuation lines appended to the previous value, surrounding whitespace trimmed.
 */
import { access, readFile, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

export type TokenSource = 'option' | 'file' | 'env' | 'config';

export interface AuthOptions {
  /** An explicit token (e.g. from a caller that already has one). */
  token?: string;
  /** `--auth-token-file PATH`: the file's contents, trimmed (`-`: stdin's). */
  tokenFile?: string;
  /** An explicit config file path; default `$HOME/.synapseConfig`. */
  configPath?: string;
  /** Environment to read SYNAPSE_AUTH_TOKEN and HOME from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * Home directory used when HOME is unset: default the passwd entry (os.userInfo). Pass null for
   * "no home at all" (tests), or a path.
   */
  fallbackHome?: string | null;
}

export interface AuthResult {
  token: string;
  source: TokenSource;
  /** Base endpoint from the config file's `[endpoints] repoEndpoint`, if any. */
  endpoint?: string;
  /** The config file that was read (whether or not it supplied the token). */
  configPath?: string;
  /** Set when the token came from a config file that group/others can read. */
  warning?: string;
}

export type AuthErrorCode = 'NO_TOKEN' | 'TOKEN_FILE' | 'CONFIG_FILE';

export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(readonly code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const TOKEN_ENV = 'SYNAPSE_AUTH_TOKEN';
export const CONFIG_FILE_NAME = '.synapseConfig';

export type IniSections = Map<string, Map<string, string>>;

/** Parse INI text into section → (lower-cased key → value). Keys before any section are dropped. */
export function parseIni(text: string): IniSections {
  const sections: IniSections = new Map();
  let current: Map<string, string> | undefined;
  let lastKey: string | undefined;
  for (const rawLine of text.split(/\r?\n/)) {
    const trimmed = rawLine.trim();
    if (trimmed === '') { lastKey = undefined; continue; }
    if (trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    // Indented line after a key: continuation of its value (configparser semantics).
    if (/^\s/.test(rawLine) && current !== undefined && lastKey !== undefined) {
      current.set(lastKey, `${current.get(lastKey) ?? ''}\n${trimmed}`);
      continue;
    }
    const section = /^\[([^\]]+)\]$/.exec(trimmed);
    if (section !== null) {
      const name = section[1]!.trim();
      current = sections.get(name) ?? new Map<string, string>();
      sections.set(name, current);
      lastKey = undefined;
      continue;
    }
    const m = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(trimmed);
    if (m === null || current === undefined) { lastKey = undefined; continue; }
    lastKey = m[1]!.toLowerCase();
    current.set(lastKey, m[2]!);
  }
  return sections;
}

/** `https://host/repo/v1/` → `https://host`; other URLs lose only trailing slashes. */
export function baseFromRepoEndpoint(repoEndpoint: string): string {
  return repoEndpoint.trim().replace(/\/+$/, '').replace(/\/repo\/v1$/, '');
}

/** The default config path, or undefined when no home directory can be determined. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env, fallbackHome?: string | null): string | undefined {
  const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : fallbackHome === undefined ? passwdHome() : fallbackHome;
  return home === null || home === undefined || home === '' ? undefined : join(home, CONFIG_FILE_NAME);
}

function passwdHome(): string | undefined {
  try {
    return userInfo().homedir || undefined;
  } catch {
    return undefined; // no passwd entry for this uid (containers): no default config file
  }
}

/** All of stdin (`--auth-token-file -`): the token piped in by a secret manager, never on argv. */
async function readStdin(): Promise<string> {
  // At a terminal it waits for the user: say what for (review: it sat silent).
  if (process.stdin.isTTY) process.stderr.write('synapse-mount: reading the Synapse auth token from stdin (paste it, then Ctrl-D)\n');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A warning when `path` is readable or writable by group/others (mode & 0o077) — it holds a
 * bearer token. null when private, or when the file cannot be stat'ed.
 */
export async function configFileWarning(path: string): Promise<string | null> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch {
    return null;
  }
  if ((mode & 0o077) === 0) return null;
  // Advice only where it can be taken: a secret mounted read-only (Kubernetes, Docker) is the
  // platform's to protect, and warned at every mount (review).
  if (!(await access(path, fsConstants.W_OK).then(() => true, () => false))) return null;
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  return `${path} holds a Synapse token but has mode ${octal} (group/others can access it); run: chmod 600 ${shellQuote(path)}`;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

interface ConfigValues {
  token?: string;
  endpoint?: string;
}

async function readConfig(path: string, explicit: boolean): Promise<ConfigValues | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    // A default config that is absent or unreadable is as if there were none.
    if (!explicit) return undefined;
    const code = (e as NodeJS.ErrnoException).code;
    throw new AuthError('CONFIG_FILE', `cannot read Synapse config file ${path}: ${code ?? (e as Error).message}`, { cause: e });
  }
  const ini = parseIni(text);
  const out: ConfigValues = {};
  const token = (ini.get('authentication')?.get('authtoken') ?? ini.get('default')?.get('authtoken'))?.trim();
  if (token !== undefined && token !== '') out.token = token;
  const repo = ini.get('endpoints')?.get('repoendpoint')?.trim();
  if (repo !== undefined && repo !== '') out.endpoint = baseFromRepoEndpoint(repo);
  return out;
}

/** The config file's endpoint (`[endpoints] repoEndpoint`), if any: no token needed. */
export async function discoverEndpoint(opts: Pick<AuthOptions, 'env' | 'configPath' | 'fallbackHome'> = {}): Promise<string | undefined> {
  const configPath = opts.configPath ?? defaultConfigPath(opts.env ?? process.env, opts.fallbackHome);
  return configPath === undefined ? undefined : (await readConfig(configPath, opts.configPath !== undefined))?.endpoint;
}

/** Find the token (see the module comment for the order). Throws AuthError when there is none. */
export async function discoverAuth(opts: AuthOptions = {}): Promise<AuthResult> {
  const env = opts.env ?? process.env;
  const configPath = opts.configPath ?? defaultConfigPath(env, opts.fallbackHome);
  const config = configPath === undefined ? undefined : await readConfig(configPath, opts.configPath !== undefined);

  const result = (token: string, source: TokenSource): AuthResult => {
    const r: AuthResult = { token, source };
    if (config?.endpoint !== undefined) r.endpoint = config.endpoint;
    if (config !== undefined && configPath !== undefined) r.configPath = configPath;
    return r;
  };

  if (opts.token !== undefined && opts.token.trim() !== '') return result(opts.token.trim(), 'option');

  if (opts.tokenFile !== undefined) {
    let text: string;
    try {
      text = opts.tokenFile === '-' ? await readStdin() : await readFile(opts.tokenFile, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new AuthError('TOKEN_FILE', `cannot read --auth-token-file ${opts.tokenFile}: ${code}`, { cause: e });
    }
    const token = text.trim();
    if (token === '') throw new AuthError('TOKEN_FILE', `--auth-token-file ${opts.tokenFile} is empty`);
    // The same warning as for the config file: a token others can read is a token they have (QA).
    const r = result(token, 'file');
    const warning = opts.tokenFile === '-' ? null : await configFileWarning(opts.tokenFile);
    if (warning !== null) r.warning = warning;
    return r;
  }

  const fromEnv = env[TOKEN_ENV]?.trim();
  if (fromEnv !== undefined && fromEnv !== '') return result(fromEnv, 'env');

  if (config?.token !== undefined && configPath !== undefined) {
    const r = result(config.token, 'config');
    const warning = await configFileWarning(configPath);
    if (warning !== null) r.warning = warning;
    return r;
  }

  const where = configPath ?? `~/${CONFIG_FILE_NAME} (no home directory)`;
  throw new AuthError(
    'NO_TOKEN',
    `no Synapse auth token: use --auth-token-file PATH, set ${TOKEN_ENV}, or put "authtoken = <token>" under [authentication] in ${where}`,
  );
}
