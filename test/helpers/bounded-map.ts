/**
 * Runs `fn` over `items` with one worker per resource (a lane, a slot), results in item order.
 * Stops taking new items once `deadline` (ms since epoch) has passed and returns the finished
 * prefix, so that a generator bounded in time still reports a well-defined set of cases.
 */
export async function boundedMap<W, T, R>(workers: readonly W[], items: readonly T[], fn: (worker: W, item: T) => Promise<R>, deadline = Infinity): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const run = async (worker: W): Promise<void> => {
    while (next < items.length && Date.now() < deadline) {
      const i = next++;
      results[i] = await fn(worker, items[i]!);
    }
  };
  await Promise.all(workers.map(run));
  // a deadline may leave holes after the first unfinished index: keep the finished prefix only
  let done = 0;
  while (done < results.length && done in results) done++;
  return results.slice(0, done);
}
