/**
 * An approximate record of the prompt text each backend of one model served lately, to route a
 * request to the backend whose engine most likely still holds its prefix in its KV cache (the idea
 * of the SGLang router's cache-aware policy: a radix tree over text whose nodes list the backends
 * that were sent that text).
 *
 * One radix tree per model: edges are labelled with text, a node lists its tenants (the backends
 * that were sent the text from the root down to it). A tenant of a node is a tenant of all its
 * ancestors, so the deepest node a backend is listed on along a prompt's path gives its match.
 *
 * Cost: matching and inserting walk the prompt once (compared in bulk, see `common`), plus
 * one tenant-set update per node on the path, however many backends there are. Memory is bounded:
 * the tree's characters (plus NODE_CHARS per node for its overhead) stay under a limit, leaves
 * evicted least recently used first. A tenant's removal (its backend left) visits only its nodes.
 *
 * Approximate on purpose: it does not know what an engine evicted from its own cache, nor tokens
 * (one character is one UTF-16 unit of the prompt text the router builds, see prompt-text.ts).
 */

/** Characters each node counts for towards the limit, for its object, set and map (~200 bytes). */
export const NODE_CHARS = 64;

/** Default limit of one model's tree, in characters: about 16 MiB of text plus nodes. */
export const DEFAULT_MAX_CHARS = 8 * 1024 * 1024;

/** A mismatch inside a label is bisected down to this many characters, then found one by one. */
const BISECT_DOWN_TO = 32;

/** A backend as the index knows it; `matched` holds its match after `matchTenants`. */
export class Tenant<T> {
  /** Set by `matchTenants`: `matched` is this request's when `stamp` equals the index's. */
  stamp = 0;
  matched = 0;
  /** Nodes listing it. */
  nodes = 0;
  constructor(readonly owner: T) {}
}

class Node<T> {
  children: Map<number, Node<T>> | undefined = undefined;
  tenants: Set<Tenant<T>>;
  /** Least recently used list: a node is always after (older than) its parent. */
  prev: Node<T> | undefined = undefined;
  next: Node<T> | undefined = undefined;

  constructor(
    /** Text of the edge from the parent (a flat copy, never a slice of a request's prompt). */
    public label: string,
    public parent: Node<T> | undefined,
    /** Characters from the root to the end of this node. */
    public depth: number,
    tenants: Set<Tenant<T>>,
  ) {
    this.tenants = tenants;
  }
}

/**
 * A flat copy of part of a string. V8 makes `slice` a view that keeps the whole source alive (a
 * 100k-character prompt for a 100-character label); a concatenation read back is copied once.
 */
function copyOf(s: string, start: number, end: number): string {
  if (end - start < 13) return s.slice(start, end); // short slices are copies already
  return (s.slice(start, end) + ' ').slice(0, -1);
}

/**
 * How many characters of `label` are at `text[i..]` (the first is known to match). Compared as
 * substrings with `===`: V8 compares the characters of two flat strings in bulk (~0.02 ns a
 * character here), where `startsWith` (~0.4 ns) or a loop of charCodeAt (~1.7 ns) go one by one.
 */
function common(text: string, i: number, label: string): number {
  const len = label.length;
  const avail = text.length - i;
  if (avail >= len && text.substring(i, i + len) === label) return len;
  let lo = 1;
  let hi = Math.min(len, avail);
  if (hi < len && text.substring(i, i + hi) === label.substring(0, hi)) return hi;
  // a mismatch in [lo, hi): bisected, then found one by one
  while (hi - lo > BISECT_DOWN_TO) {
    const mid = (lo + hi) >>> 1;
    if (text.substring(i + lo, i + mid) === label.substring(lo, mid)) lo = mid;
    else hi = mid;
  }
  while (lo < hi && text.charCodeAt(i + lo) === label.charCodeAt(lo)) lo++;
  return lo;
}

export class PrefixIndex<T> {
  private readonly root: Node<T> = new Node<T>('', undefined, 0, new Set());
  /** LRU sentinel: `head.next` is the most recently used node, `head.prev` the least. */
  private readonly head: Node<T> = new Node<T>('', undefined, 0, new Set());
  /** Characters of all labels. */
  chars = 0;
  /** Nodes besides the root. */
  nodes = 0;
  /** Leaves evicted so far (for tests and metrics). */
  evicted = 0;
  private tenantCount = 0;
  /** Bumped by every change of the tree, so that `insert` knows whether the last walk still holds. */
  private version = 0;
  /** The last walk: the text, the nodes fully matched, the node matched in part and how far. */
  private walked: string | undefined = undefined;
  private walkedVersion = -1;
  private readonly path: Node<T>[] = [];
  private partial: Node<T> | undefined = undefined;
  private partialLen = 0;
  private matchedLen = 0;
  private stamp = 0;

  constructor(readonly maxChars = DEFAULT_MAX_CHARS) {
    this.head.next = this.head.prev = this.head;
  }

  /** Characters counted against the limit (labels, plus NODE_CHARS a node). */
  get weight(): number {
    return this.chars + this.nodes * NODE_CHARS;
  }

  addTenant(owner: T): Tenant<T> {
    this.tenantCount++;
    return new Tenant(owner);
  }

  /** Forgets everything the tenant was sent (its backend left): visits only the nodes listing it. */
  removeTenant(t: Tenant<T>): void {
    this.tenantCount--;
    this.version++;
    this.removeBelow(this.root, t);
  }

  /** The longest prefix of `text` any tenant was sent, in characters. */
  match(text: string): number {
    this.walk(text);
    return this.matchedLen;
  }

  /**
   * Matches `text` and sets every tenant's `matched` (for this call's stamp, returned): the
   * characters of its longest prefix that the tenant was sent. Tenants not reached keep an older
   * stamp (their match is 0). Returns the stamp; `matchedChars` is the longest match.
   */
  matchTenants(text: string): number {
    this.walk(text);
    const stamp = ++this.stamp;
    let assigned = 0;
    const all = this.tenantCount;
    const deepest = this.partial ?? this.path[this.path.length - 1];
    for (let node: Node<T> | undefined = deepest; node !== undefined && node !== this.root && assigned < all; node = node.parent) {
      const len = node === this.partial ? this.matchedLen : node.depth;
      for (const t of node.tenants) {
        if (t.stamp === stamp) continue;
        t.stamp = stamp;
        t.matched = len;
        assigned++;
      }
    }
    return stamp;
  }

  get matchedChars(): number {
    return this.matchedLen;
  }

  get currentStamp(): number {
    return this.stamp;
  }

  /** Records that `t` was sent `text`; cheap right after a match of the same string (the walk is reused). */
  insert(text: string, t: Tenant<T>): void {
    if (text.length === 0) return;
    if (this.walked !== text || this.walkedVersion !== this.version) this.walk(text);
    const path = this.path;
    for (let k = 0; k < path.length; k++) this.addTo(path[k]!, t);
    let node = path.length > 0 ? path[path.length - 1]! : this.root;
    const partial = this.partial;
    if (partial !== undefined) {
      node = this.split(partial, this.partialLen);
      this.addTo(node, t);
      path.push(node);
    }
    const i = this.matchedLen;
    if (i < text.length) {
      const leaf = new Node<T>(copyOf(text, i, text.length), node, text.length, new Set([t]));
      t.nodes++;
      (node.children ??= new Map()).set(text.charCodeAt(i), leaf);
      this.chars += text.length - i;
      this.nodes++;
      path.push(leaf);
    }
    // most recent last: walking the path backwards leaves each parent ahead of its children
    for (let k = path.length - 1; k >= 0; k--) this.toFront(path[k]!);
    this.version++;
    this.walked = undefined;
    while (this.weight > this.maxChars && this.head.prev !== this.head) this.evictOldest();
  }

  /** Nodes from the least recently used (tests: every one must be a leaf when it comes up). */
  oldest(): { label: string; leaf: boolean } | undefined {
    const n = this.head.prev!;
    return n === this.head ? undefined : { label: n.label, leaf: n.children === undefined || n.children.size === 0 };
  }

  private walk(text: string): void {
    const path = this.path;
    path.length = 0;
    this.partial = undefined;
    this.partialLen = 0;
    let node = this.root;
    let i = 0;
    const n = text.length;
    while (i < n) {
      const child = node.children?.get(text.charCodeAt(i));
      if (child === undefined) break;
      const k = common(text, i, child.label);
      i += k;
      if (k < child.label.length) {
        this.partial = child;
        this.partialLen = k;
        break;
      }
      path.push(child);
      node = child;
    }
    this.matchedLen = i;
    this.walked = text;
    this.walkedVersion = this.version;
  }

  private addTo(node: Node<T>, t: Tenant<T>): void {
    const before = node.tenants.size;
    node.tenants.add(t);
    if (node.tenants.size !== before) t.nodes++;
  }

  /** Splits `node`'s label after `k` characters: the new upper node takes its place, and its tenants. */
  private split(node: Node<T>, k: number): Node<T> {
    const parent = node.parent!;
    const label = node.label;
    const upper = new Node<T>(copyOf(label, 0, k), parent, parent.depth + k, new Set(node.tenants));
    for (const t of node.tenants) t.nodes++;
    node.label = copyOf(label, k, label.length);
    node.parent = upper;
    upper.children = new Map([[node.label.charCodeAt(0), node]]);
    parent.children!.set(label.charCodeAt(0), upper);
    this.nodes++;
    // just ahead of the node in the LRU list: still behind its own parent
    upper.prev = node.prev;
    upper.next = node;
    node.prev!.next = upper;
    node.prev = upper;
    return upper;
  }

  private toFront(node: Node<T>): void {
    const head = this.head;
    if (head.next === node) return;
    if (node.prev !== undefined) {
      node.prev.next = node.next;
      node.next!.prev = node.prev;
    }
    node.next = head.next;
    node.prev = head;
    head.next!.prev = node;
    head.next = node;
  }

  private unlink(node: Node<T>): void {
    node.prev!.next = node.next;
    node.next!.prev = node.prev;
    node.prev = node.next = undefined;
  }

  /** Drops the least recently used node, a leaf (its parent is always more recent). */
  private evictOldest(): void {
    const node = this.head.prev!;
    this.detachNode(node);
    this.evicted++;
    this.version++;
  }

  /** Takes a leaf (or, from removeBelow, a whole subtree) out of the tree and its counts. */
  private detachNode(node: Node<T>): void {
    node.parent!.children!.delete(node.label.charCodeAt(0));
    const stack = [node];
    while (stack.length > 0) {
      const n = stack.pop()!;
      this.unlink(n);
      this.chars -= n.label.length;
      this.nodes--;
      for (const t of n.tenants) t.nodes--;
      if (n.children !== undefined) for (const c of n.children.values()) stack.push(c);
    }
  }

  private removeBelow(node: Node<T>, t: Tenant<T>): void {
    if (node.children === undefined) return;
    for (const child of [...node.children.values()]) {
      if (!child.tenants.delete(t)) continue;
      t.nodes--;
      if (child.tenants.size === 0) this.detachNode(child);
      else this.removeBelow(child, t);
    }
  }
}
