/*
 * The view in the address bar, so a copied link opens the same view:
 *
 *   ?symbol=ethusdt&panels=ladder,heatmap,depth,alerts,impact,feed&side=sell&size=20&t=2026-11-28T09:15:02.250Z
 *
 *   symbol  the symbol shown (one of the configured ones, or one the API serves since:
 *           a symbol promoted by the screener, found in GET /symbols; a symbol it does
 *           not serve is promoted first, POST /focus/<symbol>, 83-symbols.js; a refusal
 *           is said in #view-state and no other symbol is shown)
 *   panels  the visible panels, in any order (an empty list hides them all)
 *   side    the impact calculator's side, when not buy
 *   size    the impact calculator's typed size, when not the default
 *   min     the alerts panel's minimum notional (USDT), when one is typed (empty: the
 *           API's default); a link's value applies to its symbol without replacing
 *           the one this browser keeps for it
 *   speed   the recorded history's playback speed (1, 2, 5 or 10), when not 1
 *   t       the moment shown, while the view is paused or shows the recorded history
 *           (ISO 8601 UTC, or seconds since the epoch); a link with t opens paused
 *           there: from the API's last 180 s when they still hold it, else from the
 *           recorded history (15-timeline.js) when the API has it.
 *
 * The page rewrites the address (history.replaceState) whenever one of these changes
 * and adds a browser history entry (pushState) only when the symbol changes, so back
 * and forward move between symbols. Unknown parameters (and values out of range) are
 * dropped; a missing one takes the page's default.
 */
(function (LIQ) {
  'use strict';

  const session = LIQ.state.session;
  const imp = LIQ.state.impact;
  const pz = LIQ.state.pause;
  let ready = false;

  /* ',' and ':' are legal in a query: kept readable */
  function enc(value) {
    return encodeURIComponent(value).replace(/%2C/gi, ',').replace(/%3A/gi, ':');
  }

  /* What the address asks for: each field null when absent. */
  function read() {
    const q = new URLSearchParams(window.location.search);
    const list = function (name) {
      if (!q.has(name)) return null;
      return q.get(name).split(',').map(function (s) { return s.trim().toLowerCase(); }).filter(Boolean);
    };
    return {
      symbol: q.has('symbol') ? q.get('symbol').trim().toLowerCase() : null,
      panels: list('panels'),
      side: q.get('side'),
      size: q.get('size'),
      min: q.get('min'),
      speed: q.get('speed'),
      t: q.get('t'),
    };
  }

  /* The query string of the view on screen. */
  function query() {
    const parts = ['symbol=' + enc(session.symbol), 'panels=' + enc(LIQ.layout.visible().join(','))];
    if (imp.side !== 'buy') parts.push('side=' + enc(imp.side));
    if (imp.size !== null) parts.push('size=' + enc(String(imp.size)));
    if (LIQ.state.alertFilter.own !== null) parts.push('min=' + enc(String(LIQ.state.alertFilter.own)));
    if (LIQ.state.timeline.speed !== 1) parts.push('speed=' + enc(String(LIQ.state.timeline.speed)));
    // a link's moment stays until its history (or the recorded one) arrives
    let moment = LIQ.timeline.moment();
    if (moment === null) moment = pz.active ? pz.moment : pz.target;
    if (moment !== null) parts.push('t=' + enc(new Date(moment * 1000).toISOString()));
    return '?' + parts.join('&');
  }

  /* The address of the view; push: a new history entry (a new symbol). */
  function write(push) {
    if (!ready || !session.symbol) return;
    const search = query();
    const state = { symbol: session.symbol };
    if (push) window.history.pushState(state, '', search + window.location.hash);
    else if (search !== window.location.search) window.history.replaceState(state, '', search + window.location.hash);
  }

  /* Back / forward: the symbol of that entry (the panels and options stay as they are). */
  function onPopState() {
    const want = read().symbol;
    if (want && session.config && session.config.symbols.includes(want) && want !== session.symbol) {
      LIQ.selectSymbol(want, 'history');
    } else if (want && session.config && !session.config.symbols.includes(want)) {
      // not in the page's list: ask the API for it (promoted if need be), then go there;
      // a refusal is said and the view stays
      LIQ.symbols.ensure(want).then(function () {
        if (!LIQ.selectSymbol(want, 'history')) write(false);
      }, function (e) {
        LIQ.pause.notify('cannot open ' + want.toUpperCase() + ': ' + ((e && e.message) || e));
        write(false);
      });
    } else {
      write(false);
    }
  }

  /* At start, after the first symbol is chosen: from now on the address follows the view. */
  function start() {
    ready = true;
    window.addEventListener('popstate', onPopState);
    write(false);
  }

  LIQ.url = { read: read, write: write, start: start, query: query };
})(window.LIQ);
