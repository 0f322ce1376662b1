// edge-gateway status page: plain ES module, no build step, no dependencies (docs/status-page.md).
// Data arrives on one Server-Sent Events stream (/status/events); pages beyond the overview and the
// device table fetch their JSON when shown and again on every update. Text is always set with
// textContent, never parsed as HTML.
const SVGNS = 'http://www.w3.org/2000/svg';
const CLASSES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

const state = { overview: null, devices: null, lastMessage: 0, connected: false, extra: null };
const main = document.getElementById('main');
const conn = document.getElementById('conn');

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {}))
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  for (const k of kids.flat())
    if (k !== undefined && k !== null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}
function s(tag, attrs) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

const fmtBytes = (b) =>
  b >= 1048576 ? `${(b / 1048576).toFixed(1)} MB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KB` : `${b} B`;
function fmtAgo(ms) {
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.round(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.round(sec / 3600)} h ago`;
  return `${Math.round(sec / 86400)} d ago`;
}
function fmtDur(sec) {
  const d = Math.floor(sec / 86400),
    hh = Math.floor((sec % 86400) / 3600),
    m = Math.floor((sec % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${m} min` : m ? `${m} min ${sec % 60} s` : `${sec} s`;
}
function fmtValue(v, unit) {
  if (v === null) return '–';
  if (typeof v === 'number') return `${Number.isInteger(v) ? v : v.toFixed(2)}${unit ? ` ${unit}` : ''}`;
  return String(v);
}
const stateCell = (st, extra) => h('span', { class: `state state-${st}` }, st, extra ? ` (${extra})` : '');

// ---- SVG charts (small, hand-written) ----
function sparkline(values) {
  const svg = s('svg', {
    class: 'spark',
    viewBox: '0 0 64 18',
    role: 'img',
    'aria-label': `trend of ${values.length} readings`,
  });
  if (values.length < 2) return svg;
  const min = Math.min(...values),
    max = Math.max(...values),
    span = max - min || 1;
  const pts = values.map(
    (v, i) => `${((i / (values.length - 1)) * 62 + 1).toFixed(1)},${(17 - ((v - min) / span) * 16).toFixed(1)}`,
  );
  svg.append(s('polyline', { points: pts.join(' '), fill: 'none', class: 'c2', 'stroke-width': 1.5 }));
  return svg;
}

/** A line chart of several series over time: series = [{label, t: [], v: []}]. */
/** fromZero: the y axis starts at 0 (counts); otherwise it spans the data (a 40–45 °C signal). */
function lineChart(series, label, fromZero) {
  // Drawn at the width it is shown (no scaling), so the axis text stays readable on a phone.
  const W = Math.max(280, Math.round(main.clientWidth - 34)),
    H = W < 600 ? 160 : 200,
    L = 48,
    R = 8,
    T = 8,
    B = 22;
  const svg = s('svg', {
    class: 'chart',
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': label,
  });
  const ts = series.flatMap((x) => x.t),
    vs = series.flatMap((x) => x.v);
  if (ts.length === 0) {
    const t = s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' });
    t.textContent = 'no data yet';
    svg.append(t);
    return svg;
  }
  const t0 = Math.min(...ts),
    t1 = Math.max(...ts) || t0 + 1;
  let v0 = fromZero ? Math.min(0, ...vs) : Math.min(...vs),
    v1 = Math.max(...vs);
  if (v1 === v0) v1 = v0 + 1;
  const x = (t) => L + ((t - t0) / (t1 - t0 || 1)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  for (const v of [v0, (v0 + v1) / 2, v1]) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    const tx = s('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' });
    tx.textContent = Math.abs(v) >= 1000 ? v.toExponential(1) : String(Math.round(v * 100) / 100);
    svg.append(tx);
  }
  for (const [t, anchor] of [
    [t0, 'start'],
    [t1, 'end'],
  ]) {
    const tx = s('text', { x: x(t), y: H - 6, 'text-anchor': anchor, class: 'axis' });
    tx.textContent = new Date(t).toLocaleTimeString();
    svg.append(tx);
  }
  series.forEach((ser, i) => {
    if (ser.t.length === 0) return;
    const pts = ser.t.map((t, k) => `${x(t).toFixed(1)},${y(ser.v[k]).toFixed(1)}`);
    if (pts.length === 1) pts.push(pts[0]);
    svg.append(
      s('polyline', {
        points: pts.join(' '),
        fill: 'none',
        class: `c${i % 4}`,
        'stroke-width': 2,
      }),
    );
  });
  return svg;
}
const legend = (labels) =>
  h(
    'p',
    { class: 'legend' },
    labels.map((l, i) => h('span', { class: `c${i % 4}` }, l)),
  );

// ---- pages ----
function card(label, value, cls, id) {
  return h('div', { class: 'card' }, h('dl', {}, h('dt', {}, label), h('dd', { class: cls, id }, value)));
}

function renderOverview() {
  const o = state.overview;
  if (!o) return [h('p', {}, 'Waiting for the gateway…')];
  const up = o.uplink;
  const upCls = up.state === 'online' ? 'ok' : up.state === 'disabled' ? 'muted' : 'bad';
  const out = [
    h('h2', {}, 'Overview'),
    h(
      'div',
      { class: 'cards' },
      card('Health', o.health.ok ? 'healthy' : 'unhealthy', o.health.ok ? 'ok' : 'bad', 'health'),
      card('Uplink', up.state, upCls, 'uplink-state'),
      card(
        'Outbox rows',
        o.queues ? String(o.queues.classes.reduce((a, c) => a + c.depth, 0)) : 'not enabled',
        '',
        'outbox-total',
      ),
      card('Drain rate', o.queues ? `${fmtBytes(o.queues.drainRateBps)}/s` : '–', '', 'drain-rate'),
      card(
        'Dropped',
        o.queues ? String(o.queues.droppedTotal) : '–',
        o.queues && o.queues.droppedTotal ? 'warn' : '',
        'dropped',
      ),
      card(
        'Devices',
        `${o.devices.online} online / ${o.devices.total}`,
        o.devices.offline ? 'warn' : '',
        'devices-count',
      ),
      card('Event-loop lag', `${o.health.loopLagMs} ms (p99 ${o.health.loopP99Ms})`),
      card('Memory (RSS)', fmtBytes(o.rssBytes), '', 'rss'),
      card('Version', o.version, '', 'version'),
      card('Uptime', fmtDur(o.uptimeS), '', 'uptime'),
    ),
  ];
  if (up.state !== 'disabled')
    out.push(
      h(
        'p',
        {},
        'Uplink ',
        h('code', {}, up.url || ''),
        up.lastError ? h('span', { class: 'error', id: 'uplink-error' }, ` — last error: ${up.lastError}`) : '',
      ),
    );
  if (o.queues) {
    out.push(h('h2', {}, 'Outbox depth per class, last hour'));
    const d = o.depth || { t: [], lanes: {} };
    out.push(
      lineChart(
        CLASSES.map((c) => ({ label: c, t: d.t, v: d.lanes[c] || [] })),
        'outbox depth per class over the last hour',
        true,
      ),
      legend(CLASSES),
    );
    out.push(
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'queue-table' },
          h(
            'caption',
            { class: 'muted' },
            `quota ${fmtBytes(o.queues.quota.usedBytes)} of ${fmtBytes(o.queues.quota.maxBytes)}`,
          ),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'class'),
              h('th', { class: 'num', scope: 'col' }, 'rows'),
              h('th', { class: 'num', scope: 'col' }, 'readings'),
              h('th', { class: 'num hide-narrow', scope: 'col' }, 'bytes'),
              h('th', { class: 'num hide-narrow', scope: 'col' }, 'oldest'),
              h('th', { class: 'num', scope: 'col' }, 'sending'),
              h('th', { class: 'num', scope: 'col' }, 'dropped'),
            ),
          ),
          h(
            'tbody',
            {},
            o.queues.classes.map((c) =>
              h(
                'tr',
                { 'data-class': c.name },
                h('th', { scope: 'row' }, c.name),
                h('td', { class: 'num depth' }, c.depth),
                h('td', { class: 'num' }, c.readings),
                h('td', { class: 'num hide-narrow' }, fmtBytes(c.bytes)),
                h('td', { class: 'num hide-narrow' }, c.oldestAgeS ? fmtDur(c.oldestAgeS) : '–'),
                h('td', { class: 'num' }, `${fmtBytes(c.sendRateBps)}/s`),
                h('td', { class: 'num' }, c.dropped),
              ),
            ),
          ),
        ),
      ),
    );
  } else out.push(h('p', { class: 'disabled' }, 'Store-and-forward queue: not enabled'));
  out.push(
    h('h2', {}, 'Services'),
    h(
      'ul',
      { id: 'services' },
      o.health.services.map((sv) =>
        h('li', {}, h('strong', {}, sv.name), ' ', h('span', { class: sv.ok ? 'ok' : 'bad' }, sv.state)),
      ),
    ),
  );
  return out;
}

function renderDevices() {
  const d = state.devices;
  if (!d) return [h('p', {}, 'Waiting for the gateway…')];
  const now = state.overview ? state.overview.now : Date.now();
  const rows = d.devices.map((x) =>
    h(
      'tr',
      { 'data-device': x.id, class: `state-${x.state}` },
      h('td', {}, stateCell(x.state, x.state === 'offline' ? x.reason : null)),
      h('th', { scope: 'row' }, h('a', { href: `#/device/${encodeURIComponent(x.id)}` }, x.id)),
      h('td', { class: 'hide-narrow' }, x.transport),
      h('td', { class: 'seen' }, fmtAgo(now - x.lastSeen)),
      h('td', { class: `num${x.refused ? ' warn' : ''}`, title: x.lastError || '' }, x.refused),
      h(
        'td',
        {},
        h(
          'span',
          { class: 'values' },
          x.values.map((v) =>
            h(
              'span',
              { class: 'value' },
              h('span', { class: 'name' }, v.name),
              fmtValue(v.value, v.unit),
              v.spark ? sparkline(v.spark) : '',
            ),
          ),
        ),
      ),
    ),
  );
  return [
    h('h2', {}, `Devices (${d.devices.length + d.more})`),
    d.devices.length === 0 ? h('p', { class: 'muted' }, 'No device has been heard from yet.') : '',
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { id: 'device-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'state'),
            h('th', { scope: 'col' }, 'device'),
            h('th', { scope: 'col', class: 'hide-narrow' }, 'via'),
            h('th', { scope: 'col' }, 'last seen'),
            h('th', { scope: 'col', class: 'num' }, 'refused'),
            h('th', { scope: 'col' }, 'latest values'),
          ),
        ),
        h('tbody', {}, rows),
      ),
    ),
    d.more ? h('p', { class: 'muted' }, `${d.more} more devices not listed.`) : '',
  ];
}

function renderDevice(id, doc) {
  if (!doc) return [h('h2', {}, id), h('p', {}, 'Loading…')];
  if (doc.error) return [h('h2', {}, id), h('p', { class: 'error' }, doc.error)];
  const dv = doc.device;
  const out = [
    h('h2', {}, dv.id, ' ', stateCell(dv.state, dv.state === 'offline' ? dv.reason : null)),
    h(
      'div',
      { class: 'cards' },
      card('Transport', dv.transport),
      card('Last seen', fmtAgo(Date.now() - dv.lastSeen)),
      card('Messages', String(dv.messagesIn)),
      card('Refused', String(dv.refused), dv.refused ? 'warn' : ''),
      card('Last error', dv.lastError || '–', 'small'),
    ),
  ];
  if (doc.history === null) out.push(h('p', { class: 'disabled' }, 'Local history: not enabled'));
  else {
    const names = Object.keys(doc.history);
    if (names.length === 0) out.push(h('p', { class: 'muted' }, 'No numeric readings in the local history yet.'));
    for (const n of names) {
      const unit = doc.latest && doc.latest.units[n] ? ` (${doc.latest.units[n]})` : '';
      out.push(
        h('h3', {}, n + unit),
        lineChart([{ label: n, t: doc.history[n].t, v: doc.history[n].v }], `${n} over time`),
      );
    }
  }
  out.push(h('h2', {}, 'Recent dead letters'));
  if (doc.deadletters === null) out.push(h('p', { class: 'disabled' }, 'Dead letters: not enabled'));
  else if (doc.deadletters.length === 0) out.push(h('p', { class: 'muted' }, 'None.'));
  else
    out.push(
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'deadletters' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'when'),
              h('th', { scope: 'col' }, 'code'),
              h('th', { scope: 'col' }, 'reason'),
              h('th', { scope: 'col', class: 'hide-narrow' }, 'payload'),
            ),
          ),
          h(
            'tbody',
            {},
            doc.deadletters.map((x) =>
              h(
                'tr',
                {},
                h('td', {}, new Date(x.at).toLocaleString()),
                h('td', {}, x.code),
                h('td', {}, x.reason),
                h('td', { class: 'hide-narrow' }, h('code', {}, x.preview)),
              ),
            ),
          ),
        ),
      ),
    );
  return out;
}

/** Any JSON document as nested definition lists (for capabilities whose views are still changing). */
function jsonView(v, depth = 0) {
  if (v === null || typeof v !== 'object') return document.createTextNode(v === null ? '–' : String(v));
  if (depth > 3) return h('code', {}, JSON.stringify(v).slice(0, 200));
  if (Array.isArray(v))
    return v.length === 0
      ? h('span', { class: 'muted' }, 'none')
      : h(
          'ol',
          {},
          v.slice(0, 50).map((x) => h('li', {}, jsonView(x, depth + 1))),
        );
  return h(
    'dl',
    {},
    Object.entries(v).flatMap(([k, x]) => [h('dt', { class: 'muted' }, k), h('dd', {}, jsonView(x, depth + 1))]),
  );
}

function renderAlerts(doc) {
  const v = doc.view;
  const sev = { critical: 'bad', major: 'bad', minor: 'warn', info: 'muted' };
  const table = (rows, id) =>
    rows.length === 0
      ? h('p', { class: 'muted' }, 'None.')
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { id },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'severity'),
                h('th', { scope: 'col' }, 'device'),
                h('th', { scope: 'col' }, 'message'),
                h('th', { scope: 'col', class: 'hide-narrow' }, 'rule'),
                h('th', { scope: 'col' }, 'state'),
                h('th', { scope: 'col', class: 'hide-narrow' }, 'raised'),
              ),
            ),
            h(
              'tbody',
              {},
              rows.map((a) =>
                h(
                  'tr',
                  { 'data-alert': a.id },
                  h('td', { class: sev[a.severity] || '' }, a.severity),
                  h('td', {}, h('a', { href: `#/device/${encodeURIComponent(a.deviceId)}` }, a.deviceId)),
                  h('td', {}, a.message),
                  h('td', { class: 'hide-narrow' }, a.rule),
                  h('td', {}, a.state),
                  h('td', { class: 'hide-narrow' }, new Date(a.raisedTs).toLocaleString()),
                ),
              ),
            ),
          ),
        );
  return [
    h('h2', {}, `Active alerts (${v.active.length})`),
    table(v.active, 'alerts-active'),
    h('h2', {}, 'Recently cleared'),
    table(v.recent, 'alerts-recent'),
    h('p', { class: 'muted' }, `${v.rules} rules, ${v.tracks} tracks evaluated`),
  ];
}
function renderOta(doc) {
  const v = doc.view;
  const p = v.progress;
  const out = [
    h('h2', {}, 'OTA update'),
    h(
      'div',
      { class: 'cards' },
      card('Running', v.running || '–'),
      card('Phase', String(v.phase ?? '–'), v.result === 'integrity_failure' ? 'bad' : '', 'ota-phase'),
      card('Release', v.version ? `${v.version}${v.from ? ` (from ${v.from})` : ''}` : '–'),
      card('Result', String(v.result ?? '–')),
      card('Channel', v.channel || 'not set', 'small'),
      card(
        'Last check',
        v.lastCheck
          ? `${new Date(v.lastCheck.at).toLocaleString()}: ${v.lastCheck.version ?? 'nothing'}${v.lastCheck.reason ? ` (${v.lastCheck.reason})` : ''}`
          : 'never',
        'small',
      ),
    ),
  ];
  if (v.reason) out.push(h('p', { class: 'error' }, v.reason));
  if (p && typeof p.received === 'number' && typeof p.total === 'number' && p.total > 0)
    out.push(
      h('label', { for: 'ota-progress' }, `Download ${fmtBytes(p.received)} of ${fmtBytes(p.total)}`),
      h(
        'progress',
        { id: 'ota-progress', max: p.total, value: p.received },
        `${Math.round((p.received / p.total) * 100)} %`,
      ),
    );
  return out;
}
function renderInspection(doc) {
  const v = doc.view;
  const out = [h('h2', {}, 'Inspections')];
  const images = Array.isArray(v.images) ? v.images : [];
  if (images.length)
    out.push(
      h('h3', {}, 'Kept defect images'),
      h(
        'div',
        { class: 'thumbs' },
        images.slice(0, 24).map((im) =>
          h('img', {
            src: `/status/api/inspection/image/${encodeURIComponent(im.id)}`,
            alt: `defect image ${im.id}`,
            loading: 'lazy',
          }),
        ),
      ),
    );
  out.push(jsonView(v));
  return out;
}
const renderPlugins = (doc) => [h('h2', {}, 'Plugins'), jsonView(doc.view)];
const EXTRA = { alerts: renderAlerts, ota: renderOta, inspection: renderInspection, plugins: renderPlugins };

// ---- routing and updates ----
function route() {
  const m = /^#\/([a-z]+)(?:\/(.+))?$/.exec(location.hash);
  return m ? { page: m[1], arg: m[2] ? decodeURIComponent(m[2]) : null } : { page: 'overview', arg: null };
}

let fetching = false;
async function fetchExtra(r) {
  if (fetching) return;
  fetching = true;
  const url = r.page === 'device' ? `/status/api/device/${encodeURIComponent(r.arg)}` : `/status/api/${r.page}`;
  try {
    const res = await fetch(url, { credentials: 'same-origin' });
    if (res.status === 401) return location.reload();
    const doc = await res.json();
    const now = route();
    if (now.page === r.page && now.arg === r.arg) {
      state.extra = { key: location.hash, doc: res.ok || res.status === 404 ? doc : { error: `HTTP ${res.status}` } };
      render();
    }
  } catch {
    /* the event stream reports the disconnection */
  } finally {
    fetching = false;
  }
}

function render() {
  const r = route();
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === r.page || (r.page === 'device' && a.dataset.page === 'devices'))
      a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  let nodes;
  const extra = state.extra && state.extra.key === location.hash ? state.extra.doc : null;
  if (r.page === 'devices') nodes = renderDevices();
  else if (r.page === 'device') nodes = renderDevice(r.arg, extra);
  else if (EXTRA[r.page]) {
    if (!extra) nodes = [h('p', {}, 'Loading…')];
    else if (extra.enabled === false)
      nodes = [
        h('h2', {}, r.page[0].toUpperCase() + r.page.slice(1)),
        h('p', { class: 'disabled', id: 'not-enabled' }, 'Not enabled on this gateway.'),
      ];
    else nodes = EXTRA[r.page](extra);
  } else nodes = renderOverview();
  main.replaceChildren(...nodes);
}

function setConnected(ok) {
  if (ok === state.connected) return;
  state.connected = ok;
  conn.textContent = ok ? 'live' : 'disconnected';
  conn.className = `conn ${ok ? 'live' : 'disconnected'}`;
  document.body.classList.toggle('disconnected', !ok);
}

function onData(kind, ev) {
  state[kind] = JSON.parse(ev.data);
  state.lastMessage = Date.now();
  setConnected(true);
  const r = route();
  if (kind === 'devices' && (r.page === 'device' || EXTRA[r.page])) void fetchExtra(r);
  if ((kind === 'overview' && r.page === 'overview') || (kind === 'devices' && r.page === 'devices')) render();
}

function connect() {
  const es = new EventSource('/status/events');
  es.addEventListener('overview', (ev) => onData('overview', ev));
  es.addEventListener('devices', (ev) => onData('devices', ev));
  es.addEventListener('error', () => {
    setConnected(false);
    // A closed stream (e.g. 401 after a restart ended the session) is not retried by the browser.
    if (es.readyState === EventSource.CLOSED) {
      fetch('/status/api/overview', { credentials: 'same-origin' }).then(
        (r) => (r.status === 401 ? location.reload() : undefined),
        () => undefined,
      );
      setTimeout(connect, 3000);
    }
  });
}

// A stream that stays open but silent (a half-dead TCP connection) also counts as disconnected.
setInterval(() => {
  const every = state.overview ? state.overview.updateIntervalMs : 2000;
  if (state.connected && Date.now() - state.lastMessage > 3 * every + 5000) setConnected(false);
}, 1000);
addEventListener('hashchange', () => {
  const r = route();
  if (r.page === 'device' || EXTRA[r.page]) void fetchExtra(r);
  render();
  main.focus();
});
render();
const first = route();
if (first.page === 'device' || EXTRA[first.page]) void fetchExtra(first);
connect();
