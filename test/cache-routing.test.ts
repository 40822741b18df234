/**
 * Cache-aware routing end to end: a real router over two mocks on 127.0.0.1, the policy given per
 * model by the config file. A chat session's next turn follows the backend that served the turn
 * before while loads are even, and leaves it once that backend is overloaded (requests held open
 * on it beyond the imbalance guard).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { http, metric, servedBy, startMocks, startService, tempDir, waitFor, writeStaticServices } from './helpers/services.js';

type Message = { role: string; content: string };

describe('cache-aware routing end to end', () => {
  it("sends a session's next turn to the backend of the turn before, unless that backend is overloaded", { timeout: 60_000 }, async () => {
    // slow tokens: a stream asked for many of them stays open (held) until aborted
    const mocks = await startMocks([{ models: 'm', args: ['--itl-ms', '50'] }, { models: 'm', args: ['--itl-ms', '50'] }]);
    const dir = await tempDir();
    const services = await writeStaticServices(
      mocks.map((m, i) => ({ name: `mock-${'ab'[i]}`, port: m.port, models: ['m'] })),
      dir,
    );
    const config = join(dir, 'router.toml');
    await writeFile(config, '[policies.m]\npolicy = "cache-aware"\nbalance_abs_threshold = 2\n');
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--config', config]);
    const held: AbortController[] = [];
    try {
      const chat = async (messages: Message[]) => {
        const res = await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'm', messages, max_tokens: 2 } });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return { by: servedBy(res.body) as string, text: res.body.choices[0].message.content as string };
      };
      // four sessions over four documents: new prefixes spread over the idle pair, each next turn follows its first
      const sessions: Array<{ messages: Message[]; home: string }> = [];
      for (let s = 0; s < 4; s++) {
        const system = { role: 'system', content: `Document ${s}. ${'The quick brown fox jumps over the lazy dog. '.repeat(40)}` };
        const messages = [system, { role: 'user', content: 'what does the fox do?' }];
        const first = await chat(messages);
        messages.push({ role: 'assistant', content: first.text }, { role: 'user', content: 'and the dog?' });
        sessions.push({ messages, home: first.by });
      }
      assert.deepEqual(new Set(sessions.map((s) => s.home)), new Set(['mock-a', 'mock-b']), 'new sessions spread over both backends');
      for (const s of sessions) {
        const next = await chat(s.messages);
        assert.equal(next.by, s.home, 'the second turn goes where the first went');
        s.messages.push({ role: 'assistant', content: next.text }, { role: 'user', content: 'why?' });
      }

      // overload session 0's backend: streams extending its prompt go there (hits) and stay open
      const { messages, home } = sessions[0]!;
      const other = home === 'mock-a' ? 'mock-b' : 'mock-a';
      for (let i = 0; i < 3; i++) {
        const controller = new AbortController();
        held.push(controller);
        const res = await fetch(`${router.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm', messages: [...messages, { role: 'user', content: `held ${i}` }], stream: true, max_tokens: 100_000 }),
          signal: controller.signal,
        });
        assert.equal(res.status, 200);
      }
      await waitFor(async () => (await metric(router.url, 'infini_router_upstream_in_flight', `backend="${home}"`)) === 3, `3 requests in flight on ${home}`);
      assert.equal(await metric(router.url, 'infini_router_upstream_in_flight', `backend="${other}"`), 0);
      // 3 - 0 > 2 and 3 > 1.5 * 0: unbalanced, the third turn goes to the least loaded
      assert.equal((await chat(messages)).by, other, 'an overloaded backend loses its session');
      assert.equal(await metric(router.url, 'infini_router_policy_decisions_total', 'branch="imbalance"'), 1);
      assert.ok((await metric(router.url, 'infini_router_policy_decisions_total', 'policy="cache-aware",branch="hit"')) >= 7);
    } finally {
      for (const c of held) c.abort();
      await router.stop();
      await Promise.all(mocks.map((m) => m.stop()));
    }
  });

  it("cache-load polls the engines' /metrics when asked to, and counts the scrapes", async () => {
    const mocks = await startMocks([{ models: 'm' }]);
    const services = await writeStaticServices([{ name: 'solo', port: mocks[0]!.port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--policy', 'cache-load', '--engine-metrics-interval', '0.1']);
    try {
      // several intervals: polling keeps going
      await waitFor(async () => (await metric(router.url, 'infini_router_engine_scrapes_total', 'result="ok"')) >= 5, 'five scrapes of the engine gauges');
      assert.equal(await metric(router.url, 'infini_router_engine_scrapes_total', 'result="failed"'), 0);
      const res = await http('POST', `${router.url}/v1/completions`, { body: { model: 'm', prompt: 'hello', max_tokens: 2 } });
      assert.equal(res.status, 200);
      assert.equal(await metric(router.url, 'infini_router_policy_decisions_total', 'policy="cache-load"'), 1);
    } finally {
      await router.stop();
      await Promise.all(mocks.map((m) => m.stop()));
    }
  });
});
