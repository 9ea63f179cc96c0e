/**
 * Hashing of upload bytes on a worker thread, so the event loop that answers FUSE writes never
 * stops for it. A streamed write needs two hashes of every byte: the file's MD5 (Synapse file
 * handles carry it) and each part's SHA-256 (the SigV4 payload hash of UploadPart). Inline, they
 * cost ~21 ms (MD5) and ~9 ms (SHA-256) of main-thread time per 16 MiB part here, and a FUSE
 * writer is fed one synchronous 128 KiB request at a time, so every millisecond the loop spent
 * hashing was a millisecond `dd` waited (bench/README.md).
 *
 * Zero copy: part buffers live in SharedArrayBuffers (BufferPool `shared`), and the worker reads
 * the ranges it is sent straight from them. Anything else (a plain Buffer) is hashed inline —
 * correct, just not off-thread.
 *
 * Ordering is the safety argument: the worker handles messages one at a time, in the order they
 * were posted. A caller that posts an MD5 update of a buffer range and later awaits anything the
 * worker answers (a SHA-256, a `barrier()`) knows the update has been read. StreamingUpload
 * releases a part buffer only after such an answer, so no buffer is reused while queued.
 */
import { createHash, createHmac, type BinaryLike } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** Below this, posting to the worker costs more than hashing inline. */
const MIN_OFFTHREAD_BYTES = 256 * 1024;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'update') {
      let h = streams.get(m.stream);
      if (!h) { h = createHash('md5'); streams.set(m.stream, h); }
      h.update(m.data ?? new Uint8Array(m.sab, m.offset, m.length));
    } else if (m.op === 'digest') {
      const h = streams.get(m.stream) ?? createHash('md5');
      streams.delete(m.stream);
      parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
    } else if (m.op === 'drop') {
      streams.delete(m.stream);
    } else if (m.op === 'sha256') {
      const d = createHash('sha256').update(new Uint8Array(m.sab, m.offset, m.length)).digest();
      parentPort.postMessage({ id: m.id, bytes: new Uint8Array(d) });
    } else if (m.op === 'barrier') {
      parentPort.postMessage({ id: m.id });
    }
  } catch (err) {
    if (m.id !== undefined) parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

/** The worker died with requests outstanding: retry (a new worker starts on the next request). */
export class HashWorkerLost extends Error {
  override readonly name = 'HashWorkerLost';
}

interface Reply {
  id: number;
  hex?: string;
  bytes?: Uint8Array;
  error?: string;
}

function isShared(view: Uint8Array): boolean {
  return view.buffer instanceof SharedArrayBuffer;
}

/** One worker for the process, started on first use and never keeping the process alive. */
class HashWorker {
  private worker: Worker | undefined;
  /** Bumped when a worker exits: MD5 streams begun on an earlier one are lost, never resumed. */
  generation = 0;
  private nextId = 1;
  private nextStream = 1;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  private get w(): Worker {
    if (!this.worker) {
      // It allocates next to nothing (digests); small heaps keep its RSS small.
      const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 } });
      w.unref();
      w.on('message', (r: Reply) => {
        const p = this.waiting.get(r.id);
        if (!p) return;
        this.waiting.delete(r.id);
        if (r.error !== undefined) p.reject(new Error(`hash worker: ${r.error}`));
        else p.resolve(r);
      });
      w.on('error', (err) => this.failAll(new HashWorkerLost(`hash worker failed: ${err.message}`, { cause: err })));
      w.on('exit', () => {
        this.worker = undefined;
        this.generation++;
        this.failAll(new HashWorkerLost('hash worker exited'));
      });
      this.worker = w;
    }
    return this.worker;
  }

  private failAll(err: Error): void {
    for (const p of this.waiting.values()) p.reject(err);
    this.waiting.clear();
  }

  private ask(msg: Record<string, unknown>): Promise<Reply> {
    const id = this.nextId++;
    const w = this.w;
    // Only while answers are awaited does the worker keep the process (and the loop) alive.
    if (this.waiting.size === 0) w.ref();
    return new Promise<Reply>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ ...msg, id });
    }).finally(() => {
      if (this.waiting.size === 0) this.worker?.unref();
    });
  }

  newStream(): number {
    return this.nextStream++;
  }

  /** Start the worker now (a writable mount), so the first write does not wait for it. */
  start(): void {
    void this.w;
  }

  /** Add bytes to an MD5 stream. A shared view is read in place later: keep it unchanged until a later answer. */
  update(stream: number, view: Uint8Array): void {
    if (isShared(view)) this.w.postMessage({ op: 'update', stream, sab: view.buffer, offset: view.byteOffset, length: view.byteLength });
    else this.w.postMessage({ op: 'update', stream, data: view }); // structured clone copies it
  }

  async digest(stream: number): Promise<string> {
    return (await this.ask({ op: 'digest', stream })).hex ?? '';
  }

  drop(stream: number): void {
    this.worker?.postMessage({ op: 'drop', stream });
  }

  async sha256(view: Uint8Array): Promise<Uint8Array> {
    const r = await this.ask({ op: 'sha256', sab: view.buffer, offset: view.byteOffset, length: view.byteLength });
    return r.bytes ?? new Uint8Array(0);
  }

  /** Resolves once every message posted before it has been handled. */
  async barrier(): Promise<void> {
    if (!this.worker) return;
    await this.ask({ op: 'barrier' });
  }
}

const hashWorker = new HashWorker();

/** Start the hash worker ahead of the first write (it is otherwise started on first use). */
export function startHashWorker(): void {
  hashWorker.start();
}

/** MD5 of a byte stream, computed on the worker thread (see the module comment for buffer lifetimes). */
export class OffThreadMd5 {
  private readonly stream = hashWorker.newStream();
  private done = false;
  /** The worker generation that holds this stream's state (set by the first update). */
  private generation: number | undefined;

  update(view: Uint8Array): void {
    if (view.byteLength === 0) return;
    hashWorker.update(this.stream, view);
    this.generation ??= hashWorker.generation;
  }

  /** Every update posted so far has been read (its buffer may be reused). */
  settled(): Promise<void> {
    return hashWorker.barrier();
  }

  /** The hex digest of everything updated; the stream ends. */
  async digest(): Promise<string> {
    this.done = true;
    const hex = await hashWorker.digest(this.stream);
    // A worker that died mid-stream took part of the state with it: never return a wrong MD5.
    if (this.generation !== undefined && this.generation !== hashWorker.generation) throw new Error('the hash worker restarted; this MD5 is lost');
    return hex;
  }

  /** Forget the stream (an abandoned upload). */
  dispose(): void {
    if (!this.done) hashWorker.drop(this.stream);
    this.done = true;
  }
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

function toBytes(data: SourceData, encoding?: BufferEncoding): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, encoding ?? 'utf8');
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/**
 * The SDK's `sha256` hash constructor (S3ClientConfig.sha256, the @smithy Hash shape): the SigV4
 * payload hash of a large body in shared memory goes to the worker; HMACs (constructed with a
 * secret) and small or unshared data are hashed inline as @smithy/hash-node would.
 */
export class OffThreadSha256 {
  private readonly secret: Uint8Array | undefined;
  private chunks: Uint8Array[] = [];

  constructor(secret?: SourceData) {
    this.secret = secret === undefined ? undefined : toBytes(secret);
  }

  update(data: SourceData, encoding?: BufferEncoding): void {
    this.chunks.push(toBytes(data, encoding));
  }

  async digest(): Promise<Uint8Array> {
    const chunks = this.chunks;
    this.chunks = [];
    const only = chunks.length === 1 ? chunks[0]! : undefined;
    if (!this.secret && only && only.byteLength >= MIN_OFFTHREAD_BYTES && isShared(only)) return hashWorker.sha256(only);
    const h = this.secret ? createHmac('sha256', this.secret as BinaryLike) : createHash('sha256');
    for (const c of chunks) h.update(c);
    return new Uint8Array(h.digest());
  }

  reset(): void {
    this.chunks = [];
  }
}
