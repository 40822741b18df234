/**
 * A token bucket per client address (Envoy's local rate limit, per client): each holds up to
 * `burst` tokens and refills at `ratePerS`; a request takes one. The map is bounded: past
 * `maxClients` the least recently seen client is forgotten (it comes back with a full bucket,
 * which is what an idle client would have anyway), so a flood from many addresses cannot grow it.
 */
export interface BucketOptions {
  ratePerS: number;
  burst: number;
  maxClients: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

export class ClientBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;

  constructor(private readonly opts: BucketOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Clients remembered now (at most maxClients). */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes a token for `client`: 0 when it had one, else the whole seconds until it will (Retry-After). */
  take(client: string): number {
    const { ratePerS, burst, maxClients } = this.opts;
    const now = this.now();
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= maxClients) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: burst, atMs: now };
    } else {
      // most recently seen last: the first key is the one to forget
      this.buckets.delete(client);
      b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.atMs) * ratePerS) / 1000);
      b.atMs = now;
    }
    this.buckets.set(client, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / ratePerS));
  }
}
