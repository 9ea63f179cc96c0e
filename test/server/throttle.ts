/**
 * Synapse's per-user throttle, enforced only when the `throttle` knob is on: at most 3
 * requests in flight and 600 requests per sliding 60 s window per user (production limits).
 * Over either limit the request is refused with 429 and a reason, without Retry-After — as
 * synapse.org usually answers.
 */
import { THROTTLE_MAX_CONCURRENT, THROTTLE_MAX_PER_WINDOW, THROTTLE_WINDOW_MS } from './config.js';

export class Throttle {
  private inFlight = new Map<string, number>();
  private recent = new Map<string, number[]>();

  /** Returns a release function, or a reason when the request must be refused. */
  acquire(userId: string): { release: () => void } | { reason: string } {
    const now = Date.now();
    const times = (this.recent.get(userId) ?? []).filter((t) => now - t < THROTTLE_WINDOW_MS);
    this.recent.set(userId, times);
    const n = this.inFlight.get(userId) ?? 0;
    if (n >= THROTTLE_MAX_CONCURRENT) {
      return { reason: `Too many concurrent requests. The maximum number of concurrent requests per user is ${THROTTLE_MAX_CONCURRENT}.` };
    }
    if (times.length >= THROTTLE_MAX_PER_WINDOW) {
      return { reason: `Too many requests. The maximum number of requests per user is ${THROTTLE_MAX_PER_WINDOW} per minute.` };
    }
    times.push(now);
    this.inFlight.set(userId, n + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.inFlight.set(userId, (this.inFlight.get(userId) ?? 1) - 1);
      },
    };
  }
}
