import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from './helpers/test.js';
import OpenAI from 'openai';
import { http, metric, readSse, spawnCli, startService, waitFor, type RunningService, startRegistry } from './helpers/services.js';
import { ChunkFormatter, completionBody, usage } from '../src/mock/openai-response.js';

const chatBody = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'model-a', messages: [{ role: 'user', content }], ...extra });

describe('mock: OpenAI API shapes', () => {
  let mock: RunningService;
  before(async () => {
    mock = await startService(['mock', '--port', '0', '--models', 'model-a, model-b', '--name', 'mock-shapes']);
  });
  after(() => mock.stop());

  it('lists models on /v1/models and /models, and answers /health', async () => {
    for (const path of ['/v1/models', '/models']) {
      const r = await http('GET', `${mock.url}${path}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.object, 'list');
      assert.deepEqual(r.body.data.map((m: any) => m.id), ['model-a', 'model-b']);
      for (const m of r.body.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.created, 'number');
        assert.equal(typeof m.owned_by, 'string');
      }
    }
    const h = await http('GET', `${mock.url}/health`);
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'healthy');
    assert.equal(h.body.service, 'mock-shapes');
    assert.equal(h.body.port, mock.port);
  });

  it('answers chat completions with usage, deterministically, on both paths', async () => {
    const a = await http('POST', `${mock.url}/v1/chat/completions`, { body: chatBody('Hello, world!') });
    assert.equal(a.status, 200);
    assert.equal(a.body.object, 'chat.completion');
    assert.equal(a.body.model, 'model-a');
    assert.match(a.body.id, /^chatcmpl-/);
    const choice = a.body.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.match(choice.message.content, /^Hello from mock-shapes \(model: model-a\)\./);
    assert.equal(choice.finish_reason, 'stop');
    // "user: Hello, world!" is 6 tokens: user, :, Hello, ",", world, !
    assert.deepEqual(a.body.usage, { prompt_tokens: 6, completion_tokens: 16, total_tokens: 22 });
    const b = await http('POST', `${mock.url}/chat/completions`, { body: chatBody('Hello, world!'), headers: { 'content-type': 'text/plain' } });
    assert.equal(b.body.choices[0].message.content, choice.message.content);
    const c = await http('POST', `${mock.url}/v1/chat/completions`, { body: chatBody('Something else entirely') });
    assert.notEqual(c.body.choices[0].message.content, choice.message.content);
  });

  it('respects max_tokens and max_completion_tokens', async () => {
    const r = await http('POST', `${mock.url}/v1/chat/completions`, { body: chatBody('hi', { max_tokens: 3 }) });
    assert.equal(r.body.usage.completion_tokens, 3);
    assert.equal(r.body.choices[0].message.content, 'Hello from mock');
    assert.equal(r.body.choices[0].finish_reason, 'length');
    const r2 = await http('POST', `${mock.url}/v1/chat/completions`, { body: chatBody('hi', { max_completion_tokens: 5 }) });
    assert.equal(r2.body.usage.completion_tokens, 5);
  });

  it('accepts content-part arrays', async () => {
    const r = await http('POST', `${mock.url}/v1/chat/completions`, {
      body: { model: 'model-b', messages: [{ role: 'user', content: [{ type: 'text', text: 'one two' }, { type: 'image_url', image_url: { url: 'x' } }] }] },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.usage.prompt_tokens, 4);
  });

  it('answers completions for text, batches and token-id prompts', async () => {
    const r = await http('POST', `${mock.url}/v1/completions`, { body: { model: 'model-b', prompt: 'Hello, world!', max_tokens: 4 } });
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'text_completion');
    assert.equal(r.body.choices[0].text, 'Hello from mock-');
    assert.deepEqual(r.body.usage, { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 });
    const batch = await http('POST', `${mock.url}/completions`, { body: { model: 'model-b', prompt: ['a', 'b c'], max_tokens: 2 } });
    assert.deepEqual(batch.body.choices.map((c: any) => c.index), [0, 1]);
    assert.equal(batch.body.usage.prompt_tokens, 3);
    const ids = await http('POST', `${mock.url}/v1/completions`, { body: { model: 'model-b', prompt: [101, 2023, 2003] } });
    assert.equal(ids.body.usage.prompt_tokens, 3);
    const idBatch = await http('POST', `${mock.url}/v1/completions`, { body: { model: 'model-b', prompt: [[1, 2], [3]] } });
    assert.equal(idBatch.body.choices.length, 2);
  });

  it('answers embeddings as floats or base64, deterministically', async () => {
    const r = await http('POST', `${mock.url}/v1/embeddings`, { body: { model: 'model-a', input: ['alpha', 'beta gamma'] } });
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'list');
    assert.equal(r.body.data.length, 2);
    assert.equal(r.body.data[0].object, 'embedding');
    assert.equal(r.body.data[0].embedding.length, 64);
    assert.equal(r.body.usage.prompt_tokens, 3);
    const norm = Math.hypot(...r.body.data[0].embedding);
    assert.ok(Math.abs(norm - 1) < 1e-9);
    const b64 = await http('POST', `${mock.url}/embeddings`, { body: { model: 'model-a', input: 'alpha', encoding_format: 'base64', dimensions: 8 } });
    const buf = Buffer.from(b64.body.data[0].embedding, 'base64');
    assert.equal(buf.length, 8 * 4);
    const again = await http('POST', `${mock.url}/v1/embeddings`, { body: { model: 'model-a', input: 'alpha', dimensions: 8 } });
    const floats = new Float32Array(buf.buffer, buf.byteOffset, 8);
    again.body.data[0].embedding.forEach((x: number, i: number) => assert.ok(Math.abs(x - floats[i]!) < 1e-6));
  });

  it('streams chat in the OpenAI SSE format with a finish chunk, usage and [DONE]', async () => {
    const { events, done } = await readSse(`${mock.url}/v1/chat/completions`, chatBody('hi', { stream: true, max_tokens: 4, stream_options: { include_usage: true } }));
    assert.ok(done);
    assert.equal(events[0].object, 'chat.completion.chunk');
    assert.deepEqual(events[0].choices[0].delta, { role: 'assistant', content: '' });
    const content = events.slice(1, 5).map((e) => e.choices[0].delta.content).join('');
    assert.equal(content, 'Hello from mock-');
    const finish = events[5];
    assert.equal(finish.choices[0].finish_reason, 'length');
    assert.deepEqual(finish.choices[0].delta, {});
    assert.equal(finish.usage, null);
    const last = events[6];
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    assert.equal(events.length, 7);
    assert.ok(events.every((e) => e.id === events[0].id));
  });

  it('streams completions without usage unless asked', async () => {
    const { events, done } = await readSse(`${mock.url}/v1/completions`, { model: 'model-b', prompt: 'x', stream: true, max_tokens: 2 });
    assert.ok(done);
    assert.equal(events.length, 3);
    assert.equal(events[0].choices[0].text, 'Hello');
    assert.equal(events[2].choices[0].finish_reason, 'length');
    assert.ok(events.every((e) => !('usage' in e)));
  });

  it('uses OpenAI error shapes: unknown model 404 first, bad input 400', async () => {
    const unknown = await http('POST', `${mock.url}/v1/chat/completions`, { body: { model: 'nope', messages: 'not even valid' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'model_not_found');
    assert.match(unknown.body.error.message, /nope/);
    assert.equal(typeof unknown.body.error.type, 'string');
    const cases: Array<[string, unknown, RegExp]> = [
      ['/v1/chat/completions', '{bad json', /invalid JSON/],
      ['/v1/chat/completions', [1], /JSON object/],
      ['/v1/chat/completions', { messages: [] }, /'model'/],
      ['/v1/chat/completions', { model: 3, messages: [] }, /'model'/],
      ['/v1/chat/completions', { model: 'model-a' }, /'messages'/],
      ['/v1/chat/completions', { model: 'model-a', messages: [] }, /'messages'/],
      ['/v1/chat/completions', { model: 'model-a', messages: ['x'] }, /messages\[0\]/],
      ['/v1/chat/completions', { model: 'model-a', messages: [{ content: 'x' }] }, /role/],
      ['/v1/chat/completions', { ...chatBody('x'), max_tokens: 'ten' }, /max_tokens/],
      ['/v1/chat/completions', { ...chatBody('x'), max_tokens: 0 }, /max_tokens/],
      ['/v1/chat/completions', { ...chatBody('x'), stream: 'yes' }, /stream/],
      ['/v1/completions', { model: 'model-a' }, /'prompt'/],
      ['/v1/completions', { model: 'model-a', prompt: { a: 1 } }, /'prompt'/],
      ['/v1/embeddings', { model: 'model-a' }, /'input'/],
      ['/v1/embeddings', { model: 'model-a', input: 'x', encoding_format: 'hex' }, /encoding_format/],
    ];
    for (const [path, body, pattern] of cases) {
      const r = await http('POST', `${mock.url}${path}`, { body: typeof body === 'string' ? body : JSON.stringify(body) });
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.match(r.body.error.message, pattern);
    }
    assert.equal((await http('GET', `${mock.url}/v1/nothing`)).status, 404);
    assert.equal((await http('GET', `${mock.url}/v1/chat/completions`)).status, 405);
    assert.ok(mock.alive);
  });

  it('works with the official openai client (chat, stream, completions, embeddings)', async () => {
    const client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['model-a', 'model-b']);
    const chat = await client.chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'hello' }], max_tokens: 6 });
    assert.equal(chat.choices[0]!.message.content, 'Hello from mock-shapes (');
    const stream = await client.chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'hello' }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null | undefined;
    let streamedUsage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) streamedUsage = chunk.usage;
    }
    assert.equal(text, chat.choices[0]!.message.content);
    assert.equal(finish, 'length');
    assert.deepEqual(streamedUsage, chat.usage);
    const completion = await client.completions.create({ model: 'model-b', prompt: 'Say something', max_tokens: 2 });
    assert.equal(completion.choices[0]!.text, 'Hello from');
    const emb = await client.embeddings.create({ model: 'model-a', input: ['alpha'] });
    assert.equal(emb.data[0]!.embedding.length, 64);
    await assert.rejects(client.chat.completions.create({ model: 'missing', messages: [{ role: 'user', content: 'x' }] }), (err: any) => err.status === 404);
  });
});

describe('mock: engine behaviour', () => {
  it('charges prefill per uncached token: a long prompt takes its prefill time, a short one little', async () => {
    const mock = await startService(['mock', '--port', '0', '--models', 'm', '--prefill-ms-per-token', '2', '--cache-blocks', '0']);
    try {
      const timed = async (prompt: string) => {
        const t0 = performance.now();
        const r = await http('POST', `${mock.url}/v1/completions`, { body: { model: 'm', prompt, max_tokens: 1 } });
        assert.equal(r.status, 200);
        return performance.now() - t0;
      };
      const short = await timed('w');
      const long = await timed('w '.repeat(300));
      // a lower bound only: the engine cannot be faster than its model (300 x 2 ms, less the
      // few ms a step may start behind the clock)
      assert.ok(long >= 590, `300 uncached tokens take at least 600 ms (took ${long})`);
      assert.ok(short < long, `short ${short} ms, long ${long} ms`);
    } finally {
      await mock.stop();
    }
  });

  it('caches prompt prefixes in chained blocks, skips their prefill and evicts LRU', async () => {
    const mock = await startService(['mock', '--port', '0', '--models', 'm', '--block-size', '4', '--cache-blocks', '8', '--prefill-ms-per-token', '3']);
    try {
      const words = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(' ');
      const send = (prompt: string) => http('POST', `${mock.url}/v1/completions`, { body: { model: 'm', prompt, max_tokens: 1 } });
      await send(words('a', 16)); // 4 blocks, kept as prefix cache once the request ends
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_queries_total'), 16);
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_hits_total'), 0);
      assert.equal(await metric(mock.url, 'mock:prefix_cache_blocks'), 4);
      assert.equal(await metric(mock.url, 'vllm:kv_cache_usage_perc'), 0, 'no request holds blocks');
      // hits are whole blocks and stop one token short of the prompt's end: 3 blocks of 4
      await send(words('a', 16));
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_hits_total'), 12);
      // shares the first 8 tokens (2 blocks); the chain breaks at block 3 (6 blocks cached now)
      await send(`${words('a', 8)} ${words('z', 8)}`);
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_hits_total'), 20);
      assert.equal(await metric(mock.url, 'mock:prefix_cache_blocks'), 6);
      // 8 more blocks: the cache keeps 8, the least recently used (the a- and z-blocks) go
      await send(words('b', 16));
      await send(words('c', 16));
      assert.equal(await metric(mock.url, 'mock:prefix_cache_blocks'), 8);
      await send(words('b', 16));
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_hits_total'), 32, 'the b-chain is still cached');
      await send(words('a', 16));
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_hits_total'), 32, 'the a-chain was evicted');
      assert.equal(await metric(mock.url, 'vllm:prefix_cache_queries_total'), 16 * 7);
    } finally {
      await mock.stop();
    }
  });

  it('queues beyond max concurrency and cancels work when the client disconnects', async () => {
    const mock = await startService(['mock', '--port', '0', '--models', 'm', '--max-concurrency', '1', '--itl-ms', '200', '--output-tokens', '50']);
    try {
      const first = new AbortController();
      const firstRes = await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a' }], stream: true }), signal: first.signal });
      assert.equal(firstRes.status, 200);
      const second = fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'b' }], max_tokens: 1 }) });
      await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) === 1, 'second request to queue');
      assert.equal(await metric(mock.url, 'vllm:num_requests_running'), 1);
      first.abort();
      const res = await second;
      assert.equal(res.status, 200);
      await waitFor(async () => (await metric(mock.url, 'mock:requests_cancelled_total')) === 1, 'cancellation counted');
      await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_running')) === 0, 'slot released');
      assert.equal(await metric(mock.url, 'vllm:num_requests_waiting'), 0);
      // a queued request whose client leaves is removed from the queue
      const holder = new AbortController();
      await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'c' }], stream: true }), signal: holder.signal });
      const queued = new AbortController();
      const queuedReq = fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'd' }] }), signal: queued.signal }).catch(() => 'aborted');
      await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) === 1, 'request to queue');
      queued.abort();
      assert.equal(await queuedReq, 'aborted');
      await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) === 0, 'queue to empty');
      holder.abort();
      await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_running')) === 0, 'slot released');
      assert.equal(await metric(mock.url, 'mock:requests_cancelled_total'), 3);
      const ttftCount = await metric(mock.url, 'vllm:time_to_first_token_seconds_count');
      assert.equal(ttftCount, 3);
    } finally {
      await mock.stop();
    }
  });
});

describe('mock: failure injection', () => {
  let mock: RunningService;
  before(async () => {
    mock = await startService(['mock', '--port', '0', '--models', 'm']);
  });
  after(() => mock.stop());
  const body = { model: 'm', messages: [{ role: 'user', content: 'x' }] };

  it('answers an injected error status by header', async () => {
    const r = await http('POST', `${mock.url}/v1/chat/completions`, { body, headers: { 'x-mock-error': '503' } });
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'injected_fault');
  });

  it('hangs before the first byte by header', async () => {
    await assert.rejects(fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'x-mock-hang': '1' }, signal: AbortSignal.timeout(300) }), /abort|timeout/i);
    await waitFor(async () => (await metric(mock.url, 'mock:injected_faults_total', 'kind="hang"')) === 1, 'hang counted');
  });

  it('drops the connection mid-stream after K chunks', async () => {
    const r = await readSse(`${mock.url}/v1/chat/completions`, { ...body, stream: true }, { 'x-mock-drop-after': '3' });
    assert.equal(r.events.length, 3);
    assert.equal(r.done, false);
    assert.ok(r.error, 'the stream ends with an error, not cleanly');
    const plain = await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'x-mock-drop-after': '0' } }).then((res) => res.text()).then(() => 'complete', () => 'dropped');
    assert.equal(plain, 'dropped');
  });

  it('applies --error-rate with --error-status', async () => {
    const failing = await startService(['mock', '--port', '0', '--models', 'm', '--error-rate', '1', '--error-status', '429']);
    const r = await http('POST', `${failing.url}/v1/chat/completions`, { body });
    assert.equal(r.status, 429);
    assert.equal((await http('GET', `${failing.url}/health`)).status, 200);
    await failing.stop();
    const half = await startService(['mock', '--port', '0', '--models', 'm', '--error-rate', '0.5', '--seed', '7']);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await http('POST', `${half.url}/v1/chat/completions`, { body })).status);
    await half.stop();
    const errors = statuses.filter((s) => s === 500).length;
    assert.ok(errors > 5 && errors < 35, `about half fail: ${errors}/40`);
    assert.equal(errors + statuses.filter((s) => s === 200).length, 40);
  });

  it('crashes the process by header and by --crash-after', async () => {
    const victim = await startService(['mock', '--port', '0', '--models', 'm']);
    await fetch(`${victim.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'x-mock-crash': '1' } }).catch(() => undefined);
    assert.equal((await victim.exited).signal, 'SIGKILL');
    const second = await startService(['mock', '--port', '0', '--models', 'm', '--crash-after', '2']);
    assert.equal((await http('POST', `${second.url}/v1/chat/completions`, { body })).status, 200);
    await fetch(`${second.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) }).catch(() => undefined);
    assert.equal((await second.exited).signal, 'SIGKILL');
  });

  it('listens only after --startup-delay', async () => {
    const slow = await startService(['mock', '--port', '0', '--models', 'm', '--startup-delay', '0.4']);
    const waiting = slow.logs.find((l) => l.msg?.startsWith('slow start'));
    const listening = slow.logs.find((l) => l.msg === 'mock listening');
    assert.ok(waiting && listening);
    assert.ok(Date.parse(String(listening.time)) - Date.parse(String(waiting.time)) >= 390);
    await slow.stop();
  });
});

describe('mock: registry integration', () => {
  let reg: RunningService;
  before(async () => {
    reg = await startRegistry();
  });
  after(() => reg.stop());

  it('registers as openai-api, heartbeats, re-registers after a 404 and deregisters on shutdown', async () => {
    const mock = await startService(['mock', '--port', '0', '--models', 'x1,x2', '--name', 'self-reg', '--registry-url', `${reg.url}/`, '--heartbeat-interval', '0.1']);
    const rec = await waitFor(async () => {
      const r = await http('GET', `${reg.url}/services/self-reg`);
      return r.status === 200 ? r.body : undefined;
    }, 'mock to register');
    assert.equal(rec.url, `http://127.0.0.1:${mock.port}`);
    assert.equal(rec.host, '127.0.0.1');
    assert.equal(rec.metadata.type, 'openai-api');
    assert.deepEqual(rec.metadata.models, ['x1', 'x2']);
    assert.deepEqual(rec.metadata.models_list.map((m: any) => m.id), ['x1', 'x2']);
    await waitFor(async () => (await http('GET', `${reg.url}/services/self-reg`)).body.last_heartbeat > rec.last_heartbeat, 'a heartbeat');
    assert.equal((await http('DELETE', `${reg.url}/services/self-reg`)).status, 200);
    await waitFor(async () => (await http('GET', `${reg.url}/services/self-reg`)).status === 200, 're-registration after 404');
    const { code } = await mock.stop('SIGTERM');
    assert.equal(code, 0);
    assert.equal((await http('GET', `${reg.url}/services/self-reg`)).status, 404);
  });

  it('uses the registry token and the advertise host', async () => {
    const secured = await startRegistry(['--auth-token', 'tok']);
    const mock = await startService(['mock', '--port', '0', '--host', '0.0.0.0', '--advertise-host', 'localhost', '--models', 'x', '--registry-url', secured.url], { env: { INFINI_REGISTRY_TOKEN: 'tok' } });
    const rec = await waitFor(async () => {
      const r = await http('GET', `${secured.url}/services/mock-${mock.port}`);
      return r.status === 200 ? r.body : undefined;
    }, 'registration with token');
    assert.equal(rec.url, `http://localhost:${mock.port}`);
    await mock.stop();
    assert.equal((await http('GET', `${secured.url}/services/mock-${mock.port}`)).status, 404);
    await secured.stop();
  });

  it('refuses bad flags with one line', async () => {
    const bad = spawnCli(['mock', '--models', ' , ']);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderrText, /--models/);
    const badRate = spawnCli(['mock', '--error-rate', '2']);
    assert.equal((await badRate.exited).code, 2);
    assert.match(badRate.stderrText, /--error-rate/);
  });
});

/** The HTTP chunks of a streamed answer, read off a raw socket: one per write of the mock. */
async function httpChunks(url: string, body: unknown): Promise<{ head: string; chunks: string[] }> {
  const { port } = new URL(url);
  const text = JSON.stringify(body);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    const s = connect(Number(port), '127.0.0.1', () => s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`));
    s.on('data', (d) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
  const all = raw.toString('utf8');
  const headEnd = all.indexOf('\r\n\r\n');
  const chunks: string[] = [];
  let rest = raw.subarray(Buffer.byteLength(all.slice(0, headEnd + 4)));
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
    if (size === 0) break;
    chunks.push(rest.subarray(eol + 2, eol + 2 + size).toString('utf8'));
    rest = rest.subarray(eol + 2 + size + 2);
  }
  return { head: all.slice(0, headEnd), chunks };
}

/** What each SSE event of a chunk is; throws unless the chunk is whole events. */
function eventKinds(chunk: string): string[] {
  assert.ok(chunk.endsWith('\n\n'), 'a write ends on an event boundary');
  return chunk
    .slice(0, -2)
    .split('\n\n')
    .map((e) => {
      assert.ok(e.startsWith('data: '), `one event: ${e.slice(0, 40)}`);
      if (e === 'data: [DONE]') return 'done';
      const c = JSON.parse(e.slice(6));
      const choice = c.choices[0];
      if (choice === undefined) return 'usage';
      if (choice.finish_reason !== null) return 'finish';
      return 'role' in choice.delta ? 'role' : 'token';
    });
}

describe('mock: stream writes', () => {
  let fast: RunningService;
  let timed: RunningService;
  before(async () => {
    [fast, timed] = await Promise.all([
      startService(['mock', '--port', '0', '--models', 'm']),
      // decode steps of 40 ms: a token per step
      startService(['mock', '--port', '0', '--models', 'm', '--itl-ms', '40']),
    ]);
  });
  after(() => Promise.all([fast.stop(), timed.stop()]));
  const body = { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 4, stream_options: { include_usage: true } };

  it('sends the events of one run of engine steps in one write, each its own SSE event', async () => {
    // zero-time steps: the whole answer comes out of one run, so one write
    const f = await httpChunks(fast.url, body);
    assert.match(f.head, /^HTTP\/1.1 200/);
    assert.equal(f.chunks.length, 1);
    assert.deepEqual(eventKinds(f.chunks[0]!), ['role', 'token', 'token', 'token', 'token', 'finish', 'usage', 'done']);
    // timed steps: the first write is the role and the first token (the next step ends 40 ms
    // later), the last one ends with [DONE]; every write is whole events, in order
    const t = await httpChunks(timed.url, body);
    const kinds = t.chunks.map(eventKinds);
    assert.deepEqual(kinds[0], ['role', 'token']);
    assert.ok(t.chunks.length >= 2);
    assert.deepEqual(kinds.flat(), ['role', 'token', 'token', 'token', 'token', 'finish', 'usage', 'done']);
  });
});

describe('mock: hand-built bodies', () => {
  it('equal what JSON.stringify makes of the OpenAI objects, quotes and non-ASCII included', () => {
    const choices = [
      { text: 'Hello "there"\n\\ é ✓', finishReason: 'stop' },
      { text: '', finishReason: 'length' },
    ];
    const u = usage(7, 9);
    const common = { id: 'chatcmpl-"x"', created: 1795678049, model: 'mo"del', system_fingerprint: 'mock-1' };
    assert.equal(
      completionBody('chat', common.id, common.created, common.model, common.system_fingerprint, choices, u),
      JSON.stringify({ id: common.id, object: 'chat.completion', created: common.created, model: common.model, system_fingerprint: common.system_fingerprint, choices: choices.map((c, index) => ({ index, message: { role: 'assistant', content: c.text }, logprobs: null, finish_reason: c.finishReason })), usage: u }),
    );
    assert.equal(
      completionBody('completions', common.id, common.created, common.model, common.system_fingerprint, choices, u),
      JSON.stringify({ id: common.id, object: 'text_completion', created: common.created, model: common.model, system_fingerprint: common.system_fingerprint, choices: choices.map((c, index) => ({ index, text: c.text, logprobs: null, finish_reason: c.finishReason })), usage: u }),
    );
  });

  it('stream chunks equal what JSON.stringify makes of the OpenAI chunk objects', () => {
    const text = 'Hello "there"\n\\ é ✓';
    for (const kind of ['chat', 'completions'] as const) {
      for (const includeUsage of [false, true]) {
        const fmt = new ChunkFormatter(kind, 'chatcmpl-x', 1795678049, 'mo"del', 'mock-1', includeUsage);
        const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
        for (const index of [0, 1, 0]) {
          const choice = kind === 'chat' ? { index, delta: { content: text }, logprobs: null, finish_reason: null } : { index, text, logprobs: null, finish_reason: null };
          const chunk = { id: 'chatcmpl-x', object, created: 1795678049, model: 'mo"del', system_fingerprint: 'mock-1', choices: [choice], ...(includeUsage ? { usage: null } : {}) };
          assert.equal(fmt.token(index, text), `data: ${JSON.stringify(chunk)}\n\n`);
        }
      }
    }
  });
});
