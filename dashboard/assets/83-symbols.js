/*
 * Symbols beyond the page's start list. The screener promotes any symbol it lists to a
 * full-depth book (POST /focus/<symbol>) and opens /?symbol=<symbol>; such a symbol is
 * served by the API (/symbols, /ws/<symbol>) but was not in the list the page was built
 * with. When a link names one, or back / forward lands on one, the page asks the API's
 * GET /symbols and adds what it lists to the symbol switcher, the number keys and the
 * sync chips; it asks again every 10 s (with /health), so symbols promoted later from
 * another tab show up too. A promoted symbol shows its sync state (awaiting snapshot,
 * then in sync) like any other. A link naming a symbol the API does not serve at all
 * (an alert's link to a symbol of the screener's whole-market rows, or one released
 * since) promotes it first, as the screener page does (ensure).
 */
(function (LIQ) {
  'use strict';

  const session = LIQ.state.session;
  let inFlight = null;

  /* The switcher's options: every symbol the page knows, start symbols first. */
  function showOptions() {
    const dc = window.dash_clientside;
    if (!dc || typeof dc.set_props !== 'function') return;
    const options = session.config.symbols.map(function (s) { return { label: s.toUpperCase(), value: s }; });
    try { dc.set_props('symbol', { options: options }); } catch (e) { /* not rendered yet */ }
  }

  /* Add the symbols of `list` the page does not know yet; returns the ones added. */
  function add(list) {
    const known = session.config.symbols;
    const added = [];
    for (const raw of list || []) {
      const s = String(raw).trim().toLowerCase();
      if (s && !known.includes(s)) { known.push(s); added.push(s); }
    }
    if (added.length) {
      showOptions();
      LIQ.panels.banner.renderSync();
    }
    return added;
  }

  /* Ask the API which symbols it serves (one request at a time); resolves to the
   * symbols added, [] when none or when the API did not answer. */
  function refresh() {
    if (inFlight) return inFlight;
    inFlight = fetch(LIQ.connection.apiUrl('/symbols'))
      .then(function (r) { return r.ok ? r.json() : { symbols: [] }; })
      .then(function (body) { return add(body && body.symbols); })
      .catch(function () { return []; })
      .finally(function () { inFlight = null; });
    return inFlight;
  }

  /* A symbol the API does not serve yet (a link from an alert or another page): asks it
   * for a full-depth book (POST /focus/<symbol>, as the screener does). Resolves when it
   * is served; rejects with the API's reason (409: the focus set is full, 404: not a
   * symbol of the exchange) or when it is still not listed. */
  function promote(symbol) {
    return fetch(LIQ.connection.apiUrl('/focus/' + encodeURIComponent(symbol)), { method: 'POST' })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) throw new Error((body && (body.error || body.detail)) || ('HTTP ' + r.status));
          add(body && body.focus);
          return session.config.symbols.includes(symbol) ? null : refresh();
        });
      })
      .then(function () {
        if (!session.config.symbols.includes(symbol)) throw new Error('the API does not serve it');
      });
  }

  /* A symbol the page does not know: asks /symbols, then promotes it if still unknown. */
  function ensure(symbol) {
    return refresh().then(function () {
      return session.config.symbols.includes(symbol) ? null : promote(symbol);
    });
  }

  LIQ.symbols = { refresh: refresh, add: add, promote: promote, ensure: ensure };
})(window.LIQ);
