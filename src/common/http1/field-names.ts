/**
 * Field names as sent and lower-cased, in a direct-mapped cache by a hash the parsers take while
 * they scan a name's bytes. Peers send the same dozen names in the same spelling on every message:
 * a hit costs one comparison of bytes and makes no string at all, where a fresh name cost a slice,
 * a toLowerCase() here and there and a string-table lookup at every `headers[lower]` (V8
 * internalizes property keys). Bounded by construction: a name only ever replaces the one in its
 * slot, so names a peer makes up cost it misses, never memory.
 */

export const NAME_SLOTS = 1024;
/** Longer names are not kept (a slot holds its bytes twice). */
const MAX_KEPT = 128;

/** The hash of a name so far and its next byte; parsers inline the same formula. */
export const nextNameHash = (hash: number, byte: number): number => (Math.imul(hash, 31) + byte) | 0;

export class FieldNames {
  private readonly sent = new Array<string | undefined>(NAME_SLOTS).fill(undefined);
  private readonly sentBytes = new Array<Uint8Array | undefined>(NAME_SLOTS).fill(undefined);
  private readonly lowers = new Array<string | undefined>(NAME_SLOTS).fill(undefined);
  /** The lower-cased name of the last `name()` call. */
  lower = '';

  /**
   * The name in bytes[from, to), hashed by nextNameHash over those bytes, as sent; its lower-case
   * form is left in `lower`. `text` holds the same bytes from `textBase` (to cut a new name from).
   */
  name(bytes: Uint8Array, from: number, to: number, hash: number, text: string, textBase: number): string {
    const slot = hash & (NAME_SLOTS - 1);
    const known = this.sentBytes[slot];
    if (known !== undefined && sameBytes(bytes, from, to, known)) {
      this.lower = this.lowers[slot]!;
      return this.sent[slot]!;
    }
    const name = text.slice(from - textBase, to - textBase);
    const lower = internalized(name.toLowerCase());
    this.lower = lower;
    if (to - from <= MAX_KEPT) {
      this.sent[slot] = name;
      // a copy: `bytes` is a read buffer that the next read overwrites (Buffer's slice() is a view)
      this.sentBytes[slot] = Uint8Array.prototype.slice.call(bytes, from, to);
      this.lowers[slot] = lower;
    }
    return name;
  }
}

/** Whether bytes[from, to) are `name`. */
function sameBytes(bytes: Uint8Array, from: number, to: number, name: Uint8Array): boolean {
  if (to - from !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (bytes[from + i] !== name[i]) return false;
  return true;
}

/** The string as V8 keeps property keys (internalized): later lookups and `===` compare pointers. */
function internalized(s: string): string {
  return Object.keys({ [s]: 0 })[0]!;
}
