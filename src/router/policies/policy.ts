import type { Backend } from '../backend.js';
import type { RequestInfo } from '../request-info.js';

/**
 * A load-balancing policy: picks one backend among routable candidates that serve the request's
 * model. Policies may keep state (counters, trees); `onBackendsChanged` tells them about membership.
 * Decorators (size classes, session affinity) wrap another policy rather than adding flags to it.
 */
export interface Policy {
  readonly name: string;
  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined;
  onBackendsChanged?(all: readonly Backend[]): void;
}
