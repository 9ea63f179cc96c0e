/**
 * Runtime fault rules (POST/DELETE /_dev/faults). A rule matches requests to one target
 * ("s3" or "synapse") whose path contains `pathPattern` (and whose method equals `method`
 * when given); it fires with probability `rate`, at most `count` times (null = unlimited).
 * A fired rule adds `latencyMs`, then answers `status` (an S3 XML error or a Synapse JSON
 * reason) or, with `reset`, destroys the connection mid-response; with `body` (synapse only)
 * it answers 200 with that raw text as `application/json` — malformed or truncated JSON.
 */
export interface FaultRule {
  id: number;
  target: 's3' | 'synapse';
  pathPattern: string;
  method?: string;
  status?: number;
  rate: number;
  latencyMs: number;
  reset: boolean;
  count: number | null;
  /** optional: Retry-After header (seconds) on a 429/503 answer */
  retryAfterSec?: number;
  /** optional (synapse): answer 200 with this raw body, e.g. '{"id": "syn' */
  body?: string;
  fired: number;
}

export type FaultInput = Record<string, unknown>;

export class Faults {
  private rules: FaultRule[] = [];
  private nextId = 1;

  /** Validate and add a rule; returns an error message on bad input. */
  add(input: FaultInput): FaultRule | string {
    const target = input.target;
    if (target !== 's3' && target !== 'synapse') return 'target must be "s3" or "synapse"';
    const pathPattern = input.pathPattern ?? '';
    if (typeof pathPattern !== 'string') return 'pathPattern must be a string';
    const rule: FaultRule = {
      id: this.nextId++,
      target,
      pathPattern,
      rate: 1,
      latencyMs: 0,
      reset: false,
      count: null,
      fired: 0,
    };
    if (input.method !== undefined && input.method !== null) {
      if (typeof input.method !== 'string') return 'method must be a string';
      rule.method = input.method.toUpperCase();
    }
    if (input.status !== undefined && input.status !== null) {
      if (typeof input.status !== 'number' || input.status < 100 || input.status > 599) return 'status must be an HTTP status';
      rule.status = input.status;
    }
    if (input.rate !== undefined && input.rate !== null) {
      if (typeof input.rate !== 'number' || input.rate < 0 || input.rate > 1) return 'rate must be between 0 and 1';
      rule.rate = input.rate;
    }
    if (input.latencyMs !== undefined && input.latencyMs !== null) {
      if (typeof input.latencyMs !== 'number' || input.latencyMs < 0) return 'latencyMs must be >= 0';
      rule.latencyMs = input.latencyMs;
    }
    if (input.reset !== undefined && input.reset !== null) {
      if (typeof input.reset !== 'boolean') return 'reset must be a boolean';
      rule.reset = input.reset;
    }
    if (input.count !== undefined && input.count !== null) {
      if (typeof input.count !== 'number' || !Number.isInteger(input.count) || input.count < 0) return 'count must be a non-negative integer or null';
      rule.count = input.count;
    }
    if (input.retryAfterSec !== undefined && input.retryAfterSec !== null) {
      if (typeof input.retryAfterSec !== 'number' || input.retryAfterSec < 0) return 'retryAfterSec must be >= 0';
      rule.retryAfterSec = input.retryAfterSec;
    }
    if (input.body !== undefined && input.body !== null) {
      if (typeof input.body !== 'string') return 'body must be a string';
      rule.body = input.body;
    }
    this.rules.push(rule);
    return rule;
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** The first rule that matches and fires for this request (its count is consumed), if any. */
  take(target: 's3' | 'synapse', method: string, path: string): FaultRule | undefined {
    for (const r of this.rules) {
      if (r.target !== target) continue;
      if (r.method && r.method !== method.toUpperCase()) continue;
      if (!path.includes(r.pathPattern)) continue;
      if (r.count !== null && r.count <= 0) continue;
      if (r.rate < 1 && Math.random() >= r.rate) continue;
      if (r.count !== null) r.count--;
      r.fired++;
      return r;
    }
    return undefined;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
