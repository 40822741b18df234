import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { NODE_CHARS, PrefixIndex, type Tenant } from '../src/router/prefix-index.js';

/** Each tenant's match of `text` (0 for tenants not reached). */
function matches(index: PrefixIndex<string>, tenants: Tenant<string>[], text: string): Record<string, number> {
  const stamp = index.matchTenants(text);
  return Object.fromEntries(tenants.map((t) => [t.owner, t.stamp === stamp ? t.matched : 0]));
}

describe('prefix index', () => {
  it('matches the longest prefix each tenant was sent, splitting labels where texts diverge', () => {
    const index = new PrefixIndex<string>();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => index.addTenant(n));
    index.insert('system: be brief. user: hello', a!);
    index.insert('system: be brief. user: goodbye', b!);
    index.insert('other', c!);
    assert.equal(index.match('system: be brief. user: hello there'), 29);
    assert.deepEqual(matches(index, [a!, b!, c!], 'system: be brief. user: hello there'), { a: 29, b: 24, c: 0 });
    assert.deepEqual(matches(index, [a!, b!, c!], 'system: be brief. user: goodbye'), { a: 24, b: 31, c: 0 });
    // a text ending inside a label
    assert.deepEqual(matches(index, [a!, b!, c!], 'system: be'), { a: 10, b: 10, c: 0 });
    assert.deepEqual(matches(index, [a!, b!, c!], 'oth'), { a: 0, b: 0, c: 3 });
    assert.equal(index.match('nothing alike'), 0);
    // the shared part is stored once
    assert.equal(index.chars, 'system: be brief. user: '.length + 'hello'.length + 'goodbye'.length + 'other'.length);
    assert.equal(index.nodes, 4);
  });

  it('a second turn extends the first: the tenant that was sent turn one matches all of it', () => {
    const index = new PrefixIndex<string>();
    const a = index.addTenant('a');
    const b = index.addTenant('b');
    const turn1 = 'S'.repeat(5000) + 'question one';
    const turn2 = turn1 + 'answer one' + 'question two';
    index.insert(turn1, a);
    index.insert('S'.repeat(5000) + 'another question', b);
    assert.deepEqual(matches(index, [a, b], turn2), { a: turn1.length, b: 5000 });
    index.insert(turn2, a);
    assert.deepEqual(matches(index, [a, b], turn2), { a: turn2.length, b: 5000 });
  });

  it('finds mismatches far inside long labels (compared in pieces)', () => {
    const index = new PrefixIndex<string>();
    const a = index.addTenant('a');
    const base = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    index.insert(base, a);
    for (const at of [1, 255, 256, 257, 1000, 2999]) {
      const text = base.slice(0, at) + '#' + base.slice(at + 1);
      assert.equal(index.match(text), at, `mismatch at ${at}`);
    }
    assert.equal(index.match(base + 'more'), 3000);
  });

  it('stays under its limit, evicting least recently used leaves only', () => {
    const limit = 20_000;
    const index = new PrefixIndex<string>(limit);
    const t = index.addTenant('a');
    const shared = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) {
      index.insert(`${shared}${i}:${'y'.repeat(500)}`, t);
      assert.ok(index.weight <= limit, `weight ${index.weight} over ${limit}`);
      const oldest = index.oldest();
      assert.ok(oldest?.leaf, 'the least recently used node is a leaf');
      // the shared prefix, used by every insert, is never the one evicted
      assert.equal(index.match(shared), 1000);
    }
    assert.ok(index.evicted > 0);
    // the most recent are kept, the oldest are gone
    assert.equal(index.match(`${shared}199:${'y'.repeat(500)}`), 1000 + 4 + 500);
    assert.ok(index.match(`${shared}0:${'y'.repeat(500)}`) < 1000 + 2);
    assert.equal(index.weight, index.chars + index.nodes * NODE_CHARS);
  });

  it('touching a prefix keeps it: eviction follows use, not insertion order', () => {
    const index = new PrefixIndex<string>(3 * (1000 + NODE_CHARS));
    const t = index.addTenant('a');
    const [p, q, r] = ['p', 'q', 'r'].map((c) => c.repeat(1000));
    index.insert(p!, t);
    index.insert(q!, t);
    index.insert(p!, t); // p used again
    index.insert(r!, t);
    index.insert('s'.repeat(1000), t); // one must go: q, the least recently used
    assert.equal(index.match(q!), 0);
    assert.equal(index.match(p!), 1000);
    assert.equal(index.match(r!), 1000);
  });

  it('removing a tenant removes its entries and frees text only it had', () => {
    const index = new PrefixIndex<string>();
    const a = index.addTenant('a');
    const b = index.addTenant('b');
    index.insert('shared prefix / only a', a);
    index.insert('shared prefix / only b', b);
    index.insert('a alone', a);
    const before = index.chars;
    index.removeTenant(a);
    assert.deepEqual(matches(index, [a, b], 'shared prefix / only a'), { a: 0, b: 21 });
    assert.equal(index.match('a alone'), 0);
    assert.equal(index.chars, before - 'a alone'.length - 'a'.length);
    assert.equal(a.nodes, 0);
    index.removeTenant(b);
    assert.equal(index.chars, 0);
    assert.equal(index.nodes, 0);
    assert.equal(index.oldest(), undefined);
  });

  it('an insert right after a match of the same text reuses the walk, and a stale walk is redone', () => {
    const index = new PrefixIndex<string>();
    const a = index.addTenant('a');
    const b = index.addTenant('b');
    index.insert('abcdef', a);
    index.match('abcxyz');
    index.insert('abzzzz', b); // another text: walked again
    index.insert('abcxyz', b); // the match above is stale (the tree changed): walked again
    assert.deepEqual(matches(index, [a, b], 'abcxyz'), { a: 3, b: 6 });
    assert.deepEqual(matches(index, [a, b], 'abzzzz'), { a: 2, b: 6 });
  });
});
