import { Backend, type BackendSpec, type PoolOptions } from './backend.js';

/**
 * The router's view of its backends, in a stable order (by name) so that routing never depends on
 * hash-map iteration order. Candidate lists per model are rebuilt only when membership changes.
 */
export class BackendSet {
  private readonly byName = new Map<string, Backend>();
  private ordered: Backend[] = [];
  private byModel = new Map<string, Backend[]>();
  private readonly listeners: Array<(all: Backend[]) => void> = [];

  constructor(private readonly poolOptions: PoolOptions) {}

  get all(): readonly Backend[] {
    return this.ordered;
  }

  get size(): number {
    return this.ordered.length;
  }

  get(name: string): Backend | undefined {
    return this.byName.get(name);
  }

  /** Called with the full list whenever membership or a backend's models change. */
  onChange(listener: (all: Backend[]) => void): void {
    this.listeners.push(listener);
  }

  upsert(spec: BackendSpec): Backend {
    const existing = this.byName.get(spec.name);
    if (existing) {
      const modelsBefore = existing.models.join('\n');
      existing.apply(spec);
      if (existing.models.join('\n') !== modelsBefore) this.rebuild();
      return existing;
    }
    const backend = new Backend(spec, this.poolOptions);
    this.byName.set(spec.name, backend);
    this.rebuild();
    return backend;
  }

  remove(name: string): Backend | undefined {
    const backend = this.byName.get(name);
    if (!backend) return undefined;
    this.byName.delete(name);
    this.rebuild();
    void backend.close();
    return backend;
  }

  /** Backends that declare `model` (all backends when no model is known). Not filtered by health. */
  serving(model: string | undefined): readonly Backend[] {
    if (model === undefined) return this.ordered;
    return this.byModel.get(model) ?? [];
  }

  /** Routable candidates for a model, minus already-tried backends. */
  candidates(model: string | undefined, now: number, exclude?: ReadonlySet<Backend>): Backend[] {
    const out: Backend[] = [];
    for (const b of this.serving(model)) if (b.routable(now) && !exclude?.has(b)) out.push(b);
    return out;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.ordered.map((b) => b.close()));
  }

  private rebuild(): void {
    this.ordered = [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const byModel = new Map<string, Backend[]>();
    for (const b of this.ordered) {
      for (const m of b.modelSet) {
        let list = byModel.get(m);
        if (!list) byModel.set(m, (list = []));
        list.push(b);
      }
    }
    this.byModel = byModel;
    for (const l of this.listeners) l(this.ordered);
  }
}
