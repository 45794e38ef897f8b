// gridsweep dashboard. One script for every view: the path names the view (/, /jobs,
// /jobs/<id>, /tables, /plots); the view is drawn from the coordinator's JSON and drawn again
// whenever the event stream announces a newer state version. Text from the state is always set
// as text (never as HTML). Charts: the vendored uPlot.
'use strict';

const view = document.getElementById('view');
const conn = document.getElementById('conn');
let version = -1; // the state version drawn last
let busy = false; // a draw is in progress
let pending = false; // another change arrived during it
let charts = []; // uPlot instances of the job view

// ---- small helpers ----------------------------------------------------------------------

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtNum(x, digits) { return x === null || x === undefined ? '' : Number(x).toFixed(digits); }

function fmtSecs(s) {
  if (s === null || s === undefined) return '';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

function stateBadge(state) { return el('span', { class: `state ${state}` }, state); }

async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) {
    location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
    throw new Error('not logged in');
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

function table(headers, rows, attrs) {
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, headers.map((h) => (h instanceof Node ? h : el('th', {}, h))))),
    el('tbody', {}, rows));
}

// ---- routing ----------------------------------------------------------------------------

function route() {
  const p = location.pathname;
  if (p === '/' || p === '') return { name: 'sweep' };
  if (p === '/jobs') return { name: 'jobs' };
  if (p.startsWith('/jobs/')) return { name: 'job', id: decodeURIComponent(p.slice(6)) };
  if (p === '/tables') return { name: 'tables' };
  if (p === '/plots') return { name: 'plots' };
  return { name: 'sweep' };
}

const current = route();
for (const a of document.querySelectorAll('nav a')) {
  const nav = a.dataset.nav;
  if (nav === current.name || (nav === 'jobs' && current.name === 'job')) a.classList.add('active');
}

// ---- the sweep --------------------------------------------------------------------------

async function drawSweep() {
  const s = await getJSON('/api/sweep');
  const ended = (s.counts.completed || 0) + (s.counts.diverged || 0) + (s.counts.failed || 0);
  const total = Object.values(s.counts).reduce((a, b) => a + b, 0);
  const pct = s.epochs_total > 0 ? (100 * s.epochs_done) / s.epochs_total : 0;
  let status = s.finished ? 'finished' : s.draining ? 'stopping' : s.stalled ? 'stalled' : s.live ? 'running' : 'stopped';
  const parts = [
    el('h1', {}, `Sweep ${s.sweep} `, stateBadge(status)),
    el('div', { class: 'bar', title: `${pct.toFixed(1)}% of epochs` }, el('div', { style: `width:${pct.toFixed(2)}%` })),
    el('p', { id: 'progress' },
      `${ended} of ${total} jobs ended · ${s.epochs_done} of ${s.epochs_total} epochs (${pct.toFixed(1)}%)`,
      s.eta_s !== null && !s.finished ? ` · about ${fmtSecs(s.eta_s)} left with the live workers` : ''),
  ];
  if (s.stalled) parts.push(el('p', { class: 'notice', id: 'stalled' }, `Stalled: ${s.stalled}`));
  if (!s.live) parts.push(el('p', { class: 'muted' }, 'Read-only view of a stored sweep (coordinator dashboard).'));
  parts.push(el('div', { class: 'cards', id: 'counts' },
    Object.entries(s.counts).map(([k, n]) =>
      el('a', { class: 'card', href: `/jobs?state=${k}`, 'data-state': k }, el('div', { class: 'n' }, n), el('div', { class: 'k' }, k)))));
  parts.push(el('h2', {}, `Workers (${s.workers.length})`));
  if (s.workers.length === 0) parts.push(el('p', { class: 'muted' }, 'No worker has registered yet.'));
  else parts.push(table(['worker', 'name', 'device', 'slots', 'jobs', 'last heartbeat', 'state', 'problem'],
    s.workers.map((w) => el('tr', { 'data-worker-id': w.id },
      el('td', {}, el('code', {}, w.id)), el('td', {}, w.name), el('td', {}, w.device),
      el('td', { class: 'num' }, `${w.jobs.length}/${w.slots}`),
      el('td', {}, w.jobs.map((j) => el('a', { href: `/jobs/${encodeURIComponent(j)}` }, j, ' '))),
      el('td', { class: 'num' }, `${fmtSecs(w.last_seen_s)} ago`), el('td', {}, stateBadge(w.state)),
      el('td', { class: 'err' }, w.problem || '')))));
  // While no worker is live (and the sweep is not over), the command that attaches one.
  if (s.attach && !s.finished && !s.workers.some((w) => w.state === 'live')) {
    parts.push(el('p', { id: 'attach' }, 'Attach a worker: on a machine with the ', el('code', {}, 'worker'),
      ' binary, run'));
    parts.push(el('pre', { class: 'attach' }, el('code', {}, s.attach)));
  }
  parts.push(el('h2', {}, `Running (${s.running.length})`));
  parts.push(jobTable(s.running, s.settings, false));
  view.replaceChildren(...parts);
  return s.version;
}

// ---- the jobs ---------------------------------------------------------------------------

const JOB_COLUMNS = [
  { key: 'id', label: 'job', text: (j) => j.id },
  { key: 'arch', label: 'arch', filter: true },
  { key: 'depth', label: 'depth', filter: true, num: true },
  { key: 'seed', label: 'seed', filter: true, num: true, value: (j) => j.seed ?? '-' },
  { key: 'state', label: 'state', filter: true },
  { key: 'epoch', label: 'epoch', num: true, text: (j) => `${j.epoch}/${j.epochs_total ?? '?'}` },
  { key: 'test_acc', label: 'test acc %', num: true, text: (j) => fmtNum(j.test_acc, 2) },
  { key: 'attempts', label: 'attempts', num: true },
  { key: 'eta_s', label: 'left', num: true, text: (j) => fmtSecs(j.eta_s) },
  { key: 'worker', label: 'worker', text: (j) => j.worker || '' },
  { key: 'error', label: 'error', text: (j) => (j.error ? `${j.error_kind}: ${j.error}` : '') },
];

function columnsWith(settings) {
  const cols = JOB_COLUMNS.slice();
  settings.forEach((name, i) => cols.splice(4 + i, 0,
    { key: `setting:${name}`, label: name, filter: true, value: (j) => j.settings[i] }));
  return cols;
}

function cellValue(col, j) { return col.value ? col.value(j) : j[col.key]; }

function jobTable(jobs, settings, sortable, sort, onSort) {
  const cols = columnsWith(settings);
  const head = cols.map((c) => {
    const cls = [sortable ? 'sortable' : '', c.num ? 'num' : '',
      sort && sort.key === c.key ? (sort.desc ? 'sorted-desc' : 'sorted-asc') : ''].join(' ');
    return el('th', { class: cls, 'data-key': c.key, onclick: sortable ? () => onSort(c.key) : null }, c.label);
  });
  const rows = jobs.map((j) => el('tr', { 'data-job-id': j.id, 'data-state': j.state },
    cols.map((c) => {
      if (c.key === 'id') return el('td', {}, el('a', { href: `/jobs/${encodeURIComponent(j.id)}` }, j.id));
      if (c.key === 'state') return el('td', {}, stateBadge(j.state));
      const text = c.text ? c.text(j) : String(cellValue(c, j) ?? '');
      return el('td', { class: c.key === 'error' ? 'err' : c.num ? 'num' : '' }, text);
    })));
  return table(head, rows, { class: 'jobs', id: sortable ? 'jobs' : 'running' });
}

const MAX_ROWS = 2000;

async function drawJobs() {
  const s = await getJSON('/api/jobs');
  const params = new URLSearchParams(location.search);
  const cols = columnsWith(s.settings);
  const sort = { key: params.get('sort') || '', desc: params.get('desc') === '1' };
  const setParam = (k, v) => {
    if (v === '' || v === null) params.delete(k); else params.set(k, v);
    history.replaceState(null, '', `/jobs${params.toString() ? '?' + params : ''}`);
    drawJobs();
  };
  let jobs = s.jobs.filter((j) => cols.every((c) => {
    const want = c.filter ? params.get(c.key) : null;
    return want === null || want === '' || String(cellValue(c, j)) === want;
  }));
  const q = (params.get('q') || '').toLowerCase();
  if (q) jobs = jobs.filter((j) => j.id.toLowerCase().includes(q) || (j.error || '').toLowerCase().includes(q));
  if (sort.key) {
    const col = cols.find((c) => c.key === sort.key);
    if (col) {
      jobs.sort((a, b) => {
        const x = cellValue(col, a), y = cellValue(col, b);
        const nx = Number(x), ny = Number(y);
        const cmp = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1
          : !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : String(x).localeCompare(String(y));
        return sort.desc ? -cmp : cmp;
      });
    }
  }
  const filters = cols.filter((c) => c.filter).map((c) => {
    const values = [...new Set(s.jobs.map((j) => String(cellValue(c, j))))]
      .sort((a, b) => (Number.isNaN(Number(a)) || Number.isNaN(Number(b)) ? a.localeCompare(b) : Number(a) - Number(b)));
    const sel = el('select', { name: c.key, onchange: (e) => setParam(c.key, e.target.value) },
      el('option', { value: '' }, 'all'), values.map((v) => el('option', { value: v, selected: params.get(c.key) === v }, v)));
    return el('label', {}, c.label, sel);
  });
  const search = el('input', { type: 'search', name: 'q', value: params.get('q') || '', placeholder: 'id or error text',
    onchange: (e) => setParam('q', e.target.value) });
  const shown = jobs.slice(0, MAX_ROWS);
  view.replaceChildren(
    el('h1', {}, `Jobs of ${s.sweep}`),
    el('div', { class: 'filters' }, filters, el('label', {}, 'search', search)),
    el('p', { class: 'muted', id: 'shown' }, `${jobs.length} of ${s.jobs.length} jobs`,
      jobs.length > MAX_ROWS ? `; the first ${MAX_ROWS} shown, filter to narrow` : ''),
    jobTable(shown, s.settings, true, sort, (key) => {
      const desc = sort.key === key && !sort.desc;
      params.set('sort', key);
      if (desc) params.set('desc', '1'); else params.delete('desc');
      history.replaceState(null, '', `/jobs?${params}`);
      drawJobs();
    }));
  return s.version;
}

// ---- one job ----------------------------------------------------------------------------

function chart(title, epochs, values, label, color, total) {
  const box = el('div', { class: 'chart' }, el('h3', {}, title));
  const pts = epochs.map((e, i) => [e, values[i]]).filter(([, v]) => v !== null && v !== undefined);
  if (pts.length === 0) {
    box.append(el('p', { class: 'muted' }, 'No epoch reported yet.'));
    return box;
  }
  const opts = {
    width: 380, height: 220,
    scales: { x: { time: false, range: [0, Math.max(total ?? pts[pts.length - 1][0], 1)] } },
    axes: [{ label: 'epoch' }, { label }],
    series: [{ label: 'epoch' }, { label, stroke: color, width: 2, points: { show: pts.length < 60 } }],
    legend: { show: true },
  };
  charts.push(new uPlot(opts, [pts.map((p) => p[0]), pts.map((p) => p[1])], box));
  return box;
}

function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [el('dt', {}, k), el('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]));
}

async function drawJob(r) {
  const d = await getJSON(`/api/jobs/${encodeURIComponent(r.id)}`);
  const j = d.job;
  charts.forEach((c) => c.destroy());
  charts = [];
  const ep = d.epochs.map((e) => e.epoch);
  const parts = [
    el('h1', {}, d.program && j.arch === 'program' ? `program job ${j.id} ` : `${j.arch}-${j.depth} seed ${j.seed ?? '-'}${j.repeat ? ` repeat ${j.repeat}` : ''} `, stateBadge(j.state)),
    kv([['job', j.id], ['epoch', `${j.epoch} of ${j.epochs_total ?? '?'}`], ['test accuracy %', fmtNum(j.test_acc, 2)],
      ['worker', j.worker], ['attempts', `${j.attempts} (failures ${j.failures} of ${j.max_attempts} allowed)`],
      ['time left', fmtSecs(j.eta_s)]]),
  ];
  if (j.error) parts.push(el('p', { class: 'error', id: 'job-error' }, `${j.error_kind}: ${j.error}`));
  if (!d.program) {
    parts.push(el('div', { class: 'charts' },
      chart('Test accuracy (%)', ep, d.epochs.map((e) => e.test_acc), 'test acc %', '#2f6fdd', j.epochs_total),
      chart('Train loss', ep, d.epochs.map((e) => e.train_loss), 'train loss', '#c4320a', j.epochs_total),
      chart('Learning rate', ep, d.epochs.map((e) => e.lr), 'lr', '#1a7f37', j.epochs_total)));
    parts.push(el('h2', {}, `Epochs (${d.epochs.length})`));
    parts.push(table(['epoch', 'lr', 'train loss', 'train acc %', 'test loss', 'test acc %', 'seconds', 'images/s'],
      d.epochs.map((e) => el('tr', { 'data-epoch': e.epoch },
        el('td', { class: 'num' }, e.epoch), el('td', { class: 'num' }, e.lr.toPrecision(4)),
        el('td', { class: 'num' }, fmtNum(e.train_loss, 4)), el('td', { class: 'num' }, fmtNum(e.train_acc, 2)),
        el('td', { class: 'num' }, fmtNum(e.test_loss, 4)), el('td', { class: 'num' }, fmtNum(e.test_acc, 2)),
        el('td', { class: 'num' }, fmtNum(e.seconds, 1)), el('td', { class: 'num' }, fmtNum(e.images_per_s, 0)))),
      { id: 'epochs' }));
  }
  parts.push(el('h2', {}, 'Attempts'));
  parts.push(d.attempts.length === 0 ? el('p', { class: 'muted' }, 'Not started yet.')
    : table(['attempt', 'worker', 'started', 'ended', 'outcome', 'kind', 'error'], d.attempts.map((a) => el('tr', {},
      el('td', { class: 'num' }, a.attempt), el('td', {}, el('code', {}, a.worker)),
      el('td', {}, new Date(a.started_at * 1000).toLocaleString()),
      el('td', {}, a.ended_at ? new Date(a.ended_at * 1000).toLocaleString() : 'running'),
      el('td', {}, a.outcome || ''), el('td', {}, a.kind || ''), el('td', { class: 'err' }, a.error || '')))));
  if (d.result) {
    const res = d.result;
    parts.push(el('h2', {}, 'Result'));
    parts.push(kv([['status', res.status], ['final test acc %', fmtNum(res.final_test_acc, 2)],
      ['best test acc %', fmtNum(res.best_test_acc, 2)], ['best epoch', res.best_epoch], ['params', res.params],
      ['FLOPs', res.flops], ['wall seconds', fmtNum(res.wall_seconds, 1)], ['resumed from epoch', res.resumed_from_epoch],
      ['data', res.data]]));
    parts.push(el('h2', {}, 'Environment'));
    parts.push(kv(Object.entries(res.environment || {})));
  }
  if (d.program) drawProgram(d, j, parts);
  parts.push(el('h2', {}, 'Settings'));
  parts.push(kv(d.program ? Object.entries({ ...d.spec.program.settings, command: d.spec.program.command.join(' ') })
    : Object.entries({ ...d.spec.train, data: d.spec.data, analysis: d.spec.analysis, repeat: d.spec.repeat })));
  view.replaceChildren(...parts);
  return d.version;
}

// A program job's curves (its metric and train loss from its epoch lines), result and the end of
// each attempt's log (stdout and stderr), after the built-in job's parts (which stay empty).
function drawProgram(d, j, parts) {
  const p = d.program;
  const ep = p.epochs.map((e) => e.epoch);
  parts.push(el('h2', {}, 'Program'));
  parts.push(el('div', { class: 'charts', id: 'program-charts' },
    chart(p.metric, ep, p.epochs.map((e) => e[p.metric]), p.metric, '#2f6fdd', j.epochs_total),
    chart('Train loss', ep, p.epochs.map((e) => e.train_loss), 'train loss', '#c4320a', j.epochs_total)));
  if (p.result) parts.push(kv(Object.entries({ ...p.result.result, diverged: p.result.diverged })));
  for (const log of p.logs) {
    parts.push(el('h3', {}, `Log of attempt ${log.attempt} (last lines)`));
    parts.push(el('pre', { class: 'log', 'data-attempt': log.attempt }, log.tail));
  }
}

// ---- tables and plots -------------------------------------------------------------------

// The Markdown tables `run` writes, as HTML: headings (# and ##: the comparisons under each
// table), paragraphs and pipe tables.
function markdown(md) {
  const out = [];
  let rows = null;
  const flush = () => {
    if (!rows) return;
    const [head, ...body] = rows;
    out.push(table(head.map((c) => el('th', {}, c)), body.map((r) => el('tr', {}, r.map((c) => el('td', {}, c)))), { class: 'md-table' }));
    rows = null;
  };
  for (const line of md.split('\n')) {
    if (line.startsWith('|')) {
      const cells = line.slice(1, line.endsWith('|') ? -1 : undefined).split('|').map((c) => c.trim());
      if (cells.every((c) => /^:?-{3,}:?$/.test(c))) continue;
      (rows = rows || []).push(cells);
      continue;
    }
    flush();
    if (line.startsWith('# ')) out.push(el('h2', {}, line.slice(2).replace(/`/g, '')));
    else if (line.startsWith('## ')) out.push(el('h3', {}, line.slice(3).replace(/`/g, '')));
    else if (line.trim() !== '') out.push(el('p', {}, line.replace(/`/g, '')));
  }
  flush();
  return out;
}

async function drawTables() {
  const t = await getJSON('/api/tables');
  // A sweep with program jobs gets results.md (any program's metric, by condition) first; Table 1
  // and Table 2 are the built-in trainer's jobs', shown when there are some (or nothing else).
  const sections = [];
  if (t.programs) sections.push(el('section', { id: 'results', class: 'md' }, markdown(t.results)));
  if (t.builtin || !t.programs) {
    sections.push(el('section', { id: 'table1', class: 'md' }, markdown(t.table1)),
      el('section', { id: 'table2', class: 'md' }, markdown(t.table2)));
  }
  view.replaceChildren(el('h1', {}, `Tables of ${t.sweep}`),
    el('p', { class: 'muted' }, 'As they fill: pending and running runs are counted, not averaged. The same files are written to the output directory.'),
    ...sections);
}

async function drawPlots() {
  const p = await getJSON('/api/plots');
  view.replaceChildren(el('h1', {}, `Plots of ${p.sweep}`), ...p.plots.map((x) => el('section', { class: 'plot' },
    el('h2', {}, x.title),
    x.skipped ? el('p', { class: 'muted' }, `Not drawn: ${x.skipped}`)
      : el('img', { src: `/plots/${x.file}?v=${version}`, alt: x.title }),
    el('p', {}, x.caption), x.note ? el('p', { class: 'muted' }, x.note) : null)));
}

// ---- drawing and updates ----------------------------------------------------------------

const DRAW = { sweep: drawSweep, jobs: drawJobs, job: drawJob, tables: drawTables, plots: drawPlots };

async function draw() {
  if (busy) { pending = true; return; }
  busy = true;
  try {
    await DRAW[current.name](current);
    if (!document.body.dataset.firstRenderMs) {
      // Milliseconds from the start of navigation (the page's request) to its first drawn view.
      document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
    }
    document.body.dataset.drawnVersion = String(version);
  } catch (e) {
    if (e.message !== 'not logged in') view.replaceChildren(el('p', { class: 'error' }, `Could not load: ${e.message}`));
  } finally {
    busy = false;
    if (pending) { pending = false; draw(); }
  }
}

function listen() {
  const es = new EventSource('/api/events');
  es.addEventListener('change', (ev) => {
    const v = Number(ev.data);
    if (v !== version) { version = v; draw(); }
  });
  es.onopen = () => {
    conn.textContent = document.body.dataset.mode === 'live' ? 'live' : 'following the stored state';
    conn.className = 'conn live';
  };
  es.onerror = () => { conn.textContent = 'reconnecting…'; conn.className = 'conn down'; };
}

draw();
listen();
// The sweep page also shows clocks (seconds since each worker's heartbeat), which move when the
// state does not: redraw it every few seconds as well.
if (current.name === 'sweep') setInterval(draw, 5000);
