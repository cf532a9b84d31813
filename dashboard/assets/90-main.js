/*
 * Start and symbol switch, and the public API at the top of the namespace: the
 * clientside callbacks Dash calls (LIQ.start, LIQ.impact, LIQ.panelMenu), what the
 * keyboard, the timeline and the address bar call (LIQ.selectSymbol, LIQ.backToLive) and what tests
 * and the benchmark read (LIQ.debug, LIQ.lastFrame, LIQ.resetStats). Loaded last.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const session = LIQ.state.session;
  const conn = LIQ.state.conn;
  const view = LIQ.state.view;
  const sched = LIQ.state.schedule;
  const imp = LIQ.state.impact;
  const pause = LIQ.state.pause;
  const data = LIQ.data;
  const { byId, pageHidden } = LIQ.dom;
  const panels = LIQ.panels;

  /* A new symbol starts from empty panels: kept DOM and layouts go, figures are purged. */
  function clearPanels() {
    panels.ladder.reset();
    view.layouts = {};
    view.textCache.clear();
    for (const id of ['heatmap', 'depth', 'surface', 'impact-curve']) {
      const div = byId(id);
      if (div && div.data) Plotly.purge(div);
    }
    panels.heatmap.reset();
    panels.alerts.reset();
    panels.impact.reset();
    const root = byId('liq-root');
    if (root) { root.dataset.symbol = session.symbol; delete root.dataset.refused; }
  }

  /* how: 'initial' (the page's first symbol), 'user' (switcher or keys: a new browser
   * history entry), 'history' (back / forward: the entry exists). A new symbol starts live. */
  function setSymbol(symbol, how) {
    if (symbol === session.symbol && conn.ws) return false;
    const first = session.symbol === null;
    LIQ.pause.reset();
    LIQ.alertSteps.reset();
    LIQ.timeline.reset();
    LIQ.connection.reset();
    session.symbol = symbol;
    LIQ.store.reset();
    clearPanels();
    LIQ.connection.open(null);
    LIQ.timeline.refresh();
    LIQ.url.write(how === 'user' && !first);
    return true;
  }

  /* The switcher shows the symbol (its callback then finds it already set). */
  function showInSwitcher(symbol) {
    const dc = window.dash_clientside;
    if (dc && typeof dc.set_props === 'function') {
      try { dc.set_props('symbol', { value: symbol }); } catch (e) { /* not rendered yet */ }
    }
  }

  /* The first call: the link's view (symbol, panels, impact side and size, alerts
   * filter, history speed, moment), else the defaults. Returns the symbol shown. */
  function startView(config, symbol) {
    const link = LIQ.url.read();
    init(config, link);
    if (link.symbol && !session.config.symbols.includes(link.symbol)) {
      // a symbol the page's list does not hold (promoted since, or not served at all:
      // an alert's link to a symbol of the whole market): the API is asked for it
      // (83-symbols.js) and the page opens there; a refusal is said, no other symbol shown
      session.linkPending = true;
      LIQ.symbols.ensure(link.symbol).then(function () {
        session.linkPending = false;
        begin(link, symbol);
      }, function (e) {
        session.linkPending = false;
        refused(link.symbol, e);
      });
      return window.dash_clientside.no_update;
    }
    return begin(link, symbol);
  }

  /* The link's symbol cannot be opened: said in #view-state; the page waits for a
   * symbol chosen with the switcher or the number keys. */
  function refused(symbol, e) {
    const root = byId('liq-root');
    if (root) root.dataset.refused = symbol;
    LIQ.pause.notify('cannot open ' + symbol.toUpperCase() + ': ' + ((e && e.message) || e)
      + ' (choose a symbol above)');
    LIQ.url.start();
  }

  function begin(link, symbol) {
    const symbols = session.config.symbols;
    const first = link.symbol && symbols.includes(link.symbol) ? link.symbol : (symbol || symbols[0]);
    setSymbol(first, 'initial');
    panels.impact.preset(link.side, link.size);
    panels.alerts.preset(link.min);
    if (link.speed !== null) LIQ.timeline.setSpeed(Number(link.speed));
    LIQ.pause.openAt(link.t);
    LIQ.url.start();
    if (first !== symbol) showInSwitcher(first);
    return first;
  }

  function observeLongTasks() {
    try {
      const obs = new PerformanceObserver(function (list) {
        for (const entry of list.getEntries()) { LIQ.state.stats.longTasks += 1; LIQ.state.stats.longTaskMs += entry.duration; }
      });
      obs.observe({ type: 'longtask', buffered: true });
    } catch (e) { /* not supported in this browser */ }
  }

  function tickClock() {
    panels.banner.renderAge();
    LIQ.connection.watchdog();
  }

  function init(config, link) {
    // a copy: the symbol list grows with promoted symbols (83-symbols.js)
    session.config = Object.assign({}, config, { symbols: config.symbols.slice() });
    session.apiBase = LIQ.connection.apiBase(config.api_url);
    LIQ.state.stats = LIQ.schedule.freshStats();
    LIQ.layout.init(link.panels);
    LIQ.keys.init();
    LIQ.timeline.init();
    labelDashControls();
    LIQ.pause.render();
    observeLongTasks();
    LIQ.schedule.watchSurface();
    panels.impact.watch();
    document.addEventListener('visibilitychange', function () {
      if (!pageHidden() && data.last) { LIQ.schedule.heavy(true); panels.impact.maybe(false); }
    });
    session.timers.push(setInterval(tickClock, 500));
    session.timers.push(setInterval(panels.banner.refreshHealth, CFG.healthEveryMs));
    session.timers.push(setInterval(LIQ.symbols.refresh, CFG.healthEveryMs));
    panels.banner.renderSource();
    panels.banner.refreshHealth();
  }

  /* Dash's radio groups render as listboxes without a name: give them one. */
  function labelDashControls() {
    const names = { 'symbol': 'Symbol', 'impact-side': 'Impact side', 'panel-toggles': 'Visible panels' };
    for (const id of Object.keys(names)) {
      const node = byId(id);
      if (node && !node.getAttribute('aria-label')) node.setAttribute('aria-label', names[id]);
    }
  }

  Object.assign(LIQ, {
    /* clientside callback: the config store and the symbol switcher */
    start: function (config, symbol) {
      if (!config) return window.dash_clientside.no_update;
      if (!session.config) return startView(config, symbol);
      if (session.linkPending) return window.dash_clientside.no_update;   // still asking for the link's symbol
      setSymbol(symbol || session.config.symbols[0], session.symbol === null ? 'initial' : 'user');
      return symbol;
    },
    /* clientside callback: the panel menu (the user's own changes) */
    panelMenu: function (value) {
      LIQ.layout.fromMenu(value);
      return window.dash_clientside.no_update;
    },
    /* the number keys and back / forward: how as for setSymbol */
    selectSymbol: function (symbol, how) {
      if (!session.config || !session.config.symbols.includes(symbol)) return false;
      const changed = setSymbol(symbol, how);
      showInSwitcher(symbol);
      return changed;
    },
    /* L and the Live button: from the recorded history back to the live socket, or play
     * if paused; and the heatmap's time axis back on the newest data */
    backToLive: function () {
      if (LIQ.timeline.inHistory()) LIQ.timeline.live();
      else LIQ.pause.play();
      const div = byId('heatmap');
      if (div && div._fullLayout && LIQ.layout.shown('heatmap')) {
        Promise.resolve(Plotly.relayout(div, { 'xaxis.autorange': true })).catch(function () { /* redrawn next frame */ });
      }
    },
    /* clientside callback: the impact calculator's side, Simulate button and Enter in the size */
    impact: function (nClicks, nSubmit, side, size) {
      panels.impact.input(nClicks, nSubmit, side, size);
      return window.dash_clientside.no_update;
    },
    /* for tests and the benchmark: what the page holds and what drawing it cost */
    debug: function () {
      const f = data.last;
      const stats = LIQ.state.stats;
      return {
        symbol: session.symbol, conn: conn.state, attempts: conn.attempts, retryMs: conn.retryMs,
        seq: f ? f.seq : null, lastUpdateId: f && f.sync ? f.sync.last_update_id : null,
        mid: f ? f.mid_price : null, columns: data.columns.length, series: data.series.t.length,
        trades: data.trades.length, alerts: data.alerts.length, surfaceBusy: sched.surfaceBusy,
        impact: { side: imp.side, size: panels.impact.size(), auto: imp.auto, requests: imp.requests,
                  maxInFlight: imp.maxInFlight, inFlight: imp.inFlight, visible: imp.visible,
                  skipped: imp.skipped },
        view: { size: LIQ.layout.size(), panels: LIQ.layout.visible(), paused: pause.active, moment: pause.moment,
                held: pause.held.length, selectedAlert: LIQ.alertSteps.selected() },
        timeline: LIQ.timeline.debug(),
        historyPending: LIQ.connection.loading() || sched.stepsLeft > 0,
        stats: stats ? JSON.parse(JSON.stringify(stats)) : null,
      };
    },
    lastFrame: function () { return data.last; },
    resetStats: function () { LIQ.state.stats = LIQ.schedule.freshStats(); },
  });
})(window.LIQ);
