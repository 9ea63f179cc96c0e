/**
 * Presigned PUT URLs for the parts of one Synapse multipart upload, asked for in batches:
 * `POST /file/multipart/{uploadId}/presigned/url/batch` takes a list of part numbers, and one
 * request per part spent a minute of the user's 600 requests a minute per 10 GiB uploaded (QA
 * audit: 640 calls for a 10 GiB file of 16 MiB parts). A URL is used once, and only while young:
 * Synapse's expire after 15 minutes, and parts wait their turn behind the ones in flight.
 */
import type { SynapseApi } from '../synapse/api.js';
import type { PartPresignedUrl } from '../synapse/types.js';
import { FsError } from './errors.js';

/** Parts asked for at once: the next ones in line, so they are used within minutes. */
export const PART_URL_BATCH = 16;
/** A URL older than this is asked for again (Synapse's last 15 minutes). */
const MAX_AGE_MS = 5 * 60_000;

export class PartUrls {
  private readonly ready = new Map<number, { url: PartPresignedUrl; at: number }>();
  private readonly coming = new Map<number, Promise<void>>();
  /** Parts whose URL was handed out: sent, or being sent (a retry asks `fresh`). */
  private readonly handedOut = new Set<number>();

  /** @param order the parts to send, in the order they will be sent */
  constructor(private readonly api: Pick<SynapseApi, 'getPartUploadUrls'>, private readonly uploadId: string,
    private readonly order: number[], private readonly now: () => number = Date.now) {}

  /** A URL for part `n`, unused so far; `fresh`: ask for a new one (the last was refused: expired). */
  async get(n: number, fresh = false): Promise<PartPresignedUrl> {
    if (!fresh) {
      const inFlight = this.coming.get(n);
      if (inFlight) await inFlight;
      const held = this.ready.get(n);
      this.ready.delete(n);
      if (held && this.now() - held.at < MAX_AGE_MS) return this.handOut(n, held.url);
    }
    const want = fresh ? [n] : [n, ...this.nextInLine(n)];
    const batch = this.api.getPartUploadUrls(this.uploadId, want).then((urls) => {
      const at = this.now();
      for (const url of urls) if (want.includes(url.partNumber)) this.ready.set(url.partNumber, { url, at });
    }).finally(() => {
      for (const p of want) if (this.coming.get(p) === batch) this.coming.delete(p);
    });
    for (const p of want) this.coming.set(p, batch);
    await batch;
    const got = this.ready.get(n);
    this.ready.delete(n);
    if (!got) throw new FsError('EIO', `no upload URL for part ${n}`);
    return this.handOut(n, got.url);
  }

  private handOut(n: number, url: PartPresignedUrl): PartPresignedUrl {
    this.handedOut.add(n);
    return url;
  }

  /**
   * The parts next in line besides `n` that have no URL yet — handed out, young here, or on its
   * way — up to a batch in all. From the start of the line, not after `n`: parts read from disk
   * in parallel ask out of order, and part 3 asking first took only itself, so part 1's batch was
   * a second request (CI: 2 batches for a 3-part upload).
   */
  private nextInLine(n: number): number[] {
    const out: number[] = [];
    for (const p of this.order) {
      if (out.length >= PART_URL_BATCH - 1) break;
      if (p === n || this.handedOut.has(p) || this.coming.has(p)) continue;
      const held = this.ready.get(p);
      if (!(held && this.now() - held.at < MAX_AGE_MS)) out.push(p);
    }
    return out;
  }
}
