/*
 * Start and symbol switch, and the public API at the top of the namespace: the two
 * clientside callbacks Dash calls (LIQ.start, LIQ.impact) and what tests and the
 * benchmark read (LIQ.debug, LIQ.lastFrame, LIQ.resetStats). Loaded last.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const session = LIQ.state.session;
  const conn = LIQ.state.conn;
  const view = LIQ.state.view;
  const sched = LIQ.state.schedule;
  const imp = LIQ.state.impact;
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
    panels.alerts.reset();
    panels.impact.reset();
    const root = byId('liq-root');
    if (root) root.dataset.symbol = session.symbol;
  }

  function setSymbol(symbol) {
    if (symbol === session.symbol && conn.ws) return;
    LIQ.connection.reset();
    session.symbol = symbol;
    LIQ.store.reset();
    clearPanels();
    LIQ.connection.connect();
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

  function init(config) {
    session.config = config;
    session.apiBase = LIQ.connection.apiBase(config.api_url);
    LIQ.state.stats = LIQ.schedule.freshStats();
    observeLongTasks();
    LIQ.schedule.watchSurface();
    panels.impact.watch();
    document.addEventListener('visibilitychange', function () {
      if (!pageHidden() && data.last) { LIQ.schedule.heavy(true); panels.impact.maybe(false); }
    });
    session.timers.push(setInterval(tickClock, 500));
    session.timers.push(setInterval(panels.banner.refreshHealth, CFG.healthEveryMs));
    panels.banner.renderSource();
    panels.banner.refreshHealth();
  }

  Object.assign(LIQ, {
    /* clientside callback: the config store and the symbol switcher */
    start: function (config, symbol) {
      if (!config) return window.dash_clientside.no_update;
      if (!session.config) init(config);
      setSymbol(symbol || config.symbols[0]);
      return symbol;
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
        stats: stats ? JSON.parse(JSON.stringify(stats)) : null,
      };
    },
    lastFrame: function () { return data.last; },
    resetStats: function () { LIQ.state.stats = LIQ.schedule.freshStats(); },
  });
})(window.LIQ);
