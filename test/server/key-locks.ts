/**
 * Per-object read/write locks that make the gate atomic the way S3 is: a GET or HEAD never
 * sees a half-written object (s3rver writes objects in place), and a write never truncates a
 * file a GET is streaming. Writers are preferred: once a write waits, new reads queue behind it.
 */
interface LockState { readers: number; writer: boolean; waitingWriters: number; queue: Array<() => void> }

export class KeyLocks {
  private locks = new Map<string, LockState>();

  private get(key: string): LockState {
    let s = this.locks.get(key);
    if (!s) { s = { readers: 0, writer: false, waitingWriters: 0, queue: [] }; this.locks.set(key, s); }
    return s;
  }

  private wake(key: string, s: LockState): void {
    const q = s.queue;
    s.queue = [];
    for (const f of q) f();
    if (s.readers === 0 && !s.writer && s.waitingWriters === 0 && s.queue.length === 0) this.locks.delete(key);
  }

  async read(key: string): Promise<() => void> {
    const s = this.get(key);
    while (s.writer || s.waitingWriters > 0) await new Promise<void>((r) => s.queue.push(r));
    s.readers++;
    let done = false;
    return () => { if (done) return; done = true; s.readers--; this.wake(key, s); };
  }

  async write(key: string): Promise<() => void> {
    const s = this.get(key);
    s.waitingWriters++;
    while (s.writer || s.readers > 0) await new Promise<void>((r) => s.queue.push(r));
    s.waitingWriters--;
    s.writer = true;
    let done = false;
    return () => { if (done) return; done = true; s.writer = false; this.wake(key, s); };
  }
}
