/* Caudal web UI: one page, views chosen by the URL's fragment
 * (#overview, #datanodes, #browse:PATH, #file:PATH, #jobs, #job:NAME),
 * each fetched as JSON from the daemon that served the page and redrawn
 * every few seconds. Every string from the cluster goes into the page as
 * text (text nodes, textContent), never as markup. */
'use strict';

const REFRESH_MS = 5000;
const FETCH_TIMEOUT_MS = 8000;
let info = null;   /* /ui/api/info: which daemon, links to the other */
let timer = null;
let drawing = 0;   /* bumps on every navigation: late answers are dropped */

/* ------------------------------------------------------------ helpers */

/* el('td', {class: 'num'}, 'text', child...): strings become text nodes. */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    e.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

/* A link inside the page: href is always a fragment we built. */
function link(hash, ...kids) { return el('a', {href: '#' + hash}, ...kids); }

/* A link to the other daemon's UI, only for an http(s) URL. */
function outside(base, hash, ...kids) {
  if (!/^https?:\/\//i.test(base || '')) return null;
  const a = el('a', {}, ...kids);
  a.href = base.replace(/#.*$/, '') + '#' + hash;
  return a;
}

/* Sizes as `caudal report` prints them (1.5G). */
function human(v) {
  v = Number(v) || 0;
  const u = 'BKMGTP';
  let i = 0, d = v;
  while (d >= 1024 && i < 5) { d /= 1024; i++; }
  return i === 0 ? v + 'B' : d.toFixed(1) + u[i];
}

function pct(a, b) { return b > 0 ? Math.min(100, Math.max(0, 100 * a / b)) : 0; }

function bar(fraction100, text, cls) {
  const inner = el('div');
  inner.style.width = fraction100.toFixed(1) + '%';
  return el('div', {class: 'bar' + (cls ? ' ' + cls : ''), role: 'progressbar',
                    'aria-valuenow': Math.round(fraction100)}, inner, el('span', {}, text));
}

function when(ms) {
  if (!ms) return '-';
  const d = new Date(Number(ms));
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/* A status file's ISO 8601 time, shorter: "2026-12-01 02:54:28Z". */
function stamp(s) { return s && s !== '-' ? s.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-'; }

function age(ms) {
  ms = Number(ms) || 0;
  if (ms < 60000) return (ms / 1000).toFixed(1) + 's';
  if (ms < 3600000) return Math.floor(ms / 60000) + 'm ' + Math.floor(ms % 60000 / 1000) + 's';
  return Math.floor(ms / 3600000) + 'h ' + Math.floor(ms % 3600000 / 60000) + 'm';
}

function modeString(type, mode) {
  const t = type === 'dir' ? 'd' : type === 'link' ? 'l' : type === 'file' ? '-' : '?';
  let s = t;
  const r = 'rwxrwxrwx';
  for (let i = 0; i < 9; i++) s += (mode & (1 << (8 - i))) ? r[i] : '-';
  if (mode & 0o1000) s = s.slice(0, 9) + (mode & 1 ? 't' : 'T');
  return s;
}

/* A value with its raw number kept for tests and tooltips. */
function field(name, shown, raw, cls) {
  return el('dd', {'data-field': name, 'data-value': raw === undefined ? shown : raw,
                   class: cls}, shown);
}

function kv(rows) {
  const dl = el('dl', {class: 'kv'});
  for (const [label, dd] of rows) { dl.appendChild(el('dt', {}, label)); dl.appendChild(dd); }
  return dl;
}

function card(title, ...kids) { return el('div', {class: 'card'}, el('h3', {}, title), ...kids); }

function table(headers, rows, attrs) {
  const head = el('tr', {}, headers.map(h => {
    const num = h.startsWith('#');
    return el('th', {class: num ? 'num' : null}, num ? h.slice(1) : h);
  }));
  return el('table', attrs || {}, el('thead', {}, head), el('tbody', {}, rows));
}

function td(v, cls) { return el('td', {class: cls}, v); }

async function getJSON(url) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const r = await fetch(url, {signal: ctl.signal, cache: 'no-store',
                                headers: {Accept: 'application/json'}});
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const err = new Error((body && body.error) || ('HTTP ' + r.status));
      err.status = r.status;
      throw err;
    }
    return body;
  } finally {
    clearTimeout(t);
  }
}

function setState(text, bad) {
  const s = document.getElementById('state');
  s.textContent = text;
  s.className = 'state' + (bad ? ' bad' : '');
}

function errorBox(msg) { return el('p', {class: 'err', 'data-error': '1'}, msg); }

/* ------------------------------------------------------------ navigation */

function route() {
  const raw = location.hash.replace(/^#/, '').split('?')[0] || '';
  let h;
  try { h = decodeURIComponent(raw); } catch (e) { h = raw; }
  const q = new URLSearchParams(location.hash.includes('?') ? location.hash.split('?').slice(1).join('?') : '');
  const [view, ...rest] = h.split(':');
  const arg = rest.join(':');
  const def = info && info.daemon === 'jobtracker' ? 'jobs' : 'overview';
  return {view: view || def, arg, q};
}

function drawNav(view) {
  const nav = document.getElementById('nav');
  const nn = info && info.daemon === 'namenode';
  const items = [['overview', 'Overview'], ['datanodes', 'Datanodes'], ['browse', 'Browse'],
                 ['jobs', 'Jobs']];
  const kids = [];
  for (const [v, label] of items) {
    const local = nn ? v !== 'jobs' : v === 'jobs';
    let a;
    if (local) {
      a = link(v === 'browse' ? 'browse:/' : v, label);
    } else {
      a = outside(nn ? info.jobs_url : info && info.namenode_url, v === 'browse' ? 'browse:/' : v, label);
    }
    if (!a) continue;
    const on = view === v || (v === 'browse' && view === 'file') || (v === 'jobs' && view === 'job');
    if (on) a.className = 'on';
    kids.push(a);
  }
  nav.replaceChildren(...kids);
}

async function draw() {
  const my = ++drawing;
  const {view, arg, q} = route();
  drawNav(view);
  const views = {overview, datanodes, browse, file, jobs, job};
  const fn = views[view];
  let content;
  try {
    content = fn ? await fn(arg, q) : errorBox('No such page: ' + view);
    if (my !== drawing) return;
    setState('updated ' + new Date().toLocaleTimeString());
  } catch (e) {
    if (my !== drawing) return;
    content = errorBox(e.status ? ('Error: ' + e.message) : 'Cannot reach the daemon: ' + e.message);
    setState(e.status ? 'error' : 'daemon unreachable', !e.status);
  }
  const main = document.getElementById('main');
  main.replaceChildren(content);
  main.setAttribute('data-view', view);
  main.setAttribute('data-drawn', String(my));
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await draw(); schedule(); }, REFRESH_MS);
}

/* ------------------------------------------------------------ namenode views */

async function overview() {
  const o = await getJSON('/ui/api/overview');
  const used = pct(o.used, o.capacity);
  const capacity = card('Capacity',
    bar(used, human(o.used) + ' of ' + human(o.capacity) + ' (' + used.toFixed(1) + '%)', used > 90 ? 'high' : ''),
    kv([['capacity', field('capacity', human(o.capacity), o.capacity)],
        ['used', field('used', human(o.used), o.used)],
        ['remaining', field('remaining', human(o.remaining), o.remaining)]]));
  const dns = card('Datanodes', kv([
    ['live', field('live', o.live, o.live, 'good')],
    ['dead', field('dead', o.dead, o.dead, o.dead ? 'bad' : '')],
    ['decommissioning', field('decommissioning', o.decommissioning, o.decommissioning, o.decommissioning ? 'warn' : '')],
    ['decommissioned', field('decommissioned', o.decommissioned, o.decommissioned)]]),
    el('p', {}, link('datanodes', 'all datanodes →')));
  const blocks = card('Blocks', kv([
    ['blocks', field('blocks', o.blocks, o.blocks)],
    ['under-replicated', field('under_replicated', o.under_replicated, o.under_replicated, o.under_replicated ? 'warn' : '')],
    ['missing', field('missing', o.missing, o.missing, o.missing ? 'bad' : '')],
    ['corrupt', field('corrupt', o.corrupt, o.corrupt, o.corrupt ? 'bad' : '')],
    ['over-replicated', field('over_replicated', o.over_replicated, o.over_replicated)],
    ['being written', field('under_construction', o.under_construction, o.under_construction)]]),
    o.block_states_age_ms > 5000 ? el('p', {class: 'muted'}, 'counted ' + age(o.block_states_age_ms) + ' ago') : null);
  const ns = card('Namespace', kv([
    ['files', field('files', o.files, o.files)],
    ['inline files', field('inline_files', o.inline_files, o.inline_files)],
    ['inline bytes', field('inline_bytes', human(o.inline_bytes), o.inline_bytes)],
    ['safe mode', field('safemode', o.safemode ? 'on' : 'off', o.safemode ? 'on' : 'off', o.safemode ? 'warn' : 'good')],
    ['sync mode', field('sync', o.sync === 'batch' ? 'batch (' + o.batch_ms + ' ms)' : o.sync, o.sync)],
    ['transaction', field('txid', o.txid, o.txid)],
    ['up for', field('uptime', age(o.uptime_s * 1000), o.uptime_s)],
    ['cluster', field('cluster', o.cluster, o.cluster, 'mono')]]));
  const rows = (o.events || []).map(e => el('tr', {'data-txid': e.txid, 'data-path': e.path},
    td(e.txid, 'num'), td(when(e.time_ms)), td(e.type),
    el('td', {class: 'name'}, e.path, e.dst ? ' → ' + e.dst : '',
       e.size !== undefined ? el('span', {class: 'muted'}, ' (' + human(e.size) + ')') : null)));
  const ev = [el('h2', {}, 'Recent namespace events'),
    rows.length ? table(['#txid', 'time', 'event', 'path'], rows, {id: 'events'})
                : el('p', {class: 'muted'}, 'No events to show.')];
  if (o.events_hidden)
    ev.push(el('p', {class: 'muted', 'data-field': 'events_hidden', 'data-value': o.events_hidden},
               o.events_hidden + ' more in folders an anonymous caller may not list.'));
  return el('div', {}, el('h1', {}, 'Overview'), el('div', {class: 'cards'}, capacity, dns, blocks, ns), ...ev);
}

async function datanodes() {
  const r = await getJSON('/ui/api/datanodes');
  const rows = r.datanodes.map(d => {
    const u = pct(d.used, d.capacity);
    return el('tr', {'data-id': d.id, 'data-addr': d.host + ':' + d.port},
      td(d.host + ':' + d.port, 'mono'), td(d.rack),
      el('td', {}, el('span', {class: 'badge ' + d.state, 'data-field': 'state'}, d.state)),
      el('td', {}, bar(u, human(d.used) + ' / ' + human(d.capacity) + ' (' + u.toFixed(1) + '%)', u > 90 ? 'high' : '')),
      td(human(d.remaining), 'num'),
      el('td', {class: 'num', 'data-field': 'blocks'}, d.blocks),
      el('td', {class: 'num', 'data-field': 'heartbeat', 'data-value': d.heartbeat_ms}, age(d.heartbeat_ms)),
      td(d.xceivers, 'num hide-narrow'),
      el('td', {class: 'mono muted hide-narrow'}, d.id));
  });
  return el('div', {}, el('h1', {}, 'Datanodes (' + r.datanodes.length + ')'),
    rows.length ? table(['datanode', 'rack', 'state', 'used of capacity', '#remaining', '#blocks',
                         '#heartbeat', '#xceivers', 'id'], rows, {id: 'datanodes'})
                : el('p', {class: 'muted'}, 'No datanode has registered.'));
}

function crumbs(path, lastIsFile) {
  const parts = path.split('/').filter(Boolean);
  const out = [link('browse:/', '/')];
  let acc = '';
  parts.forEach((p, i) => {
    acc += '/' + p;
    const last = i === parts.length - 1;
    out.push(last ? el('span', {}, p) : link('browse:' + encodeURIComponent(acc), p));
    if (!last) out.push(el('span', {class: 'muted'}, '/'));
  });
  return el('h1', {class: 'crumbs'}, lastIsFile ? 'File ' : 'Folder ', ...out);
}

function join(dir, name) { return (dir === '/' ? '' : dir) + '/' + name; }

async function browse(arg, q) {
  const path = arg || '/';
  const after = q.get('after') || '';
  const r = await getJSON('/ui/api/ls?path=' + encodeURIComponent(path) + (after ? '&after=' + encodeURIComponent(after) : ''));
  const rows = r.entries.map(e => {
    const p = join(path, e.name);
    const name = e.type === 'dir' ? link('browse:' + encodeURIComponent(p), e.name + '/')
               : e.type === 'file' ? link('file:' + encodeURIComponent(p), e.name) : e.name;
    return el('tr', {'data-name': e.name, 'data-type': e.type},
      el('td', {class: 'name'}, name), td(modeString(e.type, e.mode), 'mono'), td(e.user), td(e.group),
      el('td', {class: 'num', 'data-field': 'size', 'data-value': e.size}, e.type === 'file' ? human(e.size) : ''),
      td(e.type === 'file' ? e.replication : '', 'num'),
      td(e.type === 'file' ? human(e.block_size) : '', 'num hide-narrow'),
      td(when(e.mtime_ms), 'hide-narrow'));
  });
  const out = [crumbs(path, false),
    rows.length ? table(['name', 'mode', 'owner', 'group', '#size', '#replication', '#block size', 'modified'], rows, {id: 'listing'})
                : el('p', {class: 'muted'}, after ? 'No more entries.' : 'Empty folder.')];
  const nav = el('p', {class: 'pager'});
  if (after) nav.appendChild(link('browse:' + encodeURIComponent(path), '« first page'));
  if (r.more) {
    if (after) nav.appendChild(document.createTextNode(' · '));
    nav.appendChild(link('browse:' + encodeURIComponent(path) + '?after=' + encodeURIComponent(r.next), 'next ' + r.page + ' »'));
  }
  out.push(nav);
  out.push(el('p', {class: 'muted'}, 'Shown as an anonymous caller sees it (uid ' + info.browse_uid +
    '): folders it may not list are refused.'));
  return el('div', {}, ...out);
}

async function file(arg, q) {
  const path = arg || '/';
  const off = q.get('offset') || '0';
  const r = await getJSON('/ui/api/file?path=' + encodeURIComponent(path) + '&offset=' + encodeURIComponent(off));
  if (r.type === 'dir') { location.hash = 'browse:' + encodeURIComponent(path); return el('p', {}, '…'); }
  const out = [crumbs(path, true)];
  const attrs = [['type', field('type', r.type)],
    ['size', field('size', human(r.size) + ' (' + r.size + ' bytes)', r.size)],
    ['owner', field('owner', r.user + ':' + r.group)],
    ['mode', field('mode', modeString(r.type, r.mode), r.mode.toString(8))],
    ['modified', field('mtime', when(r.mtime_ms), r.mtime_ms)]];
  if (r.type === 'file') {
    attrs.push(['replication', field('replication', r.replication)]);
    attrs.push(['block size', field('block_size', human(r.block_size), r.block_size)]);
    attrs.push(['blocks', field('nblocks', r.nblocks)]);
    if (r.open) attrs.push(['being written', field('open', 'yes', 'yes', 'warn')]);
  }
  out.push(el('div', {class: 'cards'}, card('File', kv(attrs))));
  if (r.blocks_error) {
    out.push(errorBox('Its blocks are not shown: ' + r.blocks_error + ' (for an anonymous caller).'));
  } else if (r.inline) {
    out.push(el('p', {'data-field': 'inline'}, 'Kept inline in the namenode’s inode record: no blocks.'));
  } else if (r.blocks) {
    const rows = r.blocks.map((b, i) => {
      const hosts = b.locs.map(l => el('div', {class: 'mono', 'data-host': l.host + ':' + l.port},
        l.host + ':' + l.port + ' ', el('span', {class: 'muted'}, l.rack + (l.state !== 'live' ? ' · ' + l.state : ''))));
      const short = b.locs.length < r.replication;
      return el('tr', {'data-block': b.id},
        td(i, 'num'), td(b.id, 'mono'), td(b.gen, 'num'),
        td(human(b.offset), 'num'), td(human(b.length), 'num'),
        el('td', {class: 'num' + (short ? ' warn' : ''), 'data-field': 'replicas'}, b.locs.length + ' / ' + r.replication),
        el('td', {}, hosts.length ? hosts : el('span', {class: 'bad'}, 'no live replica')),
        td(b.corrupt ? 'corrupt' : '', 'bad'));
    });
    out.push(el('h2', {}, 'Blocks'));
    out.push(rows.length ? table(['#', 'block', '#gen', '#offset', '#length', '#replicas', 'hosts', ''], rows, {id: 'blocks'})
                         : el('p', {class: 'muted'}, 'No blocks.'));
    if (r.more)
      out.push(el('p', {class: 'pager'}, link('file:' + encodeURIComponent(path) + '?offset=' + r.next_offset, 'next blocks »')));
  }
  return el('div', {}, ...out);
}

/* ------------------------------------------------------------ jobtracker views */

function progress(done, total, pcts) {
  const p = parseFloat(pcts) || 0;
  return bar(p, done + '/' + total + ' · ' + p.toFixed(0) + '%', p >= 100 ? 'done' : '');
}

async function jobs() {
  const r = await getJSON('/ui/api/jobs');
  const rows = r.jobs.map(j => el('tr', {'data-job': j.job},
    el('td', {class: 'name'}, link('job:' + encodeURIComponent(j.job), j.job)),
    td(j.user),
    el('td', {}, el('span', {class: 'badge ' + j.state, 'data-field': 'state'}, j.state)),
    el('td', {'data-field': 'maps', 'data-value': j.maps_done + '/' + j.maps}, progress(j.maps_done, j.maps, j.map_progress)),
    el('td', {'data-field': 'reduces', 'data-value': j.reduces_done + '/' + j.reduces}, progress(j.reduces_done, j.reduces, j.reduce_progress)),
    el('td', {class: 'num', 'data-field': 'locality'}, j.data_local_maps + ' / ' + j.rack_local_maps + ' / ' + j.remote_maps),
    td(j.failed_attempts, 'num' + (j.failed_attempts !== '0' ? ' warn' : '')),
    td(stamp(j.submitted), 'hide-narrow'),
    td(j.elapsed, 'num'),
    el('td', {class: 'name bad', 'data-field': 'error'}, j.error === '-' ? '' : j.error)));
  return el('div', {}, el('h1', {}, 'Jobs (' + r.jobs.length + ')'),
    rows.length ? table(['job', 'user', 'state', 'maps', 'reduces', '#local data/rack/remote', '#failed',
                         'submitted', '#elapsed', 'error'], rows, {id: 'jobs'})
                : el('p', {class: 'muted'}, 'No jobs. Drop a spec file into /jobs to start one.'),
    el('p', {class: 'muted'}, 'Jobs that ended more than ' + Math.round(r.forget_s / 60) +
      ' minutes ago are no longer held here; their files stay in /jobs/NAME/.'));
}

async function job(arg) {
  const j = await getJSON('/ui/api/job?name=' + encodeURIComponent(arg));
  const f = (k, label) => [label || k, field(k, j[k] || '-')];
  const t = k => [k, field(k, stamp(j[k]), j[k])];
  const facts = card('Job', kv([
    ['state', el('dd', {'data-field': 'state'}, el('span', {class: 'badge ' + j.state}, j.state))],
    f('user'), f('id'), f('input'), f('output'), f('map'), f('reduce'), f('combine'),
    t('submitted'), t('started'), t('finished'), f('elapsed')]));
  const prog = card('Progress', kv([
    ['maps', el('dd', {'data-field': 'maps', 'data-value': j.maps_done + '/' + j.maps}, progress(j.maps_done, j.maps, j.map_progress))],
    ['reduces', el('dd', {'data-field': 'reduces', 'data-value': j.reduces_done + '/' + j.reduces}, progress(j.reduces_done, j.reduces, j.reduce_progress))],
    f('data_local_maps', 'data-local maps'), f('rack_local_maps', 'rack-local maps'),
    f('remote_maps', 'remote maps'), f('failed_attempts', 'failed attempts'),
    f('killed_attempts', 'killed attempts')]));
  const out = [el('h1', {}, 'Job ', j.job), el('div', {class: 'cards'}, facts, prog)];
  if (j.error && j.error !== '-') {
    out.push(el('h2', {}, 'Error'));
    out.push(el('pre', {'data-field': 'error'}, j.error));
    if (j.stderr && j.stderr.length) out.push(el('pre', {'data-field': 'stderr'}, j.stderr.join('\n')));
  }
  out.push(el('h2', {}, 'Counters'));
  out.push(table(['group', 'name', '#value'], j.counters.map(c =>
    el('tr', {'data-counter': c[0] + '\t' + c[1]}, td(c[0]), td(c[1]), td(c[2], 'num'))), {id: 'counters'}));
  out.push(el('h2', {}, 'Attempts (' + j.attempts_total + ')'));
  out.push(table(['task', '#attempt', 'host', 'locality', 'state', '#seconds', 'progress', 'error'],
    j.attempts.map(a => el('tr', {'data-attempt': a.task + '_' + a.attempt, 'data-state': a.state},
      td(a.task, 'mono'), td(a.attempt, 'num'), td(a.host, 'mono'), td(a.locality),
      el('td', {}, el('span', {class: 'badge ' + a.state}, a.state)),
      td(a.seconds.toFixed(1), 'num'),
      el('td', {}, bar(100 * a.progress, (100 * a.progress).toFixed(0) + '%', a.progress >= 1 ? 'done' : '')),
      el('td', {class: 'name'}, a.error ? el('div', {class: 'bad', 'data-field': 'error'}, a.error) : null,
         a.stderr ? el('pre', {}, a.stderr) : null))), {id: 'attempts'}));
  if (j.attempts.length < j.attempts_total)
    out.push(el('p', {class: 'muted'}, 'Only the first ' + j.attempts.length + ' attempts are shown (failed ones first).'));
  return el('div', {}, ...out);
}

/* ------------------------------------------------------------ start */

async function start() {
  try {
    info = await getJSON('/ui/api/info');
  } catch (e) {
    setState('daemon unreachable', true);
    document.getElementById('main').replaceChildren(errorBox('Cannot reach the daemon: ' + e.message));
    setTimeout(start, REFRESH_MS);
    return;
  }
  document.title = 'Caudal ' + info.daemon;
  window.addEventListener('hashchange', () => { draw(); schedule(); });
  await draw();
  schedule();
}

start();
