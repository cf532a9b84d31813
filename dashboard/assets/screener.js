/*
 * The screener page (/screener): every symbol the API watches, one row each, live.
 *
 * Rows come from GET /screener (with the last 60 s of spread and depth for the
 * sparklines), then from /ws/screener: a `snapshot` replaces the set of rows, each
 * `update` (once a second) carries the rows that changed and the symbols removed. The
 * page keeps one <tr> per symbol for its whole life and writes into a cell only when
 * its text changes; a new order (sort, filter, or a value that moved) moves only the
 * rows out of place; sparklines are small canvases drawn only for the rows on screen.
 *
 * Sort, order and filters live in the address (replaceState):
 *   /screener?sort=spread_bps&order=desc&q=eth&min_volume=1e7&walls=1&liq=1
 * A click on a row, or Enter on the focused row, promotes the symbol (POST
 * /focus/<symbol>) and opens it in the full dashboard (/?symbol=<symbol>); a refusal
 * (409: the focus set is full) is shown as a message and nothing else happens.
 *
 * Keys: / focuses the symbol filter, the arrows move between rows, Enter opens; none
 * fires while typing in a field. Loaded only by this page, after 00-core.js (helpers)
 * and 82-keys.js (what counts as typing). Tests read window.SCREENER.debug().
 */
(function (LIQ) {
  'use strict';

  const { byId, el } = LIQ.dom;
  const fmt = LIQ.format.num;

  const CFG = {
    histLen: 60,              // sparkline points: one a second
    backoffStartMs: 500,
    backoffMaxMs: 10000,
    staleAfterMs: 15000,      // an open socket silent this long is reconnected
    disconnectedAfterMs: 30000,
    sparkW: 60, sparkH: 16,
    limit: 1000,              // GET /screener's largest page: every row
    statsKept: 2000,
  };

  /* ------------------------------------------------------------ columns and sort keys */

  const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 2 });
  function money(x) { return x === null || x === undefined || !Number.isFinite(x) ? '\u2013' : compact.format(x); }
  function signed(x, d) { return x === null || x === undefined || !Number.isFinite(x) ? '\u2013' : (x > 0 ? '+' : '') + fmt(x, d); }
  function price(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '\u2013';
    const mag = Math.floor(Math.log10(Math.abs(x) || 1));
    return fmt(x, Math.min(8, Math.max(1, 4 - mag)));
  }
  function sum(a, b) { return a === null || a === undefined || b === null || b === undefined ? null : a + b; }
  function depth25(r) { return sum(r.depth25_bid, r.depth25_ask); }
  function liq5m(r) {
    const b = r.liq5m_buy, s = r.liq5m_sell;
    if ((b === null || b === undefined) && (s === null || s === undefined)) return null;
    return (b || 0) + (s || 0);
  }
  function badgeList(r) {
    const out = [];
    if (r.wall && r.wall.fresh) out.push(['NEW WALL', 'wall']);
    if (r.liq_burst) out.push(['LIQ BURST', 'liq']);
    if (r.stale) out.push(['STALE', 'stale']);
    if (r.focus) out.push(['FOCUS', 'focus']);
    return out;
  }

  /* key: the sort key (URL `sort`); value(row): what it sorts by (null sorts last);
   * text(row): the cell; phone: kept on a phone; spark: the cell's sparkline;
   * num: right-aligned. Sort keys are the contract's ROW fields where a column shows
   * one, and a sum where it shows two (depth25, liq5m) or a count (badges). */
  const COLUMNS = [
    { key: 'symbol', label: 'symbol', value: function (r) { return r.symbol; },
      text: function (r) { return r.symbol.toUpperCase(); }, phone: true },
    { key: 'mid', label: 'mid', value: function (r) { return r.mid; }, text: function (r) { return price(r.mid); },
      phone: true, num: true },
    { key: 'spread_bps', label: 'spread bps \u00b7 60 s', value: function (r) { return r.spread_bps; },
      text: function (r) { return fmt(r.spread_bps, 2); }, phone: true, num: true, spark: 'spread', short: 'spread' },
    { key: 'depth10_bid', label: 'bid \u00b110 bps', value: function (r) { return r.depth10_bid; },
      text: function (r) { return money(r.depth10_bid); }, num: true },
    { key: 'depth10_ask', label: 'ask \u00b110 bps', value: function (r) { return r.depth10_ask; },
      text: function (r) { return money(r.depth10_ask); }, num: true },
    { key: 'depth25', label: 'depth \u00b125 bps \u00b7 60 s', value: depth25,
      text: function (r) { return money(depth25(r)); }, phone: true, num: true, spark: 'depth', short: 'depth \u00b125',
      title: 'bid + ask notional within 25 bps of mid (USDT)' },
    { key: 'imbalance20', label: 'imbalance', value: function (r) { return r.imbalance20; },
      text: function (r) { return signed(r.imbalance20, 2); }, phone: true, num: true, short: 'imb.',
      title: 'top-20 (bid - ask) / (bid + ask): + bids heavier, - asks heavier' },
    { key: 'wall', label: 'largest wall', value: function (r) { return r.wall ? r.wall.notional : null; },
      text: function (r) {
        const w = r.wall;
        if (!w) return '\u2013';
        return w.side.toUpperCase() + ' ' + money(w.notional) + ' \u00b7 ' + fmt(w.distance_bps, 1) + ' bps \u00b7 '
          + fmt(w.age_s, 0) + ' s';
      }, title: 'side, notional, distance from mid, age' },
    { key: 'walls', label: 'walls', value: function (r) { return r.walls; },
      text: function (r) { return r.walls === null || r.walls === undefined ? '\u2013' : String(r.walls); }, num: true },
    { key: 'liq5m', label: 'liq. 5 min buy / sell', value: liq5m,
      text: function (r) { return liq5m(r) === null ? '\u2013' : money(r.liq5m_buy) + ' / ' + money(r.liq5m_sell); },
      num: true, title: 'liquidation notional over 5 min (a lower bound): buy closes shorts, sell closes longs' },
    { key: 'funding_rate', label: 'funding', value: function (r) { return r.funding_rate; },
      text: function (r) { return r.funding_rate === null || r.funding_rate === undefined ? '\u2013' : signed(r.funding_rate * 100, 4) + ' %'; },
      num: true },
    { key: 'quote_volume_24h', label: '24 h volume', value: function (r) { return r.quote_volume_24h; },
      text: function (r) { return money(r.quote_volume_24h); }, num: true },
    { key: 'change_24h_pct', label: '24 h change', value: function (r) { return r.change_24h_pct; },
      text: function (r) { return r.change_24h_pct === null || r.change_24h_pct === undefined ? '\u2013' : signed(r.change_24h_pct, 2) + ' %'; },
      num: true },
    { key: 'badges', label: 'flags', value: function (r) { return badgeList(r).length; }, badges: true, phone: true,
      short: 'flags',
      title: 'NEW WALL (under 60 s old, 100x its side\'s median level), LIQ BURST (in the last 60 s), STALE (no book for over 5 s), FOCUS (full-depth book)' },
  ];
  const BY_KEY = new Map(COLUMNS.map(function (c) { return [c.key, c]; }));
  /* the contract's numeric ROW fields without a column of their own also sort */
  const EXTRA_KEYS = ['ts', 'depth25_bid', 'depth25_ask', 'liq5m_buy', 'liq5m_sell'];
  const DEFAULT_SORT = { key: 'quote_volume_24h', order: 'desc' };

  function sortValue(key) {
    const col = BY_KEY.get(key);
    if (col) return col.value;
    return function (r) { return r[key]; };
  }

  function validKey(key) { return BY_KEY.has(key) || EXTRA_KEYS.includes(key); }

  /* ------------------------------------------------------------ state */

  const st = {
    apiBase: '', bases: [], baseIndex: 0,
    rows: new Map(),          // symbol -> { data, hist: {spread, depth}, tr, cells, sparks, inView, dirtySpark }
    order: [],                // the symbols shown, in order
    sort: Object.assign({}, DEFAULT_SORT),
    filter: { q: '', minVolume: 0, minVolumeText: '', walls: false, liq: false },
    focusIndex: -1,           // the row with the keyboard focus (tabindex 0), in `order`
    ws: null, gen: 0, conn: 'idle', retryMs: CFG.backoffStartMs, attempts: 0, retryTimer: null,
    downSince: 0, lastMsgAt: 0, promoting: null,
    observer: null,
    stats: null,
  };

  function freshStats() {
    return { messages: 0, updates: 0, snapshots: 0, rowsApplied: 0, cellWrites: 0, moves: 0, sparksDrawn: 0,
             applyMs: 0, maxApplyMs: 0, totalApplyMs: 0, longTasks: 0, longTaskMs: 0, gets: 0, firstGetMs: null,
             applies: [] };   // the last statsKept apply durations (ms), for the benchmark
  }
  st.stats = freshStats();

  /* ------------------------------------------------------------ API address */

  function originOf(configured) {
    const url = new URL(configured);
    if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = window.location.hostname;
    return url.origin;
  }

  function setBases(configured) {
    st.bases = String(configured).split(',').map(function (u) { return u.trim(); }).filter(Boolean).map(originOf);
    st.baseIndex = 0;
    st.apiBase = st.bases[0];
  }

  function nextApi() {
    if (st.bases.length < 2) return;
    st.baseIndex = (st.baseIndex + 1) % st.bases.length;
    st.apiBase = st.bases[st.baseIndex];
  }

  /* ------------------------------------------------------------ the table */

  function buildHead() {
    const tr = byId('scr-head-row');
    for (const col of COLUMNS) {
      const th = el('th', col.phone ? 'key' : 'opt');
      th.scope = 'col';
      th.dataset.col = col.key;
      if (col.num) th.classList.add('num');
      const button = el('button', 'sort');
      button.type = 'button';
      button.dataset.sort = col.key;
      button.append(el('span', 'label', col.label), el('span', 'label-short', col.short || col.label),
                    el('span', 'arrow'));
      button.setAttribute('aria-label', 'sort by ' + col.label.replace(/ \u00b7 60 s$/, ''));
      if (col.title) th.title = col.title;
      button.addEventListener('click', function () { sortBy(col.key); });
      th.appendChild(button);
      tr.appendChild(th);
    }
  }

  /* The headers say the sort: an arrow in text and aria-sort, never colour alone. */
  function renderSortHeads() {
    for (const th of byId('scr-head-row').children) {
      const on = th.dataset.col === st.sort.key;
      const want = on ? (st.sort.order === 'asc' ? 'ascending' : 'descending') : 'none';
      th.setAttribute('aria-sort', want);
      th.classList.toggle('sorted', on);
      th.querySelector('.arrow').textContent = on ? (st.sort.order === 'asc' ? ' \u25b2' : ' \u25bc') : '';
    }
  }

  function makeRow(symbol) {
    const tr = el('tr');
    tr.dataset.symbol = symbol;
    tr.tabIndex = -1;
    const cells = {};
    const sparks = {};
    for (const col of COLUMNS) {
      const td = el(col.key === 'symbol' ? 'th' : 'td', col.phone ? 'key' : 'opt');
      if (col.key === 'symbol') td.scope = 'row';
      td.dataset.col = col.key;
      if (col.num) td.classList.add('num');
      const text = el('span', 'v');
      td.appendChild(text);
      if (col.spark) {
        const canvas = el('canvas', 'spark');
        canvas.width = Math.round(CFG.sparkW * (window.devicePixelRatio || 1));
        canvas.height = Math.round(CFG.sparkH * (window.devicePixelRatio || 1));
        canvas.setAttribute('aria-hidden', 'true');
        td.appendChild(canvas);
        sparks[col.spark] = canvas;
      }
      tr.appendChild(td);
      cells[col.key] = { td: td, text: text, last: null };
    }
    const row = { data: null, hist: { spread: [], depth: [] }, tr: tr, cells: cells, sparks: sparks,
                  inView: !st.observer, dirty: true, dirtySpark: true, shown: false };
    tr.addEventListener('click', function () { promote(symbol); });
    tr.addEventListener('focus', function () {
      const i = st.order.indexOf(symbol);
      if (i >= 0) setRowFocus(i, false);
    });
    if (st.observer) st.observer.observe(tr);
    return row;
  }

  /* Write the row's cells whose text changed; flags as badges with words. Only rows on
   * (or near) the screen are written; the others when they come into view. */
  function renderRow(row) {
    if (!row.inView || !row.shown) return;
    row.dirty = false;
    const r = row.data;
    for (const col of COLUMNS) {
      const cell = row.cells[col.key];
      if (col.badges) {
        const list = badgeList(r);
        const key = list.map(function (b) { return b[0]; }).join('|');
        if (cell.last !== key) {
          cell.last = key;
          cell.text.replaceChildren.apply(cell.text, list.map(function (b) { return el('span', 'flag flag-' + b[1], b[0]); }));
          st.stats.cellWrites += 1;
        }
        continue;
      }
      const text = col.text(r);
      if (cell.last !== text) {
        cell.last = text;
        cell.text.textContent = text;
        st.stats.cellWrites += 1;
      }
    }
    const fresh = Boolean(r.wall && r.wall.fresh);
    if (row.tr.classList.contains('fresh-wall') !== fresh) row.tr.classList.toggle('fresh-wall', fresh);
    const burst = Boolean(r.liq_burst);
    if (row.tr.classList.contains('liq-burst') !== burst) row.tr.classList.toggle('liq-burst', burst);
    const stale = Boolean(r.stale);
    if (row.tr.classList.contains('stale') !== stale) row.tr.classList.toggle('stale', stale);
    const label = r.symbol.toUpperCase() + (stale ? ', stale' : '') + ': open in the full dashboard';
    if (row.tr.getAttribute('aria-label') !== label) row.tr.setAttribute('aria-label', label);
  }

  /* ------------------------------------------------------------ sparklines */

  function pushHist(row) {
    const r = row.data;
    const h = row.hist;
    h.spread.push(r.spread_bps === undefined ? null : r.spread_bps);
    h.depth.push(depth25(r));
    while (h.spread.length > CFG.histLen) h.spread.shift();
    while (h.depth.length > CFG.histLen) h.depth.shift();
    row.dirtySpark = true;
  }

  function drawSpark(canvas, values) {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (v !== null && Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (lo === Infinity) return;
    const span = hi - lo || 1;
    const pad = 1.5 * (window.devicePixelRatio || 1);
    const step = (w - 2 * pad) / Math.max(1, CFG.histLen - 1);
    const x0 = w - pad - (values.length - 1) * step;   // newest point at the right edge
    ctx.strokeStyle = '#7e8ce0';
    ctx.lineWidth = window.devicePixelRatio || 1;
    ctx.beginPath();
    let drawing = false;
    values.forEach(function (v, i) {
      if (v === null || !Number.isFinite(v)) { drawing = false; return; }
      const x = x0 + i * step;
      const y = h - pad - ((v - lo) / span) * (h - 2 * pad);
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  }

  function drawSparks(row) {
    if (!row.inView || !row.shown || !row.dirtySpark) return;
    row.dirtySpark = false;
    if (row.sparks.spread) drawSpark(row.sparks.spread, row.hist.spread);
    if (row.sparks.depth) drawSpark(row.sparks.depth, row.hist.depth);
    st.stats.sparksDrawn += 1;
  }

  function watchRows() {
    if (!('IntersectionObserver' in window)) return;
    st.observer = new IntersectionObserver(function (entries) {
      for (const entry of entries) {
        const row = st.rows.get(entry.target.dataset.symbol);
        if (!row) continue;
        row.inView = entry.isIntersecting;
        if (row.inView) {
          if (row.dirty) renderRow(row);
          drawSparks(row);
        }
      }
    }, { rootMargin: '200px 0px' });
  }

  /* ------------------------------------------------------------ filter and order */

  function passes(r) {
    const f = st.filter;
    if (f.q && r.symbol.indexOf(f.q) < 0) return false;
    if (f.minVolume > 0 && !(r.quote_volume_24h !== null && r.quote_volume_24h >= f.minVolume)) return false;
    if (f.walls && !r.wall) return false;
    if (f.liq && !((r.liq5m_buy || 0) + (r.liq5m_sell || 0) > 0 || r.liq_burst)) return false;
    return true;
  }

  /* The rows' order: the sort key (null last whatever the order), then the symbol. */
  function compareRows(a, b) {
    const value = sortValue(st.sort.key);
    const va = value(a), vb = value(b);
    const na = va === null || va === undefined || (typeof va === 'number' && !Number.isFinite(va));
    const nb = vb === null || vb === undefined || (typeof vb === 'number' && !Number.isFinite(vb));
    if (na !== nb) return na ? 1 : -1;
    if (!na && va !== vb) {
      const c = va < vb ? -1 : 1;
      return st.sort.order === 'asc' ? c : -c;
    }
    return a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0;
  }

  /* Put the shown rows in order, moving only those out of place. */
  function reorder() {
    const list = [];
    for (const row of st.rows.values()) if (passes(row.data)) list.push(row.data);
    list.sort(compareRows);
    const symbols = list.map(function (r) { return r.symbol; });
    const focused = st.focusIndex >= 0 ? st.order[st.focusIndex] : null;
    const body = byId('scr-body');
    const want = new Set(symbols);
    for (const sym of st.order) {
      const row = st.rows.get(sym);
      if (row && !want.has(sym) && row.shown) { row.tr.remove(); row.shown = false; }
    }
    let cursor = body.firstElementChild;
    for (const sym of symbols) {
      const row = st.rows.get(sym);
      if (cursor === row.tr) { cursor = cursor.nextElementSibling; continue; }
      body.insertBefore(row.tr, cursor);
      st.stats.moves += 1;
      if (!row.shown) { row.shown = true; row.dirtySpark = true; }
    }
    while (cursor) { const next = cursor.nextElementSibling; cursor.remove(); cursor = next; }
    st.order = symbols;
    st.focusIndex = focused === null ? -1 : symbols.indexOf(focused);
    fixTabStop();
    const total = st.rows.size;
    const text = symbols.length === total ? total + ' symbols' : symbols.length + ' of ' + total + ' symbols';
    const count = byId('scr-count');
    if (count.textContent !== text) count.textContent = text;
  }

  /* One row is reachable with Tab (the focused one, else the first). */
  function fixTabStop() {
    const body = byId('scr-body');
    const want = st.focusIndex >= 0 ? st.order[st.focusIndex] : st.order[0];
    const current = body.querySelector('tr[tabindex="0"]');
    if (current && current.dataset.symbol === want) return;
    if (current) current.tabIndex = -1;
    const row = want ? st.rows.get(want) : null;
    if (row) row.tr.tabIndex = 0;
  }

  function setRowFocus(i, move) {
    if (!st.order.length) return;
    i = Math.max(0, Math.min(st.order.length - 1, i));
    st.focusIndex = i;
    fixTabStop();
    const row = st.rows.get(st.order[i]);
    if (move && row && document.activeElement !== row.tr) {
      row.tr.focus({ preventScroll: true });
      row.tr.scrollIntoView({ block: 'nearest', behavior: LIQ.dom.scrollBehaviour() });
    }
  }

  /* ------------------------------------------------------------ applying data */

  function upsert(r, withHist) {
    let row = st.rows.get(r.symbol);
    if (!row) {
      row = makeRow(r.symbol);
      st.rows.set(r.symbol, row);
    }
    if (withHist) {
      row.hist.spread = (r.spread_hist || []).slice(-CFG.histLen);
      row.hist.depth = (r.depth25_hist || []).slice(-CFG.histLen);
      row.dirtySpark = true;
    }
    const data = Object.assign({}, r);
    delete data.spread_hist;
    delete data.depth25_hist;
    row.data = data;
    row.dirty = true;
    st.stats.rowsApplied += 1;
    renderRow(row);
    return row;
  }

  function removeRow(symbol) {
    const row = st.rows.get(symbol);
    if (!row) return;
    if (st.observer) st.observer.unobserve(row.tr);
    row.tr.remove();
    st.rows.delete(symbol);
  }

  function finishApply(t0) {
    reorder();
    drawVisible();
    const ms = performance.now() - t0;
    st.stats.applyMs = ms;
    st.stats.totalApplyMs += ms;
    if (ms > st.stats.maxApplyMs) st.stats.maxApplyMs = ms;
    st.stats.applies.push(ms);
    if (st.stats.applies.length > CFG.statsKept) st.stats.applies.shift();
    byId('scr-root').dataset.rows = String(st.rows.size);
  }

  function applyGet(body) {
    const t0 = performance.now();
    const seen = new Set();
    for (const r of body.rows || []) { upsert(r, true); seen.add(r.symbol); }
    for (const sym of Array.from(st.rows.keys())) if (!seen.has(sym)) removeRow(sym);
    finishApply(t0);
    if (st.stats.firstGetMs === null) st.stats.firstGetMs = performance.now() - t0;
  }

  function applySnapshot(msg) {
    const t0 = performance.now();
    const seen = new Set();
    for (const r of msg.rows || []) { upsert(r, false); seen.add(r.symbol); }
    for (const sym of Array.from(st.rows.keys())) if (!seen.has(sym)) removeRow(sym);
    st.stats.snapshots += 1;
    finishApply(t0);
  }

  /* Changed rows and removed symbols; then a point a second on every sparkline (a row
   * that did not change keeps its value for that second). */
  function applyUpdate(msg) {
    const t0 = performance.now();
    for (const sym of msg.removed || []) removeRow(sym);
    for (const r of msg.rows || []) upsert(r, false);
    for (const row of st.rows.values()) pushHist(row);
    st.stats.updates += 1;
    finishApply(t0);
  }

  /* ------------------------------------------------------------ the connection */

  const CONN_TEXT = { idle: 'idle', connecting: 'connecting\u2026', connected: 'connected',
                      reconnecting: 'reconnecting', disconnected: 'disconnected' };

  function setConn(state, detail) {
    st.conn = state;
    const node = byId('scr-conn');
    const text = CONN_TEXT[state] + (detail && state !== 'connected' ? ' ' + detail : '');
    if (node.textContent !== text) node.textContent = text;
    node.className = 'conn conn-' + state;
    byId('scr-root').dataset.conn = state;
  }

  function closeSocket() {
    st.gen += 1;
    if (st.ws) { try { st.ws.close(1000, 'reconnecting'); } catch (e) { /* closed */ } }
    st.ws = null;
  }

  /* Rows with their histories first (GET), then the socket. */
  function connect() {
    clearTimeout(st.retryTimer);
    closeSocket();
    const gen = st.gen;
    if (st.attempts) setConn(st.conn === 'disconnected' ? 'disconnected' : 'reconnecting', 'attempt ' + st.attempts);
    else setConn('connecting', '');
    fetch(st.apiBase + '/screener?limit=' + CFG.limit)
      .then(function (r) {
        if (!r.ok) throw new Error('GET /screener answered ' + r.status);
        return r.json();
      })
      .then(function (body) {
        if (gen !== st.gen) return;
        st.stats.gets += 1;
        applyGet(body);
        open(gen);
      })
      .catch(function (e) { if (gen === st.gen) scheduleReconnect(String(e.message || e), false); });
  }

  function open(gen) {
    const ws = new WebSocket(st.apiBase.replace(/^http/, 'ws') + '/ws/screener');
    st.ws = ws;
    ws.onmessage = function (ev) { if (gen === st.gen) onMessage(ev); };
    ws.onclose = function (ev) {
      if (gen === st.gen) scheduleReconnect(ev.reason || 'closed (' + ev.code + ')', ev.code === 1008);
    };
    ws.onerror = function () { /* onclose follows */ };
  }

  function scheduleReconnect(why, final) {
    closeSocket();
    if (!st.downSince) st.downSince = Date.now();
    if (final) { setConn('disconnected', '(' + why + ')'); return; }
    nextApi();
    const delay = st.retryMs;
    st.retryMs = Math.min(st.retryMs * 2, CFG.backoffMaxMs);
    st.attempts += 1;
    const down = Date.now() - st.downSince >= CFG.disconnectedAfterMs;
    setConn(down ? 'disconnected' : 'reconnecting', 'retrying in ' + (delay / 1000).toFixed(1) + ' s (' + why + ')');
    st.retryTimer = setTimeout(connect, delay);
  }

  function onMessage(ev) {
    st.lastMsgAt = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    st.stats.messages += 1;
    if (msg.type === 'snapshot') {
      st.retryMs = CFG.backoffStartMs;
      st.attempts = 0;
      st.downSince = 0;
      setConn('connected', '');
      applySnapshot(msg);
    } else if (msg.type === 'update') {
      applyUpdate(msg);
    }
  }

  function tick() {
    const age = byId('scr-age');
    let text = 'no data yet';
    if (st.lastMsgAt) text = 'updated ' + ((Date.now() - st.lastMsgAt) / 1000).toFixed(1) + ' s ago';
    if (age.textContent !== text) age.textContent = text;
    if (st.ws && st.conn === 'connected' && st.lastMsgAt && Date.now() - st.lastMsgAt > CFG.staleAfterMs) {
      scheduleReconnect('no message for ' + (CFG.staleAfterMs / 1000) + ' s', false);
    }
  }

  /* ------------------------------------------------------------ promotion */

  function showMessage(text) {
    const box = byId('scr-message');
    box.textContent = text;
    box.hidden = !text;
  }

  /* POST /focus/<symbol>, then the full dashboard at it; a refusal is shown. */
  function promote(symbol) {
    if (st.promoting) return;
    st.promoting = symbol;
    showMessage('');
    byId('scr-root').dataset.promoting = symbol;
    fetch(st.apiBase + '/focus/' + encodeURIComponent(symbol), { method: 'POST' })
      .then(function (r) {
        if (r.ok) {
          window.location.assign('/?symbol=' + encodeURIComponent(symbol));
          return null;
        }
        return r.json().catch(function () { return {}; }).then(function (body) {
          const why = (body && (body.error || body.detail)) || ('HTTP ' + r.status);
          throw new Error(why);
        });
      })
      .catch(function (e) {
        showMessage('Cannot open ' + symbol.toUpperCase() + ' in the full dashboard: ' + (e.message || e));
        st.promoting = null;
        delete byId('scr-root').dataset.promoting;
      });
  }

  /* ------------------------------------------------------------ sort, filters, URL */

  function sortBy(key) {
    if (st.sort.key === key) st.sort.order = st.sort.order === 'asc' ? 'desc' : 'asc';
    else st.sort = { key: key, order: key === 'symbol' ? 'asc' : 'desc' };
    renderSortHeads();
    reorder();
    drawVisible();
    writeUrl();
  }

  /* The rows on screen: their cells if they changed while away or hidden, their sparklines. */
  function drawVisible() {
    for (const sym of st.order) {
      const row = st.rows.get(sym);
      if (!row.inView) continue;
      if (row.dirty) renderRow(row);
      drawSparks(row);
    }
  }

  /* A plain number (1e7 and 10000000 both), at least 0; empty is no minimum. */
  function parseVolume(text) {
    const t = String(text || '').trim();
    if (!t) return 0;
    if (!/^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?$/i.test(t)) return null;
    const v = Number(t);
    return Number.isFinite(v) && v >= 0 ? v : null;
  }

  function readFilters() {
    const f = st.filter;
    f.q = byId('scr-q').value.trim().toLowerCase();
    const text = byId('scr-min-volume').value;
    const v = parseVolume(text);
    const input = byId('scr-min-volume');
    if (v === null) {
      input.setAttribute('aria-invalid', 'true');
      byId('scr-filter-msg').textContent = 'minimum volume: a number of USDT such as 1e7 (not applied)';
    } else {
      input.removeAttribute('aria-invalid');
      byId('scr-filter-msg').textContent = '';
      f.minVolume = v;
      f.minVolumeText = text.trim();
    }
    f.walls = byId('scr-walls').checked;
    f.liq = byId('scr-liq').checked;
  }

  function onFilter() {
    readFilters();
    reorder();
    drawVisible();
    writeUrl();
  }

  function readUrl() {
    const q = new URLSearchParams(window.location.search);
    const key = q.get('sort');
    const order = q.get('order');
    if (key && validKey(key)) st.sort.key = key;
    if (order === 'asc' || order === 'desc') st.sort.order = order;
    else if (key && validKey(key)) st.sort.order = key === 'symbol' ? 'asc' : 'desc';
    byId('scr-q').value = q.get('q') || '';
    byId('scr-min-volume').value = q.get('min_volume') || '';
    byId('scr-walls').checked = q.get('walls') === '1';
    byId('scr-liq').checked = q.get('liq') === '1';
    readFilters();
  }

  function writeUrl() {
    const f = st.filter;
    const parts = ['sort=' + encodeURIComponent(st.sort.key), 'order=' + st.sort.order];
    if (f.q) parts.push('q=' + encodeURIComponent(f.q));
    if (f.minVolume > 0) parts.push('min_volume=' + encodeURIComponent(f.minVolumeText));
    if (f.walls) parts.push('walls=1');
    if (f.liq) parts.push('liq=1');
    const search = '?' + parts.join('&');
    if (search !== window.location.search) window.history.replaceState(null, '', search);
  }

  /* ------------------------------------------------------------ keyboard */

  function onKeyDown(ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    const target = ev.target;
    if (LIQ.keys.typing(target)) {
      if (ev.key === 'Escape' && target.id === 'scr-q') { target.blur(); ev.preventDefault(); }
      if (ev.key === 'ArrowDown' && target.id === 'scr-q' && st.order.length) { setRowFocus(0, true); ev.preventDefault(); }
      return;
    }
    const onRow = target && target.tagName === 'TR' && target.dataset.symbol;
    if (ev.key === '/') { byId('scr-q').focus(); byId('scr-q').select(); ev.preventDefault(); return; }
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      if (target && (target.tagName === 'BUTTON' || target.tagName === 'A' || target.tagName === 'INPUT') && !onRow) {
        if (target.tagName !== 'BUTTON' || !target.classList.contains('sort')) return;
      }
      const base = st.focusIndex >= 0 ? st.focusIndex : -1;
      setRowFocus(ev.key === 'ArrowDown' ? base + 1 : Math.max(0, base - 1), true);
      ev.preventDefault();
      return;
    }
    if (ev.key === 'Home' && onRow) { setRowFocus(0, true); ev.preventDefault(); return; }
    if (ev.key === 'End' && onRow) { setRowFocus(st.order.length - 1, true); ev.preventDefault(); return; }
    if (ev.key === 'Enter' && onRow) { promote(target.dataset.symbol); ev.preventDefault(); }
  }

  /* ------------------------------------------------------------ start */

  function observeLongTasks() {
    try {
      const obs = new PerformanceObserver(function (list) {
        for (const entry of list.getEntries()) { st.stats.longTasks += 1; st.stats.longTaskMs += entry.duration; }
      });
      obs.observe({ type: 'longtask', buffered: true });
    } catch (e) { /* not supported */ }
  }

  function start() {
    const root = byId('scr-root');
    if (!root) return;
    setBases(root.dataset.apiUrl);
    buildHead();
    readUrl();
    renderSortHeads();
    writeUrl();
    watchRows();
    observeLongTasks();
    byId('scr-filters').addEventListener('submit', function (ev) { ev.preventDefault(); });
    byId('scr-q').addEventListener('input', onFilter);
    byId('scr-min-volume').addEventListener('input', onFilter);
    byId('scr-walls').addEventListener('change', onFilter);
    byId('scr-liq').addEventListener('change', onFilter);
    document.addEventListener('keydown', onKeyDown);
    setInterval(tick, 500);
    connect();
  }

  window.SCREENER = {
    /* for tests and the benchmark */
    debug: function () {
      return {
        conn: st.conn, attempts: st.attempts, rows: st.rows.size, shown: st.order.length, order: st.order.slice(),
        sort: Object.assign({}, st.sort), filter: Object.assign({}, st.filter), promoting: st.promoting,
        focus: st.focusIndex >= 0 ? st.order[st.focusIndex] : null,
        inView: Array.from(st.rows.values()).filter(function (r) { return r.inView && r.shown; }).length,
        dirty: Array.from(st.rows.values()).filter(function (r) { return r.dirty; }).length,
        stats: Object.assign({}, st.stats, { applies: st.stats.applies.slice() }),
      };
    },
    resetStats: function () { st.stats = freshStats(); },
    hist: function (symbol) {
      const row = st.rows.get(symbol);
      return row ? { spread: row.hist.spread.slice(), depth: row.hist.depth.slice() } : null;
    },
    columns: COLUMNS.map(function (c) { return { key: c.key, label: c.label, phone: Boolean(c.phone) }; }),
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(window.LIQ);
