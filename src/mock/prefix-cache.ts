import { chainedBlockHashes } from './kv-blocks.js';

/**
 * A per-instance prefix cache in fixed-size token blocks, as vLLM's automatic prefix caching does:
 * block i's key chains the key of block i-1 with block i's token ids, so a block only matches when
 * the whole prefix before it matches. Only full blocks are cached. Least recently used blocks are
 * evicted beyond `capacityBlocks`.
 */
export class PrefixCache {
  /** Insertion order of a Map is its recency order: re-inserting moves a key to the end. */
  private readonly blocks = new Map<number, true>();
  queriedTokens = 0;
  hitTokens = 0;

  constructor(
    readonly blockSize: number,
    readonly capacityBlocks: number,
  ) {}

  get usedBlocks(): number {
    return this.blocks.size;
  }

  /** Chained block keys of the full blocks of a prompt. */
  blockKeys(tokenIds: number[]): number[] {
    return chainedBlockHashes(tokenIds, this.blockSize);
  }

  /** Number of leading prompt tokens already cached; counts the query and its hits. */
  lookup(tokenIds: number[], keys = this.blockKeys(tokenIds)): number {
    let hitBlocks = 0;
    for (const key of keys) {
      if (!this.blocks.has(key)) break;
      hitBlocks++;
    }
    const hit = hitBlocks * this.blockSize;
    this.queriedTokens += tokenIds.length;
    this.hitTokens += hit;
    return hit;
  }

  /**
   * Stores (or refreshes) every full block of a prompt after its prefill. Deepest first, so a
   * prompt's leading blocks are the most recent and eviction takes leaves before their parents.
   */
  insert(keys: number[]): void {
    if (this.capacityBlocks <= 0) return;
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      this.blocks.delete(key);
      this.blocks.set(key, true);
    }
    while (this.blocks.size > this.capacityBlocks) {
      const oldest = this.blocks.keys().next().value as number;
      this.blocks.delete(oldest);
    }
  }

  clear(): void {
    this.blocks.clear();
  }
}
