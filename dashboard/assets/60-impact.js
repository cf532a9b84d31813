/*
 * The impact calculator: GET /simulate/{symbol} for one size (VWAP, slippage, fills)
 * and for a curve of sizes, refreshed while the panel is on screen. Owns
 * LIQ.state.impact, the result box and the impact curve figure; LIQ.panels.impact.input is
 * the clientside callback's side (90-main.js), LIQ.panels.impact.maybe is called per frame.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const COLOR = LIQ.style.color;
  const data = LIQ.data;
  const session = LIQ.state.session;
  const imp = LIQ.state.impact;
  const { byId, el, pageHidden } = LIQ.dom;
  const { num: fmt, price: fmtPrice, qty: fmtQty, clockTime } = LIQ.format;
  const { axis, keptLayout, baseLayout } = LIQ.plot;

  /* The panel is live: from the first frame it walks the book for a default size (about
   * impactNotional USDT at mid, rounded to 1-2-5) and a curve of impactSteps multiples
   * of it, then again every impactEveryMs as frames arrive. One refresh is two requests
   * made one after the other (the size, with its fills; then the curve), so at most one
   * request is in flight; a click while one is running is served right after it. The
   * user's side applies at once; a typed size applies on Simulate or Enter, and stays
   * until the symbol changes (an empty size means the default). Like the 3D surface,
   * the panel is below the fold at 1400x900: it is drawn at once, then refreshed while
   * it is on screen (and the tab visible), and the moment it scrolls into view. */

  function watch() {
    const div = byId('panel-impact');
    if (!div || imp.observer || typeof IntersectionObserver === 'undefined') return;
    // on screen = at least a tenth of the panel shows (its top edge peeks in at 1400x900)
    imp.observer = new IntersectionObserver(function (entries) {
      for (const e of entries) imp.visible = e.isIntersecting && e.intersectionRatio >= 0.1;
      if (imp.visible && data.last && performance.now() - imp.lastAt >= CFG.impactEveryMs) maybeImpact(true);
    }, { threshold: [0, 0.1, 0.5, 1] });
    imp.observer.observe(div);
  }

  function fetchJson(path) {
    imp.requests += 1;
    imp.inFlightNow += 1;
    imp.maxInFlight = Math.max(imp.maxInFlight, imp.inFlightNow);
    const done = function () { imp.inFlightNow -= 1; };
    return fetch(LIQ.connection.apiUrl(path)).then(function (r) {
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
    return (session.symbol || '').replace(/(usdt|usdc|busd)$/i, '').toUpperCase();
  }

  /* The size walked: the user's, or the default one. */
  function impactSize() {
    return imp.size !== null ? imp.size : imp.auto;
  }

  function validSize(x) {
    const n = Number(x);
    return Number.isFinite(n) && n > 0 ? n : null;
  }

  function curveSizes(size) {
    const unit = imp.auto;
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
    const auto = imp.size === null;
    return impactRow(res.side + ' ' + fmtQty(res.size) + ' ' + baseAsset() + (auto ? ' (default size)' : ''),
      'book at update ' + res.last_update_id + (data.last ? ' \u00b7 ' + clockTime(data.last.timestamp) : ''));
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
      impactRow('VWAP', fmt(res.vwap, data.decimals + 2)),
      impactRow('best / worst', fmtPrice(res.best_price) + ' / ' + fmtPrice(res.worst_price)),
      impactRow('slippage', fmt(res.slippage, data.decimals + 2) + ' (' + fmt(res.slippage_bps, 2) + ' bps)'),
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
    const traces = [
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
    Plotly.react(div, traces, layout, LIQ.style.plotConfig);
    div.dataset.lastUpdateId = String(body.last_update_id);
    div.dataset.side = body.side;
    div.dataset.points = String(pts.length);
    div.dataset.updatedAt = String(Date.now());
  }

  /* Called with every frame (and at once on a click, a side change, a new history).
   * A hidden panel asks nothing; a paused view is not refreshed by itself (the API
   * walks its current book, not the moment shown), a click still walks it. */
  function maybeImpact(force) {
    if (!session.config || !session.symbol || !data.last) return;
    if (!LIQ.layout.shown('impact')) return;
    if (imp.auto === null) {
      const mid = data.last.mid_price;
      if (mid === null || mid === undefined || !Number.isFinite(mid) || mid <= 0) return;   // not in sync yet
      imp.auto = niceSize(CFG.impactNotional / mid);
      if (imp.size === null) showSizeInInput(imp.auto);
    }
    if (imp.inFlight) { if (force) imp.again = true; return; }
    if (!force && performance.now() - imp.lastAt < CFG.impactEveryMs) return;
    if (!force && (!imp.visible || pageHidden() || LIQ.pause.active())) { imp.skipped += 1; return; }
    runImpact();
  }

  function showSizeInInput(size) { setInput('impact-size', size); }

  function setInput(id, value) {
    const dc = window.dash_clientside;
    if (dc && typeof dc.set_props === 'function') {
      try { dc.set_props(id, { value: value }); } catch (e) { /* the layout is not there yet */ }
    }
  }

  function runImpact() {
    const gen = imp.gen;
    const sym = session.symbol;
    const side = imp.side;
    const size = impactSize();
    imp.inFlight = true;
    imp.lastAt = performance.now();
    const base = '/simulate/' + encodeURIComponent(sym) + '?side=' + encodeURIComponent(side);
    const current = function () { return gen === imp.gen && sym === session.symbol; };
    const timed = LIQ.schedule.timed;
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
    LIQ.url.write(false);
  }

  /* A link's side and size (81-url.js), before the first frame: as if chosen by hand. */
  function preset(side, size) {
    if (side === 'buy' || side === 'sell') {
      imp.side = side;
      setInput('impact-side', side);
    }
    const n = validSize(size);
    if (n !== null) {
      imp.size = n;
      setInput('impact-size', n);
    }
  }

  /* Focus the size field (the I shortcut), its text selected to be typed over. */
  function focusSize() {
    const input = byId('impact-size');
    if (!input) return false;
    input.scrollIntoView({ block: 'nearest', behavior: LIQ.dom.scrollBehaviour() });
    input.focus({ preventScroll: true });
    if (typeof input.select === 'function') input.select();
    return true;
  }

  /* A new symbol: an empty result box, and the state that belonged to the old one.
   * (Its curve figure is purged with the others in 90-main.js.) */
  function reset() {
    const box = byId('impact-result');
    if (box) { box.textContent = ''; box.dataset.status = 'idle'; }
    imp.gen += 1;             // answers for the previous symbol are dropped
    imp.auto = null;          // the default size is the new symbol's
    imp.size = null;
    imp.rejected = false;
    imp.lastAt = 0;
  }

  LIQ.panels.impact = {
    watch: watch, maybe: maybeImpact, input: impactInput, size: impactSize, reset: reset, preset: preset,
    focusSize: focusSize,
  };
})(window.LIQ);
