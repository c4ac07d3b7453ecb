/** Faults the test gateway can inject, one per matching request, in the order they were queued. */
export type Fault =
  /** Answer 503 (with `Retry-After` in seconds when given) without touching the database. */
  | { kind: 'unavailable'; retryAfterSeconds?: number }
  /** Wait this long, then handle the request normally. */
  | { kind: 'delay'; ms: number }
  /** Never answer; the request stays open until the client gives up (aborts) or the gateway closes. */
  | { kind: 'hang' }
  /** Reset the TCP connection without answering, before touching the database. */
  | { kind: 'reset' }
  /** Run the request and commit its transaction, then reset the connection instead of answering. */
  | { kind: 'commitThenDrop' };

export interface FaultRule {
  fault: Fault;
  /** How many requests it still applies to (Infinity: until cleared). */
  remaining: number;
  /** Only requests to this RPC function (default: any). */
  fn?: string;
}

export class FaultQueue {
  #rules: FaultRule[] = [];

  add(fault: Fault, options: { times?: number; fn?: string } = {}): void {
    this.#rules.push({ fault, remaining: options.times ?? 1, ...(options.fn ? { fn: options.fn } : {}) });
  }

  clear(): void {
    this.#rules = [];
  }

  get pending(): number {
    return this.#rules.reduce((n, rule) => n + rule.remaining, 0);
  }

  /** The fault for a request to `fn`, consuming one use of the first matching rule. */
  take(fn: string): Fault | undefined {
    const rule = this.#rules.find((r) => r.remaining > 0 && (r.fn === undefined || r.fn === fn));
    if (!rule) return undefined;
    rule.remaining--;
    this.#rules = this.#rules.filter((r) => r.remaining > 0);
    return rule.fault;
  }
}
