/**
 * The failure script behind the seams' fault wrappers (src/synapse/faulty-api.ts,
 * src/s3/faulty-object-store.ts; CONVENTIONS §2): per operation, an ordered list of scripted
 * faults, each letting `skip` calls through and then failing `times` calls — optionally after
 * the real call (`afterCall`: the work done, the answer lost) and after `delayMs`. The wrappers
 * differ only in the error they throw by default, which they pass to `run`.
 */
export interface ScriptedFault {
  /** How many calls fail (default 1). */
  times?: number;
  /** Calls let through before the first failure (default 0). */
  skip?: number;
  /** Throw this instead of the wrapper's default error (a value, or built per call from the op name). */
  error?: unknown;
  /** Make the real call, then throw: the work is done, the answer lost. */
  afterCall?: boolean;
  /** Wait this long before answering, failing or not. */
  delayMs?: number;
}

interface Script<F> {
  fault: F;
  /** Failures still to inject. */
  left: number;
  /** Calls still to let through before them. */
  toSkip: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FaultScript<Op extends string, F extends ScriptedFault> {
  private readonly scripts = new Map<Op, Array<Script<F>>>();
  /** Every call per op, failed ones included. */
  readonly calls: Partial<Record<Op, number>> = {};
  /** Failures thrown per op. */
  readonly injected: Partial<Record<Op, number>> = {};

  add(op: Op, fault: F): void {
    const list = this.scripts.get(op) ?? [];
    list.push({ fault, left: fault.times ?? 1, toSkip: fault.skip ?? 0 });
    this.scripts.set(op, list);
  }

  /** Failures still scripted for `op`. */
  pending(op: Op): number {
    return (this.scripts.get(op) ?? []).reduce((n, s) => n + s.left, 0);
  }

  clear(): void {
    this.scripts.clear();
  }

  /** The script that applies to this call, if any: consumes one skip or one failure. */
  private take(op: Op): { fault: F; fail: boolean } | undefined {
    const list = this.scripts.get(op);
    const s = list?.[0];
    if (!list || !s) return undefined;
    if (s.toSkip > 0) {
      s.toSkip--;
      return { fault: s.fault, fail: false };
    }
    s.left--;
    if (s.left <= 0) list.shift();
    if (list.length === 0) this.scripts.delete(op);
    return { fault: s.fault, fail: true };
  }

  /** Run `call` under the script of `op`; a scripted failure throws `fault.error` or `defaultError(fault)`. */
  async run<T>(op: Op, call: () => Promise<T>, defaultError: (fault: F) => unknown): Promise<T> {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    const t = this.take(op);
    if (t?.fault.delayMs) await sleep(t.fault.delayMs);
    if (!t?.fail) return call();
    this.injected[op] = (this.injected[op] ?? 0) + 1;
    if (t.fault.afterCall) await call();
    const f = t.fault;
    if (f.error !== undefined) throw typeof f.error === 'function' ? (f.error as (o: string) => unknown)(op) : f.error;
    throw defaultError(f);
  }
}
