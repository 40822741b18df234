import type { Backend } from '../backend.js';
import type { Group, Member, ModelPool } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import { NameRules } from '../name-rules.js';
import type { Policy } from './policy.js';

/** A rule of the config file's [policies] section: models by exact name or glob, and their policy. */
export interface ModelRule {
  pattern: string;
  policy: Policy;
}

/** Answers to wantsPrompt kept for this many model names at most (names come from requests). */
const ANSWERS_KEPT = 4096;

/**
 * A policy per model: an exact name first, else the first glob that matches (in the file's
 * order), else the default (`--policy`). A model's pool keeps the policy it resolved to, so a
 * request costs one field read more than a single policy; hooks go to the member's model's policy.
 * Built only when the config file has rules: without them the router runs the default alone.
 */
export class PerModelPolicy implements Policy {
  readonly name: string;
  private readonly rules: NameRules<Policy>;
  private readonly all: Policy[];
  private readonly prompts = new Map<string | undefined, boolean>();
  loadChanged?: (m: Member) => void;
  wantsPrompt?: (model: string | undefined) => boolean;
  usesEngineSignals?: (model: string | undefined) => boolean;

  constructor(
    private readonly fallback: Policy,
    rules: readonly ModelRule[],
  ) {
    this.name = fallback.name;
    this.rules = new NameRules(rules.map((r) => [r.pattern, r.policy] as const));
    this.all = [fallback, ...rules.map((r) => r.policy)];
    // hooks only when some policy has them: the others pay no call
    if (this.all.some((p) => p.loadChanged)) this.loadChanged = (m) => this.of(m.pool).loadChanged?.(m);
    if (this.all.some((p) => p.wantsPrompt)) this.wantsPrompt = (model) => this.promptWanted(model);
    if (this.all.some((p) => p.usesEngineSignals)) this.usesEngineSignals = (model) => this.resolve(model).usesEngineSignals?.(model) ?? false;
  }

  /** The policy of a model. */
  resolve(model: string | undefined): Policy {
    return (model === undefined ? undefined : this.rules.get(model)) ?? this.fallback;
  }

  private of(pool: ModelPool): Policy {
    if (pool.policyOwner !== this) {
      pool.policy = this.resolve(pool.model);
      pool.policyOwner = this;
    }
    return pool.policy!;
  }

  private promptWanted(model: string | undefined): boolean {
    let yes = this.prompts.get(model);
    if (yes === undefined) {
      yes = this.resolve(model).wantsPrompt?.(model) ?? false;
      if (this.prompts.size >= ANSWERS_KEPT) this.prompts.clear();
      this.prompts.set(model, yes);
    }
    return yes;
  }

  select(group: Group, info: RequestInfo): Backend | undefined {
    return this.of(group.pool).select(group, info);
  }

  attach(m: Member): void {
    this.of(m.pool).attach?.(m);
  }

  detach(m: Member): void {
    this.of(m.pool).detach?.(m);
  }

  drop(m: Member): void {
    this.of(m.pool).drop?.(m);
  }

  /** Every policy's decisions, summed by policy and branch (several rules may use one policy). */
  decisions(report: (policy: string, branch: string, count: number) => void): void {
    const sums = new Map<string, { policy: string; branch: string; count: number }>();
    for (const p of new Set(this.all)) {
      p.decisions?.((policy, branch, count) => {
        const key = `${policy}\0${branch}`;
        const s = sums.get(key);
        if (s) s.count += count;
        else sums.set(key, { policy, branch, count });
      });
    }
    for (const s of sums.values()) report(s.policy, s.branch, s.count);
  }
}
