/**
 * node:test's describe/it/hooks with a timeout on every test and hook, so that a hang fails that
 * test within seconds and the rest of the file still runs. (On Node 20, `--test-timeout` bounds a
 * whole file, not each test in it; npm test sets it too, as a backstop.) A test that runs longer
 * on purpose (a soak) passes its own `{ timeout }`.
 */
import * as nodeTest from 'node:test';

export const TEST_TIMEOUT_MS = 30_000;

type TestFn = nodeTest.TestFn;
type HookFn = Parameters<typeof nodeTest.before>[0];

export function it(name: string, fn: TestFn): Promise<void>;
export function it(name: string, options: nodeTest.TestOptions, fn: TestFn): Promise<void>;
export function it(name: string, a: TestFn | nodeTest.TestOptions, b?: TestFn): Promise<void> {
  const [options, fn] = typeof a === 'function' ? [{}, a] : [a, b!];
  return nodeTest.it(name, { timeout: TEST_TIMEOUT_MS, ...options }, fn);
}

export const test = it;
export const describe = nodeTest.describe;

const hook =
  (h: typeof nodeTest.before) =>
  (fn: HookFn, options: nodeTest.HookOptions = {}): void =>
    h(fn, { timeout: TEST_TIMEOUT_MS, ...options });

export const before = hook(nodeTest.before);
export const after = hook(nodeTest.after);
export const beforeEach = hook(nodeTest.beforeEach);
export const afterEach = hook(nodeTest.afterEach);
