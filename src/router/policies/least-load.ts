import { IndexedHeap } from '../indexed-heap.js';
import type { Backend } from '../backend.js';
import type { Group, Member } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import type { Policy } from './policy.js';

/** In-flight requests per unit of weight: the load a policy compares. */
export function load(b: Backend): number {
  return b.inFlight / Math.max(b.weight, 1e-9);
}

function lighter(a: Member, b: Member): boolean {
  const la = load(a.backend);
  const lb = load(b.backend);
  if (la !== lb) return la < lb;
  if (a.lastPick !== b.lastPick) return a.lastPick < b.lastPick;
  return a.backend.name < b.backend.name;
}

const getPos = (m: Member): number => m.llPos;
const setPos = (m: Member, i: number): void => {
  m.llPos = i;
};

/** The routable members of one class sub-pool, least loaded on top (kept as loads change). */
export class LeastLoadState {
  readonly heap = new IndexedHeap<Member>(lighter, getPos, setPos);
}

/**
 * Fewest in-flight requests (per unit of weight); ties go to the candidate chosen longest ago, so
 * idle fleets still spread load. A heap per class sub-pool, updated when a load changes:
 * O(log K) per request.
 */
export class LeastLoad implements Policy {
  readonly name = 'least-load';
  private tick = 0;

  select(group: Group, _info: RequestInfo): Backend | undefined {
    const list = group.list;
    if (list.length <= 1) return list[0];
    let best: Member | undefined;
    for (const cls of group.classes) {
      const top = cls.ll?.heap.top();
      if (top && (!best || lighter(top, best))) best = top;
    }
    best!.lastPick = ++this.tick;
    best!.cls.ll!.heap.update(best!);
    return best!.backend;
  }

  attach(m: Member): void {
    (m.cls.ll ??= new LeastLoadState()).heap.push(m);
  }

  detach(m: Member): void {
    m.cls.ll!.heap.remove(m);
  }

  loadChanged(m: Member): void {
    m.cls.ll!.heap.update(m);
  }
}
