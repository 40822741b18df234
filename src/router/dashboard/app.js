// infini-svc dashboard: polls /dashboard/api/snapshot and draws it. Plain browser JavaScript, no build.
'use strict';
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
(() => {
  const POLL_MS = 2000;
  const MAX_ROWS = 300;
  const MAX_MODELS = 12;
  const $ = (id) => document.getElementById(id);
  /** model -> { el, plots: [{ u, pick }] } */
  const charts = new Map();

  const dash = '–';
  const rate = (v) => (v == null ? dash : v === 0 ? '0' : v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const ms = (v) => (v == null ? dash : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(v < 10000 ? 2 : 0)} s`);
  const pct = (v) => (v == null ? dash : v === 0 ? '0%' : `${(v * 100).toFixed(v < 0.1 ? 2 : 1)}%`);
  const age = (s) => (s == null ? dash : s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : `${Math.floor(s / 86400)}d`);

  function cell(text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderSummary(s) {
    const t = s.totals;
    const reg = s.registry.url === null ? 'no registry' : s.registry.up === false ? 'registry DOWN' : 'registry up';
    const parts = [`${t.up}/${t.backends} backends up`, `${rate(t.req_s)} req/s`, `errors ${pct(t.error_rate)}`, `TTFT p50 ${ms(t.ttft_p50_ms)}`, `${rate(t.tokens_s)} tok/s`, `${t.in_flight} in flight`];
    // requests waiting because every backend of their model is at its limit (--max-concurrency)
    if (t.queued > 0) parts.push(`${t.queued} waiting`);
    parts.push(reg);
    if (s.workers > 1) parts.push(`${s.workers} workers`);
    if (s.unrouted.req_s > 0) parts.push(`${rate(s.unrouted.req_s)} req/s answered by the router`);
    $('summary').textContent = parts.join(' · ');
    $('window').textContent = `last ${s.window_s} s`;
  }

  // the router filters and caps the rows (10,000 backends would be megabytes every poll)
  function renderBackends(s) {
    const body = document.createDocumentFragment();
    for (const b of s.backends) {
      const tr = document.createElement('tr');
      tr.dataset.backend = b.name;
      if (!b.up) tr.className = 'down';
      tr.append(
        cell(b.name),
        cell(b.state, `state state-${b.state.split(' ')[0]}`),
        cell(b.health, 'health'),
        cell(b.models.join(', ') || dash, 'models'),
        cell(b.in_flight == null ? dash : String(b.in_flight), 'n'),
        cell(rate(b.req_s), 'n req'),
        cell(pct(b.error_rate), 'n'),
        cell(ms(b.ttft_p50_ms), 'n'),
        cell(ms(b.ttft_p99_ms), 'n'),
        cell(rate(b.tokens_s), 'n'),
        cell(b.restarts == null ? dash : String(b.restarts), 'n'),
        cell(age(b.uptime_s), 'n'),
      );
      body.append(tr);
    }
    $('backends').tBodies[0].replaceChildren(body);
    const more = s.matched - s.backends.length;
    $('more').textContent = more > 0 ? `${more} more: filter to see them` : s.matched === 0 ? ($('filter').value ? 'no backend matches' : 'no backends') : '';
  }

  const PLOTS = [
    { title: 'requests/s', series: [['req/s', 'req_s', '#2563eb']] },
    { title: 'TTFT of streams (ms)', series: [['p50', 'ttft_p50_ms', '#2563eb'], ['p99', 'ttft_p99_ms', '#7c3aed']] },
    { title: 'errors/s', series: [['5xx', 'err_s', '#dc2626'], ['4xx', 'client_err_s', '#d97706']] },
  ];

  function plotWidth() {
    const w = $('charts').clientWidth - 20;
    return Math.max(240, Math.floor((w - 16) / 3));
  }

  function dataOf(h, m, p) {
    return [h.t, ...p.series.map(([, key]) => (m ? m[key] : h.t.map(() => (key.startsWith('ttft') ? null : 0))))];
  }

  function renderCharts(s) {
    const h = s.history;
    const byModel = new Map(h.models.map((m) => [m.model, m]));
    // models with traffic first, then the ones backends serve that had none yet
    const names = [...h.models.map((m) => m.model)];
    for (const b of s.backends) for (const m of b.models) if (!byModel.has(m) && !names.includes(m)) names.push(m);
    const shown = names.slice(0, MAX_MODELS);
    for (const [name, c] of charts) {
      if (!shown.includes(name)) {
        for (const p of c.plots) p.destroy();
        c.el.remove();
        charts.delete(name);
      }
    }
    const width = plotWidth();
    shown.forEach((name, i) => {
      const m = byModel.get(name);
      let c = charts.get(name);
      if (!c) {
        const el = document.createElement('div');
        el.className = 'model';
        el.dataset.model = name;
        const title = document.createElement('h3');
        title.append(name, document.createElement('small'));
        const row = document.createElement('div');
        row.className = 'plots';
        el.append(title, row);
        const plots = PLOTS.map((p) => {
          const box = document.createElement('div');
          box.className = 'plot';
          row.append(box);
          const opts = {
            title: p.title,
            width,
            height: 150,
            legend: { live: false },
            scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
            axes: [{}, { size: 56 }],
            series: [{}, ...p.series.map(([label, , stroke]) => ({ label, stroke, width: 1.5, spanGaps: false }))],
          };
          return new uPlot(opts, dataOf(h, m, p), box);
        });
        c = { el, plots };
        charts.set(name, c);
      } else {
        c.plots.forEach((u, k) => u.setData(dataOf(h, m, PLOTS[k])));
      }
      c.el.dataset.requests = String(m ? m.requests : 0);
      const waiting = s.queued?.[name] ?? 0;
      c.el.dataset.waiting = String(waiting);
      c.el.querySelector('h3 small').textContent =
        (m ? `${plural(m.requests, 'request')}, ${plural(m.errors, 'server error')} in 10 min` : 'no requests yet') + (waiting > 0 ? `; ${waiting} waiting now` : '');
      // keep the busiest first
      if ($('charts').children[i] !== c.el) $('charts').insertBefore(c.el, $('charts').children[i] || null);
    });
  }

  function renderErrors(s) {
    const body = document.createDocumentFragment();
    for (const e of s.recent_errors) {
      const tr = document.createElement('tr');
      tr.append(cell(new Date(e.time).toLocaleTimeString()), cell(e.request_id || dash), cell(e.model || dash), cell(e.backend || '(router)'), cell(e.status ? String(e.status) : dash, 'n'), cell(e.reason));
      body.append(tr);
    }
    if (s.recent_errors.length === 0) {
      const tr = document.createElement('tr');
      const td = cell('none', 'note');
      td.colSpan = 6;
      tr.append(td);
      body.append(tr);
    }
    $('errors').tBodies[0].replaceChildren(body);
  }

  function render(s) {
    renderSummary(s);
    renderBackends(s);
    renderCharts(s);
    renderErrors(s);
    const upd = $('updated');
    upd.className = '';
    upd.textContent = `updated ${new Date(s.time).toLocaleTimeString()}`;
  }

  const KEY_ITEM = 'infini-svc-admin-key';
  let waitingForKey = false;
  function askKey(why) {
    waitingForKey = true;
    sessionStorage.removeItem(KEY_ITEM);
    $('login-why').textContent = why;
    $('login').hidden = false;
    $('key').focus();
    const upd = $('updated');
    upd.className = 'stale';
    upd.textContent = 'waiting for an admin key';
  }
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const key = $('key').value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_ITEM, key);
    $('key').value = '';
    $('login').hidden = true;
    waitingForKey = false;
    poll();
  });

  let timer;
  let asked = 0;
  async function poll() {
    clearTimeout(timer);
    const mine = ++asked;
    try {
      const key = sessionStorage.getItem(KEY_ITEM);
      const res = await fetch(`/dashboard/api/snapshot?limit=${MAX_ROWS}&filter=${encodeURIComponent($('filter').value.trim())}`, {
        cache: 'no-store',
        headers: key ? { authorization: `Bearer ${key}` } : {},
      });
      // a router with API keys: ask for an admin key (kept for this browser session only), and poll again once given
      if (res.status === 401 || res.status === 403) {
        askKey(res.status === 403 ? 'That key has client scope: the dashboard needs an admin key.' : key ? 'That key was not accepted.' : 'This router needs an admin API key.');
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const s = await res.json();
      // an answer overtaken by a newer poll (the filter changed meanwhile) is dropped
      if (mine === asked) render(s);
    } catch (err) {
      const upd = $('updated');
      upd.className = 'stale';
      upd.textContent = `router not answering (${err.message}); retrying`;
    } finally {
      if (mine === asked && !waitingForKey) timer = setTimeout(poll, POLL_MS);
    }
  }

  let typing;
  $('filter').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(poll, 250);
  });
  window.addEventListener('resize', () => {
    const width = plotWidth();
    for (const c of charts.values()) for (const u of c.plots) u.setSize({ width, height: 150 });
  });
  poll();
})();
