/*
 * Order book liquidity dashboard: the browser side.
 *
 * The page is a client of the public API. It opens ws://<api>/ws/<symbol> itself,
 * keeps the last 180 s of frames in bounded arrays and draws them straight into the
 * DOM (ladder, metrics, alerts, feed) and with Plotly.react (heatmap + volume
 * profile, depth curve, 3D surface, impact curve). No Dash server callback runs per
 * tick. Everything lives in one namespace: window.dash_clientside.liq.
 */
(function () {
  'use strict';

  const CFG = {
    windowS: 180,            // history kept and drawn, seconds
    columnS: 0.5,            // heatmap time bucket: frames closer than this share a column
    ladderLevels: 10,
    maxAlerts: 50,
    maxTrades: 4000,
    maxHeatRows: 360,        // price bins drawn on the heatmap
    heavyEveryMs: 900,       // heatmap + profile: at most about once a second
    depthEveryMs: 200,       // depth curve: at most 5 redraws a second (the newest frame is always drawn)
    maxGapCols: 4,           // heatmap: a hole longer than this many grid steps is left empty
    surfaceEveryMs: 5000,    // 3D surface: at most every 5 s, never two at once
    surfaceCols: 45,
    surfaceRows: 60,
    backoffStartMs: 500,
    backoffMaxMs: 10000,
    staleAfterMs: 15000,     // no message for this long on an open socket: reconnect
    healthEveryMs: 10000,
    disconnectedAfterMs: 30000,  // a socket down this long is shown as disconnected (retries go on)
    impactEveryMs: 2000,     // impact panel: re-walk the book at most this often, one request in flight
    impactNotional: 100000,  // default size: about this many USDT at mid, rounded to 1-2-5 (BTC ~1, ETH ~20-50)
    impactSteps: [0.1, 0.2, 0.5, 1, 2, 5, 10],   // curve sizes, in default sizes (BTC: 0.1 .. 10 BTC)
    statsKept: 2000,
  };

  const COLOR = {
    bid: '#26a69a', ask: '#ef5350', wall: '#ff9800', text: '#c9d1d9', muted: '#8b949e',
    grid: '#21262d', panel: '#161b22', profile: '#7e8ce0',
  };

  const HEAT_SCALE = [
    [0, '#0d1117'], [0.08, '#0b2a4a'], [0.25, '#1565c0'], [0.5, '#00acc1'],
    [0.75, '#fdd835'], [0.92, '#ff7043'], [1, '#ffffff'],
  ];

  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d', 'select2d'] };

  const S = {
    config: null,
    apiBase: '',
    symbol: null,
    ws: null,
    wsGen: 0,
    conn: 'idle',
    connDetail: '',
    retryMs: CFG.backoffStartMs,
    attempts: 0,
    retryTimer: null,
    retryAt: 0,
    downSince: 0,
    lastMsgAt: 0,
    health: null,
    timers: [],
    ladder: null,
    feedCells: null,
    textCache: new Map(),
    surfaceBusy: false,
    heatPending: false,
    depthTimer: null,
    lastDepth: 0,
    inHandler: false,
    surfaceVisible: true,
    surfaceStale: false,
    surfaceObserver: null,
    layouts: {},
    lastHeavy: 0,
    lastSurface: 0,
    stats: null,
    impact: {
      side: 'buy', size: null, auto: null, gen: 0, inFlight: false, again: false, lastAt: 0,
      clicks: 0, submits: 0, rejected: false, requests: 0, maxInFlight: 0, inFlightNow: 0,
      visible: true, observer: null, skipped: 0,
    },
  };

  /* ---------------------------------------------------------------- state */

  function freshData() {
    return {
      last: null, prevMid: null, decimals: 2, columns: [], series: { t: [], bid: [], ask: [] },
      trades: [], alerts: [], alertsDirty: true, profile: null,
    };
  }

  function freshStats() {
    return {
      frames: 0, totalMs: 0, maxMs: 0, recent: [], longTasks: 0, longTaskMs: 0, panels: {},
      surfaceDraws: 0, surfaceMs: 0, historyMs: 0, deferredMs: 0, surfaceSkipped: 0,
    };
  }

  let D = freshData();

  /* ---------------------------------------------------------------- small DOM helpers */

  function byId(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function setText(id, text, cls) {
    const key = text + '|' + (cls || '');
    if (S.textCache.get(id) === key) return;
    const node = byId(id);
    if (!node) return;
    S.textCache.set(id, key);
    node.textContent = text;
    if (cls !== undefined) node.className = cls;
  }

  /* ---------------------------------------------------------------- number formats */

  const formats = new Map();

  function fmt(x, decimals) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '\u2013';
    let f = formats.get(decimals);
    if (!f) {
      f = new Intl.NumberFormat('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
      formats.set(decimals, f);
    }
    return f.format(x);
  }

  function fmtPrice(x) { return fmt(x, D.decimals); }

  function fmtQty(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '\u2013';
    return fmt(x, Math.abs(x) >= 1000 ? 0 : 3);
  }

  function decimalsOf(x) {
    for (let d = 0; d <= 8; d += 1) {
      const scaled = x * Math.pow(10, d);
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, Math.abs(scaled) * 1e-9)) return d;
    }
    return 8;
  }

  function inferDecimals(frame) {
    let d = 0;
    const levels = (frame.bid_levels || []).slice(0, 5).concat((frame.ask_levels || []).slice(0, 5));
    for (const lv of levels) d = Math.max(d, decimalsOf(lv[0]));
    return levels.length ? d : D.decimals;
  }

  function dirClass(x) {
    if (x === null || x === undefined || !Number.isFinite(x) || x === 0) return 'v';
    return x > 0 ? 'v up' : 'v down';
  }

  function clockTime(tsSeconds) {
    const t = new Date(tsSeconds * 1000);
    return t.toLocaleTimeString('en-GB', { hour12: false });
  }

  /* ---------------------------------------------------------------- frame intake */

  function ingest(frame) {
    D.prevMid = D.last ? D.last.mid_price : null;
    D.last = frame;
    D.decimals = inferDecimals(frame);
    const t = frame.timestamp;
    addColumn(frame, t);
    addSeries(frame, t);
    for (const tr of frame.trades || []) D.trades.push(tr);
    for (const a of frame.alerts || []) D.alerts.unshift(a);
    if ((frame.alerts || []).length) D.alertsDirty = true;
    if (frame.volume_profile) D.profile = frame.volume_profile;
    trim(t);
  }

  function addColumn(frame, t) {
    const hm = frame.heatmap;
    if (!hm || !hm.sizes || !hm.sizes.length) return;
    const col = { t: t, bin0: hm.bin0, binSize: hm.bin_size, sizes: hm.sizes };
    const cols = D.columns;
    const prev = cols[cols.length - 1];
    if (prev && t - prev.t0 < CFG.columnS) {
      col.t0 = prev.t0;
      cols[cols.length - 1] = col;   // same bucket: keep the newest picture
    } else {
      col.t0 = t;
      cols.push(col);
    }
  }

  function addSeries(frame, t) {
    const s = D.series;
    s.t.push(t * 1000);
    s.bid.push(frame.best_bid);
    s.ask.push(frame.best_ask);
  }

  function trim(now) {
    const cutoff = now - CFG.windowS;
    let n = 0;
    while (n < D.columns.length && D.columns[n].t < cutoff) n += 1;
    if (n) D.columns.splice(0, n);
    n = 0;
    while (n < D.series.t.length && D.series.t[n] < cutoff * 1000) n += 1;
    if (n) { D.series.t.splice(0, n); D.series.bid.splice(0, n); D.series.ask.splice(0, n); }
    n = 0;
    while (n < D.trades.length && D.trades[n].ts < cutoff) n += 1;
    if (D.trades.length - n > CFG.maxTrades) n = D.trades.length - CFG.maxTrades;
    if (n) D.trades.splice(0, n);
    if (D.alerts.length > CFG.maxAlerts) D.alerts.length = CFG.maxAlerts;
  }

  /* ---------------------------------------------------------------- socket */

  /* A server bound to every interface (0.0.0.0 / ::) is reached on the host the page came from. */
  function apiBase(configured) {
    const url = new URL(configured);
    if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = window.location.hostname;
    return url.origin;
  }

  function wsUrl(symbol) {
    return S.apiBase.replace(/^http/, 'ws') + '/ws/' + encodeURIComponent(symbol);
  }

  function apiUrl(path) {
    return S.apiBase + path;
  }

  function closeSocket() {
    S.wsGen += 1;            // late events of the old socket are ignored
    if (S.ws) {
      try { S.ws.close(1000, 'switching'); } catch (e) { /* already closed */ }
    }
    S.ws = null;
  }

  function connect() {
    clearTimeout(S.retryTimer);
    closeSocket();
    const gen = S.wsGen;
    const ws = new WebSocket(wsUrl(S.symbol));
    S.ws = ws;
    if (S.attempts) setConn(S.conn === 'disconnected' ? 'disconnected' : 'reconnecting', 'attempt ' + S.attempts);
    else setConn('connecting', '');
    ws.onmessage = function (ev) { if (gen === S.wsGen) onMessage(ev); };
    ws.onclose = function (ev) {
      if (gen === S.wsGen) scheduleReconnect(ev.reason || 'closed (' + ev.code + ')', ev.code === 1008);
    };
    ws.onerror = function () { /* onclose follows and reconnects */ };
  }

  /* Retry with backoff. The banner says "reconnecting" while retries are young and
   * "disconnected" once the socket has been down for disconnectedAfterMs, or at once
   * when the server refused the symbol (close code 1008: retrying cannot help). */
  function scheduleReconnect(why, final) {
    closeSocket();
    if (!S.downSince) S.downSince = Date.now();
    if (final) {
      S.retryAt = 0;
      setConn('disconnected', '(' + why + ')');
      return;
    }
    const delay = S.retryMs;
    S.retryMs = Math.min(S.retryMs * 2, CFG.backoffMaxMs);
    S.attempts += 1;
    S.retryAt = Date.now() + delay;
    const down = Date.now() - S.downSince >= CFG.disconnectedAfterMs;
    setConn(down ? 'disconnected' : 'reconnecting', 'retrying in ' + (delay / 1000).toFixed(1) + ' s (' + why + ')');
    S.retryTimer = setTimeout(connect, delay);
  }

  function onMessage(ev) {
    const t0 = performance.now();
    S.lastMsgAt = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.symbol && msg.symbol !== S.symbol) return;
    if (msg.type === 'history') {
      D = freshData();
      for (const f of msg.frames || []) ingest(f);
      S.retryMs = CFG.backoffStartMs;
      S.attempts = 0;
      S.downSince = 0;
      setConn('connected', '');
      renderAll(true);
      S.stats.historyMs = performance.now() - t0;
      refreshHealth();
      maybeImpact(true);
      return;
    }
    if (msg.type !== 'frame') return;
    S.inHandler = true;
    try {
      ingest(msg);
      renderAll(false);
    } finally {
      S.inHandler = false;
    }
    record(performance.now() - t0);
    maybeImpact(false);
  }

  function record(ms) {
    const st = S.stats;
    st.frames += 1;
    st.totalMs += ms;
    st.maxMs = Math.max(st.maxMs, ms);
    st.recent.push(ms);
    if (st.recent.length > CFG.statsKept) st.recent.splice(0, st.recent.length - CFG.statsKept);
  }

  /* ---------------------------------------------------------------- render: dispatch */

  /* Every panel draw goes through here. Work done outside the frame handler (heatmap,
   * surface, throttled depth redraws) is also summed in stats.deferredMs, so
   * handler + deferred is all the drawing work the page did. */
  function timed(name, fn) {
    const t0 = performance.now();
    fn();
    const p = S.stats.panels;
    const entry = p[name] || (p[name] = { calls: 0, ms: 0, maxMs: 0 });
    const ms = performance.now() - t0;
    entry.calls += 1;
    entry.ms += ms;
    entry.maxMs = Math.max(entry.maxMs, ms);
    if (!S.inHandler) S.stats.deferredMs += ms;
  }

  function renderAll(force) {
    if (!D.last) return;
    timed('metrics', renderMetrics);
    timed('ladder', renderLadder);
    scheduleDepth(force);
    timed('feed', renderFeed);
    timed('sync', renderSync);
    renderConn();
    if (D.alertsDirty) timed('alerts', renderAlerts);
    scheduleHeavy(force);
  }

  /* Heavy panels run in their own tasks after the frame handler, one per task, so
   * no single task carries the heatmap and the 3D surface together. */
  /* The depth curve is drawn in the handler, but at most every depthEveryMs; a frame
   * that arrives sooner is drawn by a trailing timer, so the newest book is always shown. */
  function scheduleDepth(force) {
    const now = performance.now();
    if (force || now - S.lastDepth >= CFG.depthEveryMs) {
      clearTimeout(S.depthTimer);
      S.depthTimer = null;
      S.lastDepth = now;
      timed('depth', renderDepth);
    } else if (!S.depthTimer) {
      S.depthTimer = setTimeout(function () {
        S.depthTimer = null;
        S.lastDepth = performance.now();
        if (D.last) timed('depth', renderDepth);
      }, CFG.depthEveryMs - (now - S.lastDepth));
    }
  }

  function pageHidden() { return document.visibilityState === 'hidden'; }

  /* The 3D surface is drawn with the history and then every surfaceEveryMs while it is on
   * screen; off screen (below the fold) or in a hidden tab it is only marked stale and
   * redrawn the moment it scrolls into view. */
  function watchSurface() {
    const div = byId('surface');
    if (!div || S.surfaceObserver || typeof IntersectionObserver === 'undefined') return;
    S.surfaceObserver = new IntersectionObserver(function (entries) {
      for (const e of entries) S.surfaceVisible = e.isIntersecting;
      if (S.surfaceVisible && S.surfaceStale && D.last) scheduleSurface(true);
    });
    S.surfaceObserver.observe(div);
  }

  function scheduleSurface(force) {
    if (!S.surfaceObserver) watchSurface();
    const now = performance.now();
    if (S.surfaceBusy || (!force && now - S.lastSurface < CFG.surfaceEveryMs)) return;
    S.lastSurface = now;
    if (!force && (!S.surfaceVisible || pageHidden())) {
      S.surfaceStale = true;
      S.stats.surfaceSkipped += 1;
      return;
    }
    S.surfaceStale = false;
    S.surfaceBusy = true;
    setTimeout(function () { timed('surface', renderSurface); }, 0);
  }

  function scheduleHeavy(force) {
    const now = performance.now();
    if (!S.heatPending && (force || (now - S.lastHeavy >= CFG.heavyEveryMs && !pageHidden()))) {
      S.lastHeavy = now;
      S.heatPending = true;
      setTimeout(function () { S.heatPending = false; timed('heatmap', renderHeatmap); }, 0);
    }
    scheduleSurface(force);
  }

  /* ---------------------------------------------------------------- banner */

  /* S.conn is the socket's state: connecting, connected, reconnecting, disconnected. */
  function setConn(state, detail) {
    S.conn = state;
    S.connDetail = detail;
    const root = byId('liq-root');
    if (root) root.dataset.conn = state;
    renderConn();
  }

  function isReplay() {
    if (D.last && D.last.replay) return true;
    return sourceOf(S.health).kind === 'replay';
  }

  function replayFinished() {
    if (D.last && D.last.replay) return Boolean(D.last.replay.finished);
    return Boolean(S.health && S.health.replay && S.health.replay.finished);
  }

  /* What the banner says: the truth about the data, not only about the socket. A
   * connected socket is "connected" for live and simulated data; for a replay it is
   * "replaying", then "replay finished" (the frame's replay.finished). */
  function connStatus() {
    if (S.conn !== 'connected') return S.conn;
    if (!isReplay()) return 'connected';
    return replayFinished() ? 'finished' : 'replaying';
  }

  const CONN_TEXT = {
    connecting: 'connecting\u2026', connected: 'connected', replaying: 'replaying', finished: 'replay finished',
    reconnecting: 'reconnecting', disconnected: 'disconnected', idle: 'idle',
  };

  function renderConn() {
    const status = connStatus();
    const detail = S.conn === 'connected' ? '' : S.connDetail;
    setText('conn-status', CONN_TEXT[status] + (detail ? ' ' + detail : ''), 'conn conn-' + status);
    const root = byId('liq-root');
    if (root && root.dataset.status !== status) root.dataset.status = status;
  }

  function sourceOf(health) {
    if (health && health.source) return health.source;
    const label = S.config.source_label || '';
    const kind = /SIMULATED/i.test(label) ? 'sim' : /REPLAY/i.test(label) ? 'replay' : /LIVE/i.test(label) ? 'binance' : '';
    return { kind: kind, label: label || 'source: asking the API\u2026', reason: '' };
  }

  function renderSource() {
    const src = sourceOf(S.health);
    let label = src.label || src.kind;
    if (src.kind === 'sim' && !/SIMULATED/.test(label)) label = 'SIMULATED ' + label;
    setText('src-badge', label, 'badge src-' + (src.kind || 'unknown'));
    setText('src-reason', src.reason ? '(' + src.reason + ')' : '');
    const banner = byId('banner');
    if (banner) banner.className = 'banner banner-' + (src.kind || 'unknown');
    renderConn();
  }

  const SYNC_TEXT = { synced: 'in sync', quiet: 'in sync, quiet', resyncing: 'resyncing', stale: 'stale',
                      awaiting_snapshot: 'awaiting snapshot' };

  function renderSync() {
    const box = byId('sync-chips');
    if (!box) return;
    const states = {};
    const healthSync = (S.health && S.health.sync) || {};
    for (const sym of S.config.symbols) states[sym] = (healthSync[sym] || {}).state || 'unknown';
    if (D.last && D.last.sync) states[S.symbol] = D.last.sync.state;
    for (const sym of S.config.symbols) {
      let chip = box.querySelector('[data-symbol="' + sym + '"]');
      if (!chip) {
        chip = el('span', 'chip');
        chip.dataset.symbol = sym;
        box.appendChild(chip);
      }
      const st = states[sym];
      const text = sym.toUpperCase() + ' ' + (SYNC_TEXT[st] || st);
      if (chip.textContent !== text) chip.textContent = text;
      if (chip.dataset.state !== st) { chip.dataset.state = st; chip.className = 'chip sync-' + st; }
      chip.title = ((healthSync[sym] || {}).reason) || '';
    }
  }

  /* Age of the last message; in a replay also the recorded time being shown (UTC). */
  function renderAge() {
    if (!S.lastMsgAt) { setText('update-age', 'no data yet', 'age'); return; }
    const age = (Date.now() - S.lastMsgAt) / 1000;
    let text = 'updated ' + age.toFixed(1) + ' s ago';
    if (isReplay() && D.last) text += ' \u00b7 recorded ' + new Date(D.last.timestamp * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
    setText('update-age', text, age > 3 ? 'age age-old' : 'age');
  }

  function refreshHealth() {
    fetch(apiUrl('/health'))
      .then(function (r) { return r.json(); })
      .then(function (body) { S.health = body; renderSource(); renderSync(); })
      .catch(function () { /* the socket state already tells the story */ });
  }

  function tickClock() {
    renderAge();
    if (S.conn === 'reconnecting' && S.downSince && Date.now() - S.downSince >= CFG.disconnectedAfterMs) {
      setConn('disconnected', S.connDetail);
    }
    if (S.conn === 'connected' && S.lastMsgAt && Date.now() - S.lastMsgAt > CFG.staleAfterMs) {
      scheduleReconnect('no data for ' + CFG.staleAfterMs / 1000 + ' s');
    }
  }

  /* ---------------------------------------------------------------- metrics bar */

  function renderMetrics() {
    const f = D.last;
    const midMove = D.prevMid !== null && f.mid_price !== null ? f.mid_price - D.prevMid : null;
    setText('m-mid', fmtPrice(f.mid_price), dirClass(midMove));
    setText('m-spread', fmtPrice(f.spread) + (f.spread_bps !== null ? ' (' + fmt(f.spread_bps, 2) + ' bps)' : ''), 'v');
    const microEdge = f.microprice !== null && f.mid_price !== null ? f.microprice - f.mid_price : null;
    setText('m-micro', fmt(f.microprice, D.decimals + 2), dirClass(microEdge));
    setText('m-imb', fmt(f.imbalance, 3), dirClass(f.imbalance));
    setText('m-ofi', fmt(f.ofi, 3), dirClass(f.ofi));
    setText('m-bidvol', fmtQty(f.total_bid_volume), 'v up');
    setText('m-askvol', fmtQty(f.total_ask_volume), 'v down');
  }

  /* ---------------------------------------------------------------- ladder */

  function buildLadder() {
    const box = byId('ladder');
    box.textContent = '';
    const rows = { ask: [], bid: [] };
    const make = function (side) {
      const row = el('div', 'lrow ' + side);
      row.dataset.side = side;
      const bar = el('div', 'lbar');
      const px = el('span', 'lpx');
      const qty = el('span', 'lqty');
      row.append(bar, px, qty);
      return { row: row, bar: bar, px: px, qty: qty };
    };
    for (let i = 0; i < CFG.ladderLevels; i += 1) rows.ask.push(make('ask'));
    const mid = el('div', 'lmid');
    for (let i = 0; i < CFG.ladderLevels; i += 1) rows.bid.push(make('bid'));
    // asks: the best ask sits just above the mid row, so the list is drawn far-to-near
    for (let i = CFG.ladderLevels - 1; i >= 0; i -= 1) box.appendChild(rows.ask[i].row);
    box.appendChild(mid);
    for (const r of rows.bid) box.appendChild(r.row);
    S.ladder = { box: box, rows: rows, mid: mid };
  }

  function wallKey(side, price) {
    return side + ':' + Math.round(price * Math.pow(10, D.decimals));
  }

  function normSide(side) {
    if (side === 'buy') return 'bid';
    if (side === 'sell') return 'ask';
    return side;
  }

  function renderLadder() {
    if (!S.ladder) buildLadder();
    const f = D.last;
    const walls = new Map();
    for (const w of f.walls || []) walls.set(wallKey(normSide(w.side), w.price), w);
    const bids = (f.bid_levels || []).slice(0, CFG.ladderLevels);
    const asks = (f.ask_levels || []).slice(0, CFG.ladderLevels);
    let maxQty = 0;
    for (const lv of bids.concat(asks)) maxQty = Math.max(maxQty, lv[1]);
    fillSide(S.ladder.rows.bid, 'bid', bids, maxQty, walls);
    fillSide(S.ladder.rows.ask, 'ask', asks, maxQty, walls);
    S.ladder.mid.textContent = 'spread ' + fmtPrice(f.spread) + '  \u00b7  mid ' + fmtPrice(f.mid_price);
    const box = S.ladder.box;
    box.dataset.symbol = f.symbol;
    box.dataset.seq = String(f.seq);
    box.dataset.lastUpdateId = String((f.sync || {}).last_update_id);
    box.dataset.walls = String(walls.size);
  }

  function fillSide(rows, side, levels, maxQty, walls) {
    for (let i = 0; i < rows.length; i += 1) {
      const r = rows[i];
      const lv = levels[i];
      if (!lv) {
        r.row.dataset.price = '';
        r.row.classList.add('empty');
        r.px.textContent = '';
        r.qty.textContent = '';
        r.bar.style.width = '0%';
        continue;
      }
      const wall = walls.get(wallKey(side, lv[0]));
      r.row.classList.remove('empty');
      r.row.dataset.price = String(lv[0]);
      r.row.dataset.qty = String(lv[1]);
      r.row.dataset.wall = wall ? '1' : '0';
      r.row.classList.toggle('wall', Boolean(wall));
      r.row.title = wall ? 'wall: ' + fmt(wall.multiple, 1) + '\u00d7 median, ' + fmt(wall.age_s, 0) + ' s old' : '';
      r.px.textContent = fmtPrice(lv[0]);
      r.qty.textContent = fmtQty(lv[1]);
      r.bar.style.width = (maxQty > 0 ? (100 * lv[1]) / maxQty : 0).toFixed(1) + '%';
    }
  }

  /* ---------------------------------------------------------------- heatmap + trades + profile */

  /* The heatmap is drawn on a regular time grid (one step = the usual spacing of the
   * columns, a multiple of columnS). Each grid slot shows the newest column at or before
   * it (the book as it stood then), holes longer than maxGapCols steps stay empty. With
   * evenly spaced x and y Plotly paints one pixel per cell and scales the image
   * (its "fast" heatmap path), instead of one fillRect per cell on a canvas the size of
   * the plot. */
  function gridStep(cols) {
    const diffs = [];
    for (let i = Math.max(1, cols.length - 21); i < cols.length; i += 1) diffs.push(cols[i].t - cols[i - 1].t);
    if (!diffs.length) return CFG.columnS;
    diffs.sort(function (a, b) { return a - b; });
    const median = diffs[diffs.length >> 1];
    return Math.max(1, Math.round(median / CFG.columnS)) * CFG.columnS;
  }

  function heatGrid() {
    const cols = D.columns;
    const last = cols[cols.length - 1];
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of cols) { lo = Math.min(lo, c.bin0); hi = Math.max(hi, c.bin0 + c.sizes.length); }
    if (hi - lo > CFG.maxHeatRows) {
      lo = Math.round(last.bin0 + last.sizes.length / 2 - CFG.maxHeatRows / 2);
      hi = lo + CFG.maxHeatRows;
    }
    const rows = hi - lo;
    const step = gridStep(cols);
    const n = Math.min(Math.floor((last.t - cols[0].t) / step + 1e-9) + 1, Math.ceil(CFG.windowS / step));
    const x = new Array(n);
    const pick = new Array(n);
    let j = 0;
    for (let k = 0; k < n; k += 1) {
      const ts = last.t - (n - 1 - k) * step;
      x[k] = ts * 1000;
      while (j + 1 < cols.length && cols[j + 1].t <= ts + step / 2) j += 1;
      const c = cols[j];
      pick[k] = c.t <= ts + step / 2 && ts - c.t <= CFG.maxGapCols * step ? c : null;
    }
    const y = new Array(rows);
    const z = new Array(rows);
    for (let r = 0; r < rows; r += 1) {
      y[r] = (lo + r + 0.5) * last.binSize;
      const row = new Array(n);
      const bin = lo + r;
      for (let k = 0; k < n; k += 1) {
        const c = pick[k];
        const v = c ? c.sizes[bin - c.bin0] : undefined;
        row[k] = v === undefined ? null : v;
      }
      z[r] = row;
    }
    return { x: x, y: y, z: z, lo: lo, hi: hi, binSize: last.binSize };
  }

  function colourTop(z) {
    // the 97th percentile of recent sizes: one wall must not wash out the rest
    const sample = [];
    for (const row of z) {
      for (let c = Math.max(0, row.length - 20); c < row.length; c += 1) if (row[c] > 0) sample.push(row[c]);
    }
    if (!sample.length) return 1;
    sample.sort(function (a, b) { return a - b; });
    return sample[Math.floor(sample.length * 0.97)] || sample[sample.length - 1];
  }

  function tradeTrace(side, maxQty) {
    const x = [];
    const y = [];
    const size = [];
    for (const tr of D.trades) {
      if (tr.side !== side) continue;
      x.push(tr.ts * 1000);
      y.push(tr.price);
      size.push(4 + 22 * Math.sqrt(tr.qty / maxQty));
    }
    return {
      type: 'scattergl', mode: 'markers', name: side === 'buy' ? 'buys' : 'sells', x: x, y: y,
      marker: { size: size, color: side === 'buy' ? COLOR.bid : COLOR.ask, opacity: 0.7, line: { width: 0 } },
      hovertemplate: side + ' %{y}<extra></extra>',
    };
  }

  function profileTrace(grid) {
    const p = D.profile;
    const x = [];
    const y = [];
    if (p) {
      for (let i = 0; i < p.sizes.length; i += 1) {
        const b = p.bin0 + i;
        if (b < grid.lo || b >= grid.hi) continue;
        x.push(p.sizes[i]);
        y.push((b + 0.5) * p.bin_size);
      }
    }
    return {
      type: 'bar', orientation: 'h', name: 'volume profile', x: x, y: y, xaxis: 'x2', yaxis: 'y',
      marker: { color: COLOR.profile }, width: grid.binSize * 0.9, hovertemplate: '%{y}: %{x:.3f}<extra></extra>',
    };
  }

  function renderHeatmap() {
    const div = byId('heatmap');
    if (!div || !D.columns.length) return;
    const g = heatGrid();
    let maxQty = 1e-9;
    for (const tr of D.trades) maxQty = Math.max(maxQty, tr.qty);
    const data = [
      { type: 'heatmap', name: 'resting size', x: g.x, y: g.y, z: g.z, zmin: 0, zmax: colourTop(g.z),
        colorscale: HEAT_SCALE, showscale: false, hovertemplate: '%{y}<br>%{z:.3f}<extra></extra>' },
      { type: 'scattergl', mode: 'lines', name: 'best bid', x: D.series.t, y: D.series.bid,
        line: { color: COLOR.bid, width: 1.5, shape: 'hv' }, hoverinfo: 'skip' },
      { type: 'scattergl', mode: 'lines', name: 'best ask', x: D.series.t, y: D.series.ask,
        line: { color: COLOR.ask, width: 1.5, shape: 'hv' }, hoverinfo: 'skip' },
      tradeTrace('buy', maxQty),
      tradeTrace('sell', maxQty),
      profileTrace(g),
    ];
    const layout = keptLayout('heatmap', function () {
      return baseLayout({
        margin: { l: 64, r: 8, t: 6, b: 28 },
        xaxis: axis({ type: 'date', domain: [0, 0.85] }),
        xaxis2: axis({ domain: [0.865, 1], anchor: 'y', showticklabels: false, title: { text: '' } }),
        yaxis: axis({ tickformat: ',.' + D.decimals + 'f' }),
        bargap: 0,
      });
    });
    Plotly.react(div, data, layout, PLOT_CONFIG);
  }

  /* ---------------------------------------------------------------- depth curve */

  function cumulative(levels) {
    const x = [];
    const y = [];
    let sum = 0;
    for (const lv of levels) { sum += lv[1]; x.push(lv[0]); y.push(sum); }
    return { x: x, y: y };
  }

  function renderDepth() {
    const div = byId('depth');
    if (!div) return;
    const b = cumulative(D.last.bid_levels || []);
    const a = cumulative(D.last.ask_levels || []);
    const data = [
      { type: 'scatter', mode: 'lines', name: 'bids', x: b.x, y: b.y, fill: 'tozeroy',
        line: { color: COLOR.bid, shape: 'hv', width: 1.5 }, fillcolor: 'rgba(38,166,154,0.25)' },
      { type: 'scatter', mode: 'lines', name: 'asks', x: a.x, y: a.y, fill: 'tozeroy',
        line: { color: COLOR.ask, shape: 'hv', width: 1.5 }, fillcolor: 'rgba(239,83,80,0.25)' },
    ];
    const layout = keptLayout('depth', function () {
      return baseLayout({
        margin: { l: 48, r: 22, t: 6, b: 28 },   // room for the last x tick label (overflow 'allow')
        xaxis: axis({ tickformat: ',.' + D.decimals + 'f', nticks: 5 }),
        yaxis: axis({ title: { text: 'cumulative size', font: { size: 10 } } }),
      });
    });
    Plotly.react(div, data, layout, PLOT_CONFIG);
  }

  /* ---------------------------------------------------------------- 3D surface */

  function surfaceGrid() {
    const cols = D.columns;
    const step = Math.max(1, Math.ceil(cols.length / CFG.surfaceCols));
    const picked = [];
    for (let i = cols.length - 1; i >= 0; i -= step) picked.unshift(cols[i]);
    const last = cols[cols.length - 1];
    const lo = Math.round(last.bin0 + last.sizes.length / 2 - CFG.surfaceRows / 2);
    const now = last.t;
    const x = picked.map(function (c) { return Math.round((c.t - now) * 10) / 10; });
    const y = [];
    const z = [];
    for (let r = 0; r < CFG.surfaceRows; r += 1) {
      y.push((lo + r + 0.5) * last.binSize);
      z.push(picked.map(function (c) { const v = c.sizes[lo + r - c.bin0]; return v === undefined ? 0 : v; }));
    }
    return { x: x, y: y, z: z };
  }

  function renderSurface() {
    const div = byId('surface');
    if (!div || !D.columns.length) { S.surfaceBusy = false; return; }
    const t0 = performance.now();
    const g = surfaceGrid();
    const data = [{ type: 'surface', x: g.x, y: g.y, z: g.z, colorscale: HEAT_SCALE, showscale: false,
      hovertemplate: '%{x} s, %{y}: %{z:.3f}<extra></extra>' }];
    const layout = keptLayout('surface', function () {
      return baseLayout({
        margin: { l: 0, r: 0, t: 0, b: 0 },
        scene: {
          xaxis: sceneAxis('seconds ago'), yaxis: sceneAxis('price'), zaxis: sceneAxis('size'),
          camera: { eye: { x: -1.6, y: -1.4, z: 0.9 } }, aspectmode: 'manual', aspectratio: { x: 1.6, y: 1, z: 0.6 },
        },
      });
    });
    S.surfaceBusy = true;
    Promise.resolve(Plotly.react(div, data, layout, PLOT_CONFIG))
      .catch(function () { /* a lost WebGL context: the next redraw tries again */ })
      .then(function () {
        S.surfaceBusy = false;
        S.stats.surfaceDraws += 1;
        S.stats.surfaceMs += performance.now() - t0;
      });
  }

  /* ---------------------------------------------------------------- plot styling */

  /* ticklabeloverflow 'allow': Plotly's default ('hide past div') measures every tick
   * label against every other with getBoundingClientRect on each redraw (forced layouts,
   * about 5 ms a figure); the margins already leave room for the labels. */
  function axis(extra) {
    return Object.assign({
      gridcolor: COLOR.grid, zerolinecolor: COLOR.grid, linecolor: COLOR.grid, color: COLOR.muted,
      tickfont: { size: 10 }, ticklabeloverflow: 'allow',
    }, extra);
  }

  function sceneAxis(title) {
    return { title: { text: title }, gridcolor: '#30363d', backgroundcolor: COLOR.panel, color: COLOR.muted,
      showbackground: true };
  }

  /* One layout object per panel, rebuilt only when the symbol or the price decimals
   * change; each redraw bumps datarevision, so Plotly diffs data only. */
  function keptLayout(name, build) {
    const key = S.symbol + '|' + D.decimals;
    let kept = S.layouts[name];
    if (!kept || kept.key !== key) {
      kept = { key: key, layout: build() };
      kept.layout.datarevision = 0;
      S.layouts[name] = kept;
    }
    kept.layout.datarevision += 1;
    return kept.layout;
  }

  function baseLayout(extra) {
    return Object.assign({
      uirevision: S.symbol,          // keeps the user's zoom/pan until the symbol changes
      paper_bgcolor: COLOR.panel, plot_bgcolor: COLOR.panel, font: { color: COLOR.text, size: 11 },
      showlegend: false, hovermode: 'closest',
    }, extra);
  }

  /* ---------------------------------------------------------------- alerts */

  function detailText(details) {
    if (!details || typeof details !== 'object') return '';
    const parts = [];
    for (const k of Object.keys(details)) {
      const v = details[k];
      const shown = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : fmt(v, 3)) : JSON.stringify(v);
      parts.push(k.replace(/_/g, ' ') + ' ' + shown);
    }
    return parts.join(' \u00b7 ');
  }

  function alertNode(a) {
    const node = el('div', 'alert alert-' + a.type);
    node.dataset.type = a.type;
    node.dataset.side = a.side || '';
    node.dataset.price = a.price === null || a.price === undefined ? '' : String(a.price);
    const head = el('div', 'ahead');
    head.append(
      el('span', 'abadge', a.type),
      el('span', 'aside ' + (normSide(a.side) || ''), a.side || ''),
      el('span', 'aprice', a.price === null || a.price === undefined ? '' : fmtPrice(a.price)),
      el('span', 'atime', a.ts ? clockTime(a.ts) : ''),
    );
    node.append(head, el('div', 'adetails', detailText(a.details)));
    return node;
  }

  function renderAlerts() {
    D.alertsDirty = false;
    const box = byId('alerts');
    if (!box) return;
    box.textContent = '';
    if (!D.alerts.length) { box.appendChild(el('div', 'muted', 'no alerts in the last 180 s')); }
    for (const a of D.alerts) box.appendChild(alertNode(a));
    setText('alerts-count', String(D.alerts.length));
  }

  /* ---------------------------------------------------------------- feed health */

  const FEED_ROWS = [
    ['messages_per_s', 'messages / s', 1], ['depth_events_per_s', 'depth events / s', 1], ['lag_ms', 'lag ms', 1],
    ['latency_p50_ms', 'latency p50 ms', 2], ['latency_p99_ms', 'latency p99 ms', 2], ['gaps', 'gaps', 0],
    ['resyncs', 'resyncs', 0], ['reconnects', 'reconnects', 0], ['book_ticker_checks', 'bookTicker checks', 0],
    ['book_ticker_failures', 'bookTicker failures', 0],
  ];

  function renderFeed() {
    const box = byId('feed');
    if (!box) return;
    if (!S.feedCells) {
      S.feedCells = {};
      S.feedKeys = {};
      box.textContent = '';
      for (const [key, label] of FEED_ROWS) {
        const row = el('div', 'frow');
        const name = el('span', 'fkey', label);
        const value = el('span', 'fval');
        name.dataset.field = key;
        value.dataset.field = key;
        row.append(name, value);
        box.appendChild(row);
        S.feedCells[key] = value;
        S.feedKeys[key] = name;
      }
    }
    // In a replay, lag is the recording's (its receive time minus the exchange's event time).
    const lagLabel = isReplay() ? 'recording lag ms' : 'lag ms';
    const lagKey = S.feedKeys.lag_ms;
    if (lagKey.textContent !== lagLabel) {
      lagKey.textContent = lagLabel;
      lagKey.title = isReplay()
        ? 'receive time minus exchange event time, as recorded (negative: the recorder\'s clock was behind the exchange\'s)'
        : 'receive time minus exchange event time';
    }
    const feed = D.last.feed || {};
    for (const [key, , decimals] of FEED_ROWS) {
      const text = fmt(feed[key], decimals);
      const cell = S.feedCells[key];
      if (cell.textContent !== text) cell.textContent = text;
      cell.classList.toggle('bad', key === 'book_ticker_failures' && feed[key] > 0);
    }
  }

  /* ---------------------------------------------------------------- impact calculator */

  /* The panel is live: from the first frame it walks the book for a default size (about
   * impactNotional USDT at mid, rounded to 1-2-5) and a curve of impactSteps multiples
   * of it, then again every impactEveryMs as frames arrive. One refresh is two requests
   * made one after the other (the size, with its fills; then the curve), so at most one
   * request is in flight; a click while one is running is served right after it. The
   * user's side applies at once; a typed size applies on Simulate or Enter, and stays
   * until the symbol changes (an empty size means the default). Like the 3D surface,
   * the panel is below the fold at 1400x900: it is drawn at once, then refreshed while
   * it is on screen (and the tab visible), and the moment it scrolls into view. */

  function watchImpact() {
    const imp = S.impact;
    const div = byId('panel-impact');
    if (!div || imp.observer || typeof IntersectionObserver === 'undefined') return;
    // on screen = at least a tenth of the panel shows (its top edge peeks in at 1400x900)
    imp.observer = new IntersectionObserver(function (entries) {
      for (const e of entries) imp.visible = e.isIntersecting && e.intersectionRatio >= 0.1;
      if (imp.visible && D.last && performance.now() - imp.lastAt >= CFG.impactEveryMs) maybeImpact(true);
    }, { threshold: [0, 0.1, 0.5, 1] });
    imp.observer.observe(div);
  }

  function fetchJson(path) {
    const imp = S.impact;
    imp.requests += 1;
    imp.inFlightNow += 1;
    imp.maxInFlight = Math.max(imp.maxInFlight, imp.inFlightNow);
    const done = function () { imp.inFlightNow -= 1; };
    return fetch(apiUrl(path)).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) { const e = new Error(body.detail || 'HTTP ' + r.status); e.status = r.status; throw e; }
        return body;
      });
    }).finally(done);
  }

  function niceSize(raw) {
    if (!(raw > 0) || !Number.isFinite(raw)) return 1;
    const e = Math.floor(Math.log10(raw));
    let best = 1;
    let bestDist = Infinity;
    for (const m of [1, 2, 5, 10]) {
      const c = m * Math.pow(10, e);
      const dist = Math.abs(Math.log(c / raw));
      if (dist < bestDist) { bestDist = dist; best = c; }
    }
    return Number(best.toPrecision(6));
  }

  function baseAsset() {
    return (S.symbol || '').replace(/(usdt|usdc|busd)$/i, '').toUpperCase();
  }

  function impactSize() {
    const imp = S.impact;
    return imp.size !== null ? imp.size : imp.auto;
  }

  function validSize(x) {
    const n = Number(x);
    return Number.isFinite(n) && n > 0 ? n : null;
  }

  function curveSizes(size) {
    const unit = S.impact.auto;
    const sizes = CFG.impactSteps.map(function (k) { return Number((k * unit).toPrecision(6)); });
    const mine = validSize(size);
    if (mine !== null) sizes.push(mine);
    return Array.from(new Set(sizes)).sort(function (a, b) { return a - b; });
  }

  function impactRow(label, value) {
    const row = el('div', 'irow');
    row.append(el('span', 'ikey', label), el('span', 'ival', value));
    return row;
  }

  function impactHead(res) {
    const imp = S.impact;
    const auto = imp.size === null;
    return impactRow(res.side + ' ' + fmtQty(res.size) + ' ' + baseAsset() + (auto ? ' (default size)' : ''),
      'book at update ' + res.last_update_id + (D.last ? ' \u00b7 ' + clockTime(D.last.timestamp) : ''));
  }

  function showImpact(res) {
    const box = byId('impact-result');
    box.textContent = '';
    box.dataset.status = 'ok';
    box.dataset.side = res.side;
    box.dataset.size = String(res.size);
    box.dataset.lastUpdateId = String(res.last_update_id);
    box.dataset.updatedAt = String(Date.now());
    box.append(
      impactHead(res),
      impactRow('filled', fmtQty(res.quantity_filled) + (res.fully_filled ? '' : ' (book too thin)')),
      impactRow('VWAP', fmt(res.vwap, D.decimals + 2)),
      impactRow('best / worst', fmtPrice(res.best_price) + ' / ' + fmtPrice(res.worst_price)),
      impactRow('slippage', fmt(res.slippage, D.decimals + 2) + ' (' + fmt(res.slippage_bps, 2) + ' bps)'),
      impactRow('impact vs mid', fmt(res.impact_bps, 2) + ' bps'),
      impactRow('levels consumed', String(res.levels_consumed)),
    );
    const fills = el('div', 'fills');
    for (const f of (res.fills || []).slice(0, 8)) {
      fills.appendChild(el('div', 'fill', fmtPrice(f.price) + '  \u00d7 ' + fmtQty(f.qty) + '  \u03a3 ' + fmtQty(f.cumulative_qty)));
    }
    if ((res.fills || []).length > 8) fills.appendChild(el('div', 'fill', '\u2026 ' + (res.fills.length - 8) + ' more levels'));
    box.appendChild(fills);
  }

  function showImpactError(message) {
    const box = byId('impact-result');
    box.textContent = '';
    box.dataset.status = 'error';
    box.dataset.updatedAt = String(Date.now());
    box.appendChild(el('div', 'error', message));
  }

  function renderCurve(body, size) {
    const div = byId('impact-curve');
    if (!div) return;
    const pts = body.curve || [];
    const data = [
      { type: 'scatter', mode: 'lines+markers', name: 'slippage bps', x: pts.map(function (p) { return p.size; }),
        y: pts.map(function (p) { return p.slippage_bps; }), line: { color: COLOR.wall } },
      { type: 'scatter', mode: 'lines+markers', name: 'impact bps', x: pts.map(function (p) { return p.size; }),
        y: pts.map(function (p) { return p.impact_bps; }), line: { color: COLOR.profile, dash: 'dot' } },
    ];
    const shapes = validSize(size) === null ? [] : [{ type: 'line', x0: size, x1: size, yref: 'paper', y0: 0, y1: 1,
      line: { color: COLOR.muted, dash: 'dash', width: 1 } }];
    const layout = keptLayout('impact|' + body.side, function () {
      return baseLayout({
        margin: { l: 44, r: 8, t: 6, b: 34 }, showlegend: true, legend: { x: 0, y: 1, font: { size: 10 } },
        xaxis: axis({ type: 'log', title: { text: 'size, ' + baseAsset() + ' (' + body.side + ')', font: { size: 10 } } }),
        yaxis: axis({ title: { text: 'bps', font: { size: 10 } }, rangemode: 'tozero' }),
      });
    });
    layout.shapes = shapes;
    Plotly.react(div, data, layout, PLOT_CONFIG);
    div.dataset.lastUpdateId = String(body.last_update_id);
    div.dataset.side = body.side;
    div.dataset.points = String(pts.length);
    div.dataset.updatedAt = String(Date.now());
  }

  /* Called with every frame (and at once on a click, a side change, a new history). */
  function maybeImpact(force) {
    const imp = S.impact;
    if (!S.config || !S.symbol || !D.last) return;
    if (imp.auto === null) {
      const mid = D.last.mid_price;
      if (mid === null || mid === undefined || !Number.isFinite(mid) || mid <= 0) return;   // not in sync yet
      imp.auto = niceSize(CFG.impactNotional / mid);
      if (imp.size === null) showSizeInInput(imp.auto);
    }
    if (imp.inFlight) { if (force) imp.again = true; return; }
    if (!force && performance.now() - imp.lastAt < CFG.impactEveryMs) return;
    if (!force && (!imp.visible || pageHidden())) { imp.skipped += 1; return; }
    runImpact();
  }

  function showSizeInInput(size) {
    const dc = window.dash_clientside;
    if (dc && typeof dc.set_props === 'function') {
      try { dc.set_props('impact-size', { value: size }); } catch (e) { /* the layout is not there yet */ }
    }
  }

  function runImpact() {
    const imp = S.impact;
    const gen = imp.gen;
    const sym = S.symbol;
    const side = imp.side;
    const size = impactSize();
    imp.inFlight = true;
    imp.lastAt = performance.now();
    const base = '/simulate/' + encodeURIComponent(sym) + '?side=' + encodeURIComponent(side);
    const current = function () { return gen === imp.gen && sym === S.symbol; };
    let chain = Promise.resolve();
    if (!imp.rejected) {
      const box = byId('impact-result');
      if (box && box.dataset.status !== 'ok') box.dataset.status = 'pending';
      chain = fetchJson(base + '&size=' + encodeURIComponent(size))
        .then(function (res) { if (current()) timed('impact', function () { showImpact(res); }); })
        .catch(function (e) {
          if (!current()) return;
          showImpactError(e.message);
          // a size the API refuses (4xx) is not asked again until the user changes it
          if (e.status >= 400 && e.status < 500) imp.rejected = true;
        });
    }
    chain
      .then(function () {
        if (!current()) return null;
        return fetchJson(base + '&sizes=' + curveSizes(size).join(','))
          .then(function (body) { if (current()) timed('impact', function () { renderCurve(body, validSize(size)); }); });
      })
      .catch(function () { /* the result box shows the error; the next frame tries again */ })
      .then(function () {
        imp.inFlight = false;
        if (imp.again) { imp.again = false; maybeImpact(true); }
      });
  }

  /* The user's side, and a typed size when Simulate or Enter was pressed. */
  function impactInput(nClicks, nSubmit, side, size) {
    const imp = S.impact;
    let changed = false;
    if (side && side !== imp.side) { imp.side = side; changed = true; }
    const pressed = (nClicks || 0) > imp.clicks || (nSubmit || 0) > imp.submits;
    imp.clicks = nClicks || 0;
    imp.submits = nSubmit || 0;
    if (pressed) {
      changed = true;
      if (size === null || size === undefined || size === '') imp.size = null;   // empty: the default size
      else if (imp.auto !== null && Number(size) === imp.auto) imp.size = null;
      else imp.size = size;
    }
    if (!changed) return;
    imp.gen += 1;
    imp.rejected = false;     // a refused size is asked once more: the API's message is shown as it is
    maybeImpact(true);
  }

  /* ---------------------------------------------------------------- start / switch */

  function clearPanels() {
    S.ladder = null;
    S.layouts = {};
    S.textCache.clear();
    for (const id of ['heatmap', 'depth', 'surface', 'impact-curve']) {
      const div = byId(id);
      if (div && div.data) Plotly.purge(div);
    }
    const alerts = byId('alerts');
    if (alerts) alerts.textContent = '';
    const impact = byId('impact-result');
    if (impact) { impact.textContent = ''; impact.dataset.status = 'idle'; }
    const imp = S.impact;
    imp.gen += 1;             // answers for the previous symbol are dropped
    imp.auto = null;          // the default size is the new symbol's
    imp.size = null;
    imp.rejected = false;
    imp.lastAt = 0;
    const root = byId('liq-root');
    if (root) root.dataset.symbol = S.symbol;
  }

  function setSymbol(symbol) {
    if (symbol === S.symbol && S.ws) return;
    clearTimeout(S.retryTimer);
    closeSocket();
    S.symbol = symbol;
    D = freshData();
    S.lastMsgAt = 0;
    S.retryMs = CFG.backoffStartMs;
    S.attempts = 0;
    S.downSince = 0;
    clearPanels();
    connect();
  }

  function observeLongTasks() {
    try {
      const obs = new PerformanceObserver(function (list) {
        for (const entry of list.getEntries()) { S.stats.longTasks += 1; S.stats.longTaskMs += entry.duration; }
      });
      obs.observe({ type: 'longtask', buffered: true });
    } catch (e) { /* not supported in this browser */ }
  }

  function init(config) {
    S.config = config;
    S.apiBase = apiBase(config.api_url);
    S.stats = freshStats();
    observeLongTasks();
    watchSurface();
    watchImpact();
    document.addEventListener('visibilitychange', function () {
      if (!pageHidden() && D.last) { scheduleHeavy(true); maybeImpact(false); }
    });
    S.timers.push(setInterval(tickClock, 500));
    S.timers.push(setInterval(refreshHealth, CFG.healthEveryMs));
    renderSource();
    refreshHealth();
  }

  const api = {
    /* clientside callback: the config store and the symbol switcher */
    start: function (config, symbol) {
      if (!config) return window.dash_clientside.no_update;
      if (!S.config) init(config);
      setSymbol(symbol || config.symbols[0]);
      return symbol;
    },
    /* clientside callback: the impact calculator's side, Simulate button and Enter in the size */
    impact: function (nClicks, nSubmit, side, size) {
      impactInput(nClicks, nSubmit, side, size);
      return window.dash_clientside.no_update;
    },
    /* for tests and the benchmark: what the page holds and what drawing it cost */
    debug: function () {
      const f = D.last;
      return {
        symbol: S.symbol, conn: S.conn, attempts: S.attempts, retryMs: S.retryMs,
        seq: f ? f.seq : null, lastUpdateId: f && f.sync ? f.sync.last_update_id : null,
        mid: f ? f.mid_price : null, columns: D.columns.length, series: D.series.t.length,
        trades: D.trades.length, alerts: D.alerts.length, surfaceBusy: S.surfaceBusy,
        impact: { side: S.impact.side, size: impactSize(), auto: S.impact.auto, requests: S.impact.requests,
                  maxInFlight: S.impact.maxInFlight, inFlight: S.impact.inFlight, visible: S.impact.visible,
                  skipped: S.impact.skipped },
        stats: S.stats ? JSON.parse(JSON.stringify(S.stats)) : null,
      };
    },
    lastFrame: function () { return D.last; },
    resetStats: function () { S.stats = freshStats(); },
  };

  window.dash_clientside = Object.assign({}, window.dash_clientside, { liq: api });
})();
