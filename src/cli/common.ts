/**
 * What every subcommand shares: turning auth options into a token and endpoint, and turning
 * errors into one clear line (no stack traces for user errors).
 */
import { AuthError, CONFIG_FILE_NAME, discoverAuth, discoverEndpoint, TOKEN_ENV } from '../synapse/auth.js';
import { DEFAULT_ENDPOINT, HttpSynapseClient, normaliseEndpoint, unreachableNotice } from '../synapse/http-client.js';
import { SynapseError } from '../synapse/errors.js';
import { ConfigError, UsageError } from '../config.js';
import { MountError } from '../fs/preflight.js';
import { displayUrl } from '../fs/mount-status.js';

export interface AuthArgs {
  endpoint?: string | undefined;
  authTokenFile?: string | undefined;
  retryTimeout?: number | undefined;
}

export async function resolveAuth(args: AuthArgs): Promise<{ token: string; endpoint: string; warning?: string }> {
  const auth = await discoverAuth(args.authTokenFile ? { tokenFile: args.authTokenFile } : {});
  // A header cannot carry it: fetch refused it, which read as "Synapse unreachable" for the
  // whole --retry-timeout (QA). Never quoted: it is a secret.
  if (!/^[\x21-\x7e]+$/.test(auth.token)) {
    throw new ConfigError('the Synapse auth token holds a space, a control or a non-ASCII character, which a token never has (a copy-paste gone wrong?)');
  }
  const endpoint = args.endpoint ?? auth.endpoint ?? DEFAULT_ENDPOINT;
  checkEndpoint(endpoint, args.endpoint !== undefined);
  return { token: auth.token, endpoint, ...(auth.warning ? { warning: auth.warning } : {}) };
}

/**
 * The endpoint the options name (--endpoint, else ~/.synapseConfig's, else synapse.org), checked
 * and as the client keeps it (normaliseEndpoint); no token needed.
 */
export async function endpointFor(args: AuthArgs): Promise<string> {
  return checkEndpoint(args.endpoint ?? (await discoverEndpoint()) ?? DEFAULT_ENDPOINT, args.endpoint !== undefined);
}

/**
 * An http(s) URL without a user name or password — refused before any request: a password in
 * it was echoed in every error line, and each request retried for the whole --retry-timeout
 * though none could be made (QA). A bad --endpoint is a usage error, as a bad --s3-endpoint.
 */
function checkEndpoint(endpoint: string, fromFlag: boolean): string {
  const what = fromFlag ? '--endpoint' : `the endpoint in ~/${CONFIG_FILE_NAME}`;
  const refuse = (why: string): never => {
    throw fromFlag ? new UsageError(`${what}: ${why}`) : new ConfigError(`${what}: ${why}`);
  };
  let base: string;
  try {
    base = normaliseEndpoint(endpoint); // an http(s) URL, or it throws
  } catch {
    // Not quoted if it may hold a password.
    return refuse(`${endpoint.includes('@') ? 'it' : JSON.stringify(endpoint)} is not an http(s) URL`);
  }
  const url = new URL(base);
  if (url.username !== '' || url.password !== '') {
    refuse(`holds a user name or password, which Synapse does not take (the token goes in --auth-token-file, ${TOKEN_ENV} or ~/${CONFIG_FILE_NAME})`);
  }
  return base;
}

/** A client (no request made yet: the endpoint is checked, the token read). */
export async function clientFor(args: AuthArgs): Promise<HttpSynapseClient> {
  const { token, endpoint, warning } = await resolveAuth(args);
  if (warning) process.stderr.write(`synapse-mount: warning: ${warning}\n`);
  let told = false;
  return new HttpSynapseClient({
    endpoint, authToken: token, retryTimeoutSec: args.retryTimeout ?? 60,
    // Said once, at once: else a command sits silent for the whole --retry-timeout.
    onUnreachable: (err, secondsLeft) => {
      if (told) return;
      told = true;
      process.stderr.write(`synapse-mount: ${unreachableNotice(displayUrl(endpoint), err, secondsLeft)}\n`);
    },
  });
}

/** One line for the user; known error kinds without a stack. */
export function describeError(err: unknown): string {
  if (err instanceof SynapseError) {
    if (err.status === 401) return `Synapse refused the auth token (401): ${err.reason}`;
    return `${err.reason} (Synapse ${err.status || 'unreachable'})`;
  }
  if (err instanceof AuthError || err instanceof MountError || err instanceof ConfigError) return err.message;
  return (err as Error)?.message ?? String(err);
}
