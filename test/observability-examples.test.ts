/**
 * examples/observability stays true to the services: the Prometheus config is well formed and finds
 * the babysitters and engines through the registry's http_sd endpoint, and every metric the Grafana dashboard queries
 * is served by a running cluster (registry, a babysitter running the mock engine, a router), with
 * the labels the queries match, group by and name in legends.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from './helpers/test.js';
import { exprNames, familyOf, labelValuesMetric, parseExposition, type Exposition } from './helpers/promql.js';
import { freePortPair, http, readSse, ROOT, startRegistry, startService, waitFor, type RunningService } from './helpers/services.js';
import { parseYamlSubset, type YamlValue } from './helpers/yaml-subset.js';
import { DEFAULT_CLUSTER, parseCluster } from '../src/up/cluster-file.js';

const DIR = join(ROOT, 'examples', 'observability');
const PROMETHEUS_YML = join(DIR, 'prometheus.yml');
const DASHBOARD = join(DIR, 'grafana', 'dashboards', 'infini-svc.json');
const DS = '${DS_PROMETHEUS}';

type Obj = { [key: string]: YamlValue };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: YamlValue | undefined): YamlValue[] => (Array.isArray(v) ? v : []);

interface Job {
  job_name: string;
  static?: string[];
  /** http_sd_configs: where Prometheus asks for targets, and how often */
  httpSd?: Array<{ url: string; refresh: string }>;
  relabel: Obj[];
}

/** The scrape jobs of prometheus.yml, checked for the shape this example relies on. */
function loadJobs(): { global: Obj; jobs: Job[] } {
  const config = parseYamlSubset(readFileSync(PROMETHEUS_YML, 'utf8'));
  assert.ok(isObj(config), 'prometheus.yml is a mapping');
  for (const key of Object.keys(config)) assert.ok(['global', 'scrape_configs', 'rule_files'].includes(key), `unexpected top-level key ${key}`);
  const global = isObj(config.global) ? config.global : {};
  const jobs: Job[] = [];
  for (const raw of list(config.scrape_configs)) {
    assert.ok(isObj(raw) && typeof raw.job_name === 'string', `a scrape config without job_name: ${JSON.stringify(raw)}`);
    const sd = ['static_configs', 'file_sd_configs', 'http_sd_configs'].filter((k) => k in raw);
    assert.equal(sd.length, 1, `${raw.job_name}: one way to find targets, got ${sd.join(', ') || 'none'}`);
    const job: Job = { job_name: raw.job_name, relabel: list(raw.relabel_configs).filter(isObj) };
    if (raw.static_configs !== undefined) job.static = list(raw.static_configs).flatMap((c) => (isObj(c) ? list(c.targets) : [])).map(String);
    assert.ok(raw.file_sd_configs === undefined, `${raw.job_name}: discovery is the registry's http_sd, not files`);
    if (raw.http_sd_configs !== undefined) job.httpSd = list(raw.http_sd_configs).filter(isObj).map((c) => ({ url: String(c.url), refresh: String(c.refresh_interval) }));
    assert.equal(job.relabel.length, list(raw.relabel_configs).length, `${raw.job_name}: relabel_configs are mappings`);
    jobs.push(job);
  }
  return { global, jobs };
}

/** Prometheus' relabeling (keep, drop, replace) of one target's labels; undefined when dropped. */
function relabel(labels: Record<string, string>, rules: Obj[]): Record<string, string> | undefined {
  const out = { ...labels };
  for (const r of rules) {
    const action = String(r.action ?? 'replace');
    const value = list(r.source_labels).map((l) => out[String(l)] ?? '').join(String(r.separator ?? ';'));
    const regex = new RegExp(`^(?:${String(r.regex ?? '(.*)')})$`);
    const m = regex.exec(value);
    if (action === 'keep' && !m) return undefined;
    if (action === 'drop' && m) return undefined;
    if (action === 'replace' && m) {
      const target = String(r.target_label);
      const replaced = value.replace(regex, String(r.replacement ?? '$1'));
      if (replaced === '') delete out[target];
      else out[target] = replaced;
    }
    assert.ok(['keep', 'drop', 'replace'].includes(action), `relabel action ${action} is simulated here`);
  }
  return out;
}

/** The labels a target keeps after relabeling: no `__` names; instance defaults to the address. */
function finalLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (!k.startsWith('__')) out[k] = v;
  out.instance ??= labels.__address__!;
  return out;
}

const TARGET = /^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/;

describe('examples/observability', () => {
  it('the YAML subset parser reads blocks, sequences of mappings and flow lists, and refuses the rest', () => {
    const text = "a: 1 # c\nb:\n  - x: 'y'\n    z: [p, 'q r', \"s\"]\n  - plain\nc:\n- 2\nd: http://h:1/p\n";
    assert.deepEqual(parseYamlSubset(text), { a: 1, b: [{ x: 'y', z: ['p', 'q r', 's'] }, 'plain'], c: [2], d: 'http://h:1/p' });
    assert.throws(() => parseYamlSubset('a: 1\n   b: 2\n'), /line 2/);
    assert.throws(() => parseYamlSubset('a: |\n  text\n'), /line 1/);
    assert.throws(() => parseYamlSubset('a: 1\na: 2\n'), /duplicate key a/);
    assert.throws(() => parseYamlSubset('a:\n\t- 1\n'), /tab/);
  });

  it('the PromQL scanner finds selectors, matcher labels and grouping labels', () => {
    const n = exprNames('histogram_quantile(0.9, sum by (le, model) (rate(x_seconds_bucket{model=~"$model",backend!=""}[$__rate_interval]))) / on(model) group_left sum without (a) (y_total offset 5m) + count by (b) (w) or vllm:z and bool 1e3');
    assert.deepEqual(n.selectors, [{ metric: 'x_seconds_bucket', matchers: ['model', 'backend'] }, { metric: 'y_total', matchers: [] }, { metric: 'w', matchers: [] }, { metric: 'vllm:z', matchers: [] }]);
    assert.deepEqual(n.grouping, ['le', 'model', 'model', 'a', 'b']);
    assert.deepEqual(exprNames('label_replace(sum by (backend) (q), "backend", "(router)", "backend", "")').written, ['backend']);
    assert.deepEqual(labelValuesMetric('label_values(infini_router_requests_total, model)'), { metric: 'infini_router_requests_total', label: 'model' });
    const families = new Map([['h', 'histogram'], ['c', 'counter'], ['d_total', 'counter']]);
    assert.deepEqual(['h_bucket', 'h_sum', 'c_total', 'd_total', 'c_bucket', 'e'].map((x) => familyOf(x, families)), ['h', 'h', 'c', 'd_total', undefined, undefined]);
  });

  it('prometheus.yml: unique job names, well-formed targets on the ports `infini-svc up` uses, discovery from that registry', () => {
    const { global, jobs } = loadJobs();
    assert.match(String(global.scrape_interval), /^\d+(ms|s|m)$/);
    const names = jobs.map((j) => j.job_name);
    assert.deepEqual(names, [...new Set(names)], 'job names are unique');
    for (const j of jobs) for (const t of j.static ?? []) assert.match(t, TARGET, `${j.job_name}: target ${t}`);
    const plan = parseCluster(DEFAULT_CLUSTER, '(default)');
    const port = (job: string) => Number(jobs.find((j) => j.job_name === job)?.static?.[0]?.split(':').pop());
    assert.equal(port('infini-registry'), plan.registry.port);
    assert.equal(port('infini-router'), plan.router.port);
    const registry = jobs.find((j) => j.job_name === 'infini-registry')!.static![0]!;
    const discovering = jobs.filter((x) => x.httpSd);
    assert.deepEqual(discovering.map((j) => j.job_name), ['infini-babysitter', 'infini-engine']);
    for (const j of discovering) {
      // One config for both jobs: Prometheus shares identical discovery configs (one request per refresh).
      assert.deepEqual(j.httpSd, [{ url: `http://${registry}/prometheus/targets`, refresh: '15s' }], `${j.job_name}: asks the registry it scrapes`);
      assert.ok(j.relabel.some((r) => r.action === 'keep'), `${j.job_name} keeps only its role's targets`);
    }
  });

  it('promtool accepts prometheus.yml', { skip: spawnSync('promtool', ['--version']).error ? 'promtool not installed' : false }, () => {
    const r = spawnSync('promtool', ['check', 'config', '--syntax-only', PROMETHEUS_YML], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('the dashboard imports with a ${DS_PROMETHEUS} input, provisions with a variable of that name, and lays out on the grid', () => {
    const d = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    assert.deepEqual(d.__inputs.map((i: any) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
    const vars = d.templating.list as any[];
    assert.ok(vars.some((v) => v.name === 'DS_PROMETHEUS' && v.type === 'datasource' && v.query === 'prometheus'));
    for (const v of vars.filter((x) => x.type === 'query')) assert.equal(v.datasource.uid, DS, `variable ${v.name}`);
    const ids = new Set<number>();
    const cells = new Set<string>();
    for (const p of d.panels as any[]) {
      assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
      ids.add(p.id);
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && w > 0 && h > 0 && x + w <= 24, `${p.title}: inside the 24 columns`);
      for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
        assert.ok(!cells.has(`${i},${j}`), `${p.title} overlaps another panel`);
        cells.add(`${i},${j}`);
      }
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, DS, `${p.title}: datasource`);
      assert.ok(p.targets.length > 0, `${p.title}: has queries`);
      assert.equal(new Set(p.targets.map((t: any) => t.refId)).size, p.targets.length, `${p.title}: refIds unique`);
      for (const t of p.targets) assert.ok(t.datasource.uid === DS && typeof t.expr === 'string' && t.expr !== '', `${p.title}: query ${t.refId}`);
    }
    for (const file of ['datasources/prometheus.yml', 'dashboards/infini-svc.yml']) {
      const y = parseYamlSubset(readFileSync(join(DIR, 'grafana', 'provisioning', file), 'utf8'));
      assert.ok(isObj(y) && y.apiVersion === 1, `${file}: apiVersion 1`);
    }
  });

  describe('against a running cluster', () => {
    let reg: RunningService;
    let router: RunningService;
    /** job -> its targets' final labels and what their /metrics held */
    const scrapes = new Map<string, Array<{ labels: Record<string, string>; exposition: Exposition }>>();

    before(async () => {
      reg = await startRegistry();
      const port = await freePortPair();
      await startService(['babysitter', '--port', String(port), '--name', 'obs', '--host', '127.0.0.1', '--registry-url', reg.url, '--service-type', 'mock', '--args', 'm1', '--heartbeat-interval', '1']);
      router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url]);
      const chat = (stream: boolean) => ({ model: 'm1', messages: [{ role: 'user', content: 'Hello, world! Hello again.' }], stream, ...(stream ? { stream_options: { include_usage: true } } : {}) });
      await waitFor(async () => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat(false) })).status === 200, 'the router routes m1', 20_000);
      for (let i = 0; i < 3; i++) {
        assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat(false) })).status, 200);
        const s = await readSse(`${router.url}/v1/chat/completions`, chat(true));
        assert.ok(s.status === 200 && s.done && s.events.some((e) => e.usage), 'a streamed answer with usage');
      }
      assert.equal((await http('POST', `${router.url}/v1/completions`, { body: { model: 'm1', prompt: 'hi' } })).status, 200);
      assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: { ...chat(false), model: 'no-such-model' } })).status, 404);
      await waitFor(async () => (await http('GET', `${reg.url}/services`)).body.services.length === 2, 'the babysitter and its engine registered');

      // Discovery as Prometheus does it: the http_sd url's path, asked of this registry.
      const { jobs } = loadJobs();
      const sd = await fetch(`${reg.url}${new URL(jobs.find((j) => j.httpSd)!.httpSd![0]!.url).pathname}`);
      assert.equal(sd.status, 200);
      assert.equal(sd.headers.get('content-type'), 'application/json', 'the content type Prometheus requires of http_sd');
      const groups = (await sd.json()) as Array<{ targets: string[]; labels: Record<string, string> }>;
      const statics: Record<string, string> = { 'infini-registry': reg.url, 'infini-router': router.url };
      for (const job of jobs) {
        const found: Array<{ labels: Record<string, string>; url: string }> = [];
        if (job.static) {
          assert.ok(statics[job.job_name], `a running service for static job ${job.job_name}`);
          found.push({ labels: finalLabels({ job: job.job_name, __address__: job.static[0]! }), url: statics[job.job_name]! });
        } else {
          for (const g of groups) {
            for (const t of g.targets) {
              assert.match(t, TARGET);
              const kept = relabel({ ...g.labels, job: job.job_name, __address__: t }, job.relabel);
              if (kept) found.push({ labels: finalLabels(kept), url: `${g.labels.__scheme__ ?? 'http'}://${t}` });
            }
          }
        }
        const list: Array<{ labels: Record<string, string>; exposition: Exposition }> = [];
        for (const f of found) list.push({ labels: f.labels, exposition: parseExposition(await (await fetch(`${f.url}/metrics`)).text()) });
        scrapes.set(job.job_name, list);
      }
    });

    it('the registry\'s http_sd and the relabeling find one babysitter (port + 1) and one engine, named as the router names it', async () => {
      const sitters = scrapes.get('infini-babysitter') ?? [];
      const engines = scrapes.get('infini-engine') ?? [];
      assert.equal(sitters.length, 1);
      assert.equal(engines.length, 1);
      const [sitter, engine] = [sitters[0]!, engines[0]!];
      assert.equal(Number(sitter.labels.instance!.split(':').pop()), Number(engine.labels.instance!.split(':').pop()) + 1);
      assert.ok(sitter.exposition.families.has('infini_babysitter_backend_state'), 'the babysitter target serves its metrics');
      assert.ok(engine.exposition.families.has('vllm:num_requests_running'), 'the engine target serves vLLM metrics');
      assert.equal(engine.labels.babysitter, 'obs');
      const routed = await (await fetch(`${router.url}/metrics`)).text();
      assert.ok(routed.includes(`infini_router_backend_routable{backend="${engine.labels.backend}"}`), `the engine's backend label (${engine.labels.backend}) is the router's`);
    });

    it('every metric the dashboard queries is served, with the labels its queries match, group by and show', () => {
      const d = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
      // family -> [type, job, sample labels by sample name, target labels]
      const families = new Map<string, string>();
      const sampleLabels = new Map<string, Set<string>>();
      for (const [, targets] of scrapes) {
        for (const { labels, exposition } of targets) {
          for (const [f, type] of exposition.families) families.set(f, type);
          for (const [name, ls] of exposition.samples) sampleLabels.set(name, new Set([...(sampleLabels.get(name) ?? []), ...ls, ...Object.keys(labels)]));
        }
      }
      const problems: string[] = [];
      const queries: Array<{ where: string; expr: string; legend?: string }> = [];
      for (const p of d.panels as any[]) for (const t of p.targets ?? []) queries.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr, legend: t.legendFormat });
      for (const v of d.templating.list as any[]) {
        if (v.type !== 'query') continue;
        const lv = labelValuesMetric(v.definition);
        if (!lv) problems.push(`variable ${v.name}: not label_values(metric, label)`);
        else queries.push({ where: `variable ${v.name}`, expr: `sum by (${lv.label}) (${lv.metric})` });
      }
      let checked = 0;
      for (const q of queries) {
        const names = exprNames(q.expr);
        if (names.selectors.length === 0) problems.push(`${q.where}: no metric in ${q.expr}`);
        const available = new Set<string>(names.written);
        let allSampled = true;
        for (const s of names.selectors) {
          checked++;
          if (!familyOf(s.metric, families)) {
            problems.push(`${q.where}: ${s.metric} is not served`);
            allSampled = false;
            continue;
          }
          const labels = sampleLabels.get(s.metric);
          if (!labels) {
            allSampled = false; // declared, no series yet: its labels cannot be checked here
            continue;
          }
          for (const l of labels) available.add(l);
          for (const m of s.matchers) if (!labels.has(m)) problems.push(`${q.where}: ${s.metric} has no label ${m}`);
        }
        if (!allSampled) continue;
        for (const l of names.grouping) if (!available.has(l)) problems.push(`${q.where}: groups by ${l}, which none of its metrics has`);
        for (const m of (q.legend ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) if (!available.has(m[1]!)) problems.push(`${q.where}: legend shows ${m[1]}, which none of its metrics has`);
      }
      assert.deepEqual(problems, [], problems.join('\n'));
      assert.ok(checked > 60, `checked ${checked} selectors`);
    });
  });
});
