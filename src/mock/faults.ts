import type { MockOptions } from './options.js';
import { mulberry32 } from './text-generator.js';

/** What to do wrong with one request. */
export interface FaultPlan {
  errorStatus?: number;
  hang: boolean;
  dropAfterChunks?: number;
  crash: boolean;
}

const NO_FAULT: FaultPlan = { hang: false, crash: false };

/**
 * Decides the faults of each request: per request by header (`x-mock-error: 503`,
 * `x-mock-hang: 1`, `x-mock-drop-after: 3`, `x-mock-crash: 1`), else by the configured rates drawn
 * from a PRNG seeded by `--seed`, so a run is reproducible.
 */
export class FaultInjector {
  private readonly rand: () => number;
  private requests = 0;
  private readonly anyConfigured: boolean;

  constructor(
    private readonly opts: MockOptions['faults'],
    seed: number,
  ) {
    this.rand = mulberry32(seed ^ 0x5f3759df);
    this.anyConfigured = opts.errorRate > 0 || opts.hangRate > 0 || opts.dropAfterChunks !== undefined || opts.crashAfterRequests !== undefined;
  }

  plan(headers: Readonly<Record<string, string | undefined>>): FaultPlan {
    this.requests++;
    const hError = headers['x-mock-error'];
    const hHang = headers['x-mock-hang'];
    const hDrop = headers['x-mock-drop-after'];
    const hCrash = headers['x-mock-crash'];
    if (!this.anyConfigured && hError === undefined && hHang === undefined && hDrop === undefined && hCrash === undefined) return NO_FAULT;
    const plan: FaultPlan = { hang: false, crash: false };
    const status = Number(hError);
    if (hError !== undefined && Number.isInteger(status) && status >= 400 && status <= 599) plan.errorStatus = status;
    else if (this.opts.errorRate > 0 && this.rand() < this.opts.errorRate) plan.errorStatus = this.opts.errorStatus;
    plan.hang = hHang === '1' || hHang === 'true' || (this.opts.hangRate > 0 && this.rand() < this.opts.hangRate);
    const drop = Number(hDrop);
    if (hDrop !== undefined && Number.isInteger(drop) && drop >= 0) plan.dropAfterChunks = drop;
    else plan.dropAfterChunks = this.opts.dropAfterChunks;
    plan.crash = hCrash === '1' || hCrash === 'true' || (this.opts.crashAfterRequests !== undefined && this.requests >= this.opts.crashAfterRequests);
    return plan;
  }
}
