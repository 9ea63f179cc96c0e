/**
 * Which Synapse a key on this machine belongs to.
 *
 * What the mount keeps across mounts — the spool's file times (mtime-log.ts) and, under
 * --cache-dir, blocks and sizes (disk-cache.ts) — is keyed by Synapse's ids (synN, file handle
 * ids). Those are unique within one Synapse only: a local or test server numbers its own from 1,
 * so one spool or cache used against two of them could show one server's time, size — or, for a
 * block of Synapse storage, bytes — for the other's file. Keys of any Synapse but synapse.org
 * therefore carry its host (`syn12@127.0.0.1:8080`); synapse.org's stay bare, so what earlier
 * versions kept stays valid.
 */
import { DEFAULT_ENDPOINT } from '../synapse/http-client.js';

/** '' for synapse.org, else the endpoint's host (with port): the suffix its keys carry. */
export function synapseScope(endpoint: string): string {
  let host: string;
  try {
    host = new URL(endpoint).host.toLowerCase();
  } catch {
    host = endpoint.toLowerCase();
  }
  return host === new URL(DEFAULT_ENDPOINT).host ? '' : host;
}

/** `id` as kept for the Synapse of `scope`. */
export function scopedKey(id: string, scope: string | undefined): string {
  return scope ? `${id}@${scope}` : id;
}
