/**
 * What every subcommand shares: turning auth options into a token and endpoint, and turning
 * errors into one clear line (no stack traces for user errors).
 */
import { AuthError, discoverAuth } from '../synapse/auth.js';
import { DEFAULT_ENDPOINT, HttpSynapseClient, unreachableNotice } from '../synapse/http-client.js';
import { SynapseError } from '../synapse/errors.js';
import { ConfigError } from '../config.js';
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
  return { token: auth.token, endpoint, ...(auth.warning ? { warning: auth.warning } : {}) };
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
