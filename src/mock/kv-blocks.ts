/**
 * Chained hashes of the full blocks of a token sequence, as vLLM's automatic prefix caching keys
 * its blocks: block i's hash mixes block i-1's hash with block i's token ids, so a block only
 * matches when everything before it matches too. A partial last block gets no hash.
 */
export function chainedBlockHashes(tokenIds: ArrayLike<number>, blockSize: number): number[] {
  const hashes: number[] = [];
  let parent = 0x12345;
  for (let start = 0; start + blockSize <= tokenIds.length; start += blockSize) {
    let h = parent;
    for (let i = start; i < start + blockSize; i++) {
      h = Math.imul(h ^ tokenIds[i]!, 0x5bd1e995);
      h ^= h >>> 15;
    }
    h >>>= 0;
    hashes.push(h);
    parent = h;
  }
  return hashes;
}

/** A request's blocks, in sequence order: a hash for a block in the prefix index, undefined for a private one. */
export type BlockList = Array<number | undefined>;

/**
 * The KV cache of one engine in blocks of `blockSize` tokens, as vLLM manages it:
 * - a block is in use (held by running requests), cached (free, but its content still indexed
 *   by hash so a later prompt with the same prefix can take it back), or empty;
 * - a block computed by a request is indexed by its hash once full, and shared: other requests
 *   whose prompts start the same way take a reference instead of computing it again;
 * - the prefix cache is the cached blocks: at most `cacheLimit` of them, least recently freed
 *   evicted first, and a new block comes from an empty one first, else by evicting the least
 *   recently used cached one (vLLM takes the head of one free queue; empty-first differs only in
 *   keeping a little more in cache early on);
 * - kv usage, as vLLM reports it, counts only blocks in use: cached blocks are free.
 * A `cacheLimit` of 0 turns prefix caching off: nothing is indexed, nothing is shared.
 */
export class KvBlockPool {
  /** Indexed blocks (in use or cached) and their reference counts. */
  private readonly refs = new Map<number, number>();
  /** Cached blocks (indexed, no reference); a Map's insertion order is its recency order, oldest first. */
  private readonly lru = new Map<number, true>();
  /** Blocks in use that are not indexed (partial, duplicate, or caching off). */
  private privateInUse = 0;
  /** Indexed blocks with at least one reference. */
  private sharedInUse = 0;

  constructor(
    readonly capacity: number,
    readonly blockSize: number,
    readonly cacheLimit: number,
  ) {}

  get cachingEnabled(): boolean {
    return this.cacheLimit > 0;
  }

  /** Blocks held by requests. */
  get used(): number {
    return this.privateInUse + this.sharedInUse;
  }

  /** Free blocks that still hold a cached prefix (evictable). */
  get cached(): number {
    return this.lru.size;
  }

  /** Free blocks holding nothing. */
  get empty(): number {
    return this.capacity - this.used - this.lru.size;
  }

  /** Blocks a new allocation may take: empty ones, then cached ones (evicted). */
  get available(): number {
    return this.capacity - this.used;
  }

  /**
   * How many leading blocks of `hashes` (at most `maxBlocks`) are indexed, and how many of those
   * are cached rather than in use (taking them back uses up that many evictable blocks).
   */
  match(hashes: readonly number[], maxBlocks: number): { blocks: number; cachedBlocks: number } {
    let blocks = 0;
    let cachedBlocks = 0;
    if (!this.cachingEnabled) return { blocks, cachedBlocks };
    const n = Math.min(maxBlocks, hashes.length);
    while (blocks < n) {
      const r = this.refs.get(hashes[blocks]!);
      if (r === undefined) break;
      if (r === 0) cachedBlocks++;
      blocks++;
    }
    return { blocks, cachedBlocks };
  }

  /** Takes a reference on the first `n` blocks of `hashes` (a `match` just made them sure to be indexed). */
  acquire(hashes: readonly number[], n: number, into: BlockList): void {
    for (let i = 0; i < n; i++) {
      const h = hashes[i]!;
      const r = this.refs.get(h)!;
      if (r === 0) {
        this.lru.delete(h);
        this.sharedInUse++;
      }
      this.refs.set(h, r + 1);
      into.push(h);
    }
  }

  /** Appends `n` private blocks to `into`, evicting cached ones if need be; false (and nothing taken) if fewer are available. */
  allocate(n: number, into: BlockList): boolean {
    if (n > this.available) return false;
    let fromCache = n - this.empty;
    while (fromCache-- > 0) this.evictOldest();
    this.privateInUse += n;
    for (let i = 0; i < n; i++) into.push(undefined);
    return true;
  }

  /**
   * Indexes a private block that has just been filled, under `hash`, so later prompts can share
   * it. Returns the hash if indexed; undefined (the block stays private) when caching is off or
   * another copy already holds that hash (two requests computed the same block at once).
   */
  register(hash: number): number | undefined {
    if (!this.cachingEnabled || this.refs.has(hash)) return undefined;
    this.refs.set(hash, 1);
    this.privateInUse--;
    this.sharedInUse++;
    return hash;
  }

  /**
   * Gives back a request's blocks, last first as vLLM does: its leading blocks (the ones another
   * prompt is likeliest to share) end up the most recently cached, evicted last.
   */
  release(blocks: BlockList): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const h = blocks[i];
      if (h === undefined) {
        this.privateInUse--;
        continue;
      }
      const r = this.refs.get(h)! - 1;
      this.refs.set(h, r);
      if (r === 0) {
        this.sharedInUse--;
        this.lru.set(h, true);
      }
    }
    blocks.length = 0;
    while (this.lru.size > this.cacheLimit) this.evictOldest();
  }

  private evictOldest(): void {
    const oldest = this.lru.keys().next().value as number;
    this.lru.delete(oldest);
    this.refs.delete(oldest);
  }

  /**
   * Recounts everything from the requests' block lists and throws on any disagreement with the
   * running counters or the capacity bounds (tests call it after every step).
   */
  audit(holders: Iterable<BlockList>): void {
    let priv = 0;
    const held = new Map<number, number>();
    for (const blocks of holders) {
      for (const h of blocks) {
        if (h === undefined) priv++;
        else held.set(h, (held.get(h) ?? 0) + 1);
      }
    }
    const fail = (what: string) => {
      throw new Error(`KV block audit: ${what}`);
    };
    if (priv !== this.privateInUse) fail(`private blocks ${priv} held, ${this.privateInUse} counted`);
    if (held.size !== this.sharedInUse) fail(`shared blocks ${held.size} held, ${this.sharedInUse} counted`);
    for (const [h, n] of held) if (this.refs.get(h) !== n) fail(`block ${h} held ${n} times, ${this.refs.get(h)} references`);
    for (const [h, r] of this.refs) {
      if (r === 0 && !this.lru.has(h)) fail(`block ${h} unreferenced but not cached`);
      if (r > 0 && this.lru.has(h)) fail(`block ${h} referenced and cached`);
    }
    if (this.used + this.cached > this.capacity) fail(`${this.used} used + ${this.cached} cached > ${this.capacity} blocks`);
    if (this.cached > this.cacheLimit) fail(`${this.cached} cached > limit ${this.cacheLimit}`);
  }
}
