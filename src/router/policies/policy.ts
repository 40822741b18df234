import type { Backend } from '../backend.js';
import type { Group, Member } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';

/**
 * A load-balancing policy: picks one backend of a group of routable candidates that serve the
 * request's model (a model's pool or one of its size-class sub-pools, see backend-pool.ts).
 * A policy that keeps per-candidate state (counters, heaps) maintains it incrementally through
 * `attach`/`detach` (a member enters or leaves the routable candidates) and `loadChanged` (its
 * in-flight count changed), so that choosing never has to look at every candidate.
 * Decorators (size classes, session affinity) wrap another policy rather than adding flags to it.
 */
export interface Policy {
  readonly name: string;
  select(group: Group, info: RequestInfo): Backend | undefined;
  attach?(m: Member): void;
  detach?(m: Member): void;
  loadChanged?(m: Member): void;
  /** The member left its model's pool for good (its backend left, or stopped serving the model): forget it. */
  drop?(m: Member): void;
  /** Whether requests for `model` need their prompt text (RequestInfo.prompt): only cache policies say yes. */
  wantsPrompt?(model: string | undefined): boolean;
  /** Whether requests for `model` are scored on the engines' own gauges (then they are worth polling). */
  usesEngineSignals?(model: string | undefined): boolean;
  /** Reports its decisions so far by branch, and those of the policy it wraps (metrics). */
  decisions?(report: (policy: string, branch: string, count: number) => void): void;
}

/** Copies `inner`'s incremental hooks onto a decorator (absent ones stay absent: no calls for nothing). */
export function forwardHooks(decorator: Policy, inner: Policy): void {
  const d = decorator as { -readonly [K in keyof Policy]: Policy[K] };
  if (inner.attach) d.attach = (m) => inner.attach!(m);
  if (inner.detach) d.detach = (m) => inner.detach!(m);
  if (inner.loadChanged) d.loadChanged = (m) => inner.loadChanged!(m);
  if (inner.drop) d.drop = (m) => inner.drop!(m);
  if (inner.wantsPrompt) d.wantsPrompt = (model) => inner.wantsPrompt!(model);
  if (inner.usesEngineSignals) d.usesEngineSignals = (model) => inner.usesEngineSignals!(model);
}

/** Counters of a decorator's branches, reported with the wrapped policy's. */
export class BranchCounts<B extends string> {
  private readonly counts: Float64Array;

  constructor(
    private readonly policy: string,
    private readonly branches: readonly B[],
  ) {
    this.counts = new Float64Array(branches.length);
  }

  /** Index of a branch, resolved once by the decorator. */
  index(branch: B): number {
    return this.branches.indexOf(branch);
  }

  inc(i: number): void {
    this.counts[i]!++;
  }

  report(report: (policy: string, branch: string, count: number) => void, inner?: Policy): void {
    for (let i = 0; i < this.branches.length; i++) report(this.policy, this.branches[i]!, this.counts[i]!);
    inner?.decisions?.(report);
  }
}
