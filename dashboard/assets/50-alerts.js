/*
 * The alerts panel: alerts over their life (docs/metrics.md, "Alerts"), one row per
 * alert id with its latest state, grouped by side and price bin, most significant
 * first, through a minimum-notional filter. The same selection, order and groups as
 * GET /alerts/{symbol} (features/alerts.py: select, rank_key, group_by_price):
 *
 *   shown   = alerts whose peak_notional >= the filter
 *   order   = live first, then score (highest first), then the newest born, then id
 *   groups  = by (side, price_bin), in the order of their best alert
 *
 * The filter (USDT) is typed in the panel and kept per symbol in the browser
 * (localStorage 'liq.alerts.minNotional.<symbol>'); empty means the API's default,
 * asked once from GET /alerts (default_min_notional). A link's min= (81-url.js)
 * applies to the symbol it opens without being kept. Redrawn only when a frame
 * changed an alert (LIQ.data.alertsDirty) or the filter changed.
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;
  const CFG = LIQ.cfg;
  const session = LIQ.state.session;
  const { byId, el, setText } = LIQ.dom;
  const { num: fmt, price: fmtPrice, qty: fmtQty, clockTime } = LIQ.format;
  const STORAGE_KEY = 'liq.alerts.minNotional.';

  /* the filter: the API's default (null until known), and this symbol's own value if set */
  const filter = LIQ.state.alertFilter = { defaultMin: null, asked: false, failed: false, own: null };

  /* ---------------------------------------------------------------- the filter */

  function stored(symbol) {
    try {
      const raw = window.localStorage.getItem(STORAGE_KEY + symbol);
      const v = raw === null ? NaN : Number(raw);
      return Number.isFinite(v) && v >= 0 ? v : null;
    } catch (e) { return null; }   // storage refused (private mode): the default applies
  }

  function store(symbol, value) {
    try {
      if (value === null) window.localStorage.removeItem(STORAGE_KEY + symbol);
      else window.localStorage.setItem(STORAGE_KEY + symbol, String(value));
    } catch (e) { /* not kept across reloads, still applied */ }
  }

  /* The floor in force, or null while the default is not known yet. */
  function minNotional() {
    if (filter.own !== null) return filter.own;
    if (filter.defaultMin !== null) return filter.defaultMin;
    return filter.failed ? 0 : null;
  }

  /* Asked once a page (the default is the same for every symbol), with a since= in the
   * far future so the answer carries the figure and no alert. */
  function askDefault() {
    if (filter.asked) return;
    filter.asked = true;
    fetch(LIQ.connection.apiUrl('/alerts/' + encodeURIComponent(session.symbol) + '?since=1e12'))
      .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)); })
      .then(function (body) { filter.defaultMin = Number(body.default_min_notional); })
      .catch(function () { filter.failed = true; })
      .then(function () { syncInput(); render(); });
  }

  function onInput(ev) {
    const text = ev.target.value.trim();
    const value = text === '' ? null : Number(text);
    if (value !== null && !(Number.isFinite(value) && value >= 0)) {
      ev.target.classList.add('invalid');
      return;
    }
    ev.target.classList.remove('invalid');
    filter.own = value;
    store(session.symbol, value);
    render();
    LIQ.url.write(false);
  }

  /* A link's filter (text from the address): applied, not kept; ignored unless a
   * number >= 0. */
  function preset(text) {
    if (text === null || text === undefined || String(text).trim() === '') return;
    const value = Number(text);
    if (!(Number.isFinite(value) && value >= 0)) return;
    filter.own = value;
    syncInput();
    data.alertsDirty = true;
  }

  function syncInput() {
    const input = byId('alerts-min-notional');
    if (!input) return;
    input.placeholder = filter.defaultMin !== null ? String(filter.defaultMin) : 'default';
    input.title = 'empty: the default' + (filter.defaultMin !== null ? ' (' + filter.defaultMin + ' USDT)' : '');
    if (document.activeElement !== input) input.value = filter.own === null ? '' : String(filter.own);
  }

  /* The panel's fixed part: the filter row and the list under it, made once. */
  function frame() {
    const box = byId('alerts');
    if (!box) return null;
    let list = byId('alerts-list');
    if (!list) {
      box.textContent = '';
      const row = el('div', 'afilter');
      const label = el('label', '', 'min notional');
      const input = el('input', 'amin');
      input.id = 'alerts-min-notional';
      input.type = 'number';
      input.min = '0';
      input.step = 'any';
      input.inputMode = 'decimal';
      input.setAttribute('aria-label', 'minimum notional of the alerts shown, USDT');
      input.addEventListener('input', onInput);
      label.htmlFor = input.id;
      row.append(label, input, el('span', 'muted', 'USDT'), el('span', 'ahidden muted', ''));
      list = el('div', 'alist');
      list.id = 'alerts-list';
      box.append(row, list);
      syncInput();
    }
    return list;
  }

  /* ---------------------------------------------------------------- order and groups */

  function compare(a, b) {
    if (a.live !== b.live) return a.live ? -1 : 1;
    const sa = a.score || 0, sb = b.score || 0;
    if (sa !== sb) return sb - sa;
    if (a.born_ts !== b.born_ts) return b.born_ts - a.born_ts;
    return a.id < b.id ? -1 : (a.id > b.id ? 1 : 0);
  }

  function selected(min) {
    return data.alerts.filter(function (a) { return (a.peak_notional || 0) >= min; }).sort(compare);
  }

  function grouped(ranked) {
    const groups = new Map();
    for (const a of ranked) {
      const key = a.side + '|' + a.price_bin;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(a);
    }
    return Array.from(groups.values());
  }

  /* ---------------------------------------------------------------- drawing */

  function usdt(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '\u2013';
    if (Math.abs(x) >= 1e6) return fmt(x / 1e6, 2) + 'M';
    if (Math.abs(x) >= 1e3) return fmt(x / 1e3, 0) + 'k';
    return fmt(x, 0);
  }

  function statusText(a) {
    return a.reason ? a.status + ' (' + a.reason.replace(/_/g, ' ') + ')' : a.status;
  }

  function lifeText(a) {
    return (a.events || []).map(function (e) {
      const at = e.price === null || e.price === undefined ? '' : ' ' + fmtPrice(e.price);
      return e.status + at + ' ' + fmtQty(e.size);
    }).join(' \u2192 ');
  }

  /* A liquidation burst: what was liquidated (a lower bound) and what it did to the
   * depth of the side it hit, within 10 and 25 bps of mid. A band with no depth just
   * before the burst is not measured: there was nothing to drain or refill. */
  function burstFacts(a) {
    const b = a.burst;
    const band = function (n) {
      const before = b['depth_before_' + n + 'bps'];
      if (before === null || before === undefined) return n + ' bps: no depth before';
      const drain = b['drain_pct_' + n + 'bps'];
      const refill = b['refill_s_' + n + 'bps'];
      return n + ' bps: drained ' + (drain === null ? '\u2013' : fmt(drain, 0) + '%') + ', refill ' +
        (refill === null ? 'not yet' : fmt(refill, 1) + ' s');
    };
    return [
      (b.liquidation_side === 'sell' ? 'longs' : 'shorts') + ' liquidated: ' + b.count + ' \u00d7, ' +
        fmtQty(b.qty) + ' (at least)',
      band(10),
      band(25),
    ];
  }

  function alertNode(a) {
    const node = el('div', 'alert alert-' + a.type + (a.live ? '' : ' ended'));
    const ds = node.dataset;
    ds.id = a.id;
    ds.type = a.type;
    ds.side = a.side || '';
    ds.price = a.price === null || a.price === undefined ? '' : String(a.price);
    ds.live = a.live ? '1' : '0';
    ds.status = a.status;
    ds.score = a.score === null || a.score === undefined ? '' : String(a.score);
    ds.ts = a.ts ? String(a.ts) : '';   // time order for the arrow keys (55-alert-steps.js)
    const head = el('div', 'ahead');
    head.append(
      el('span', 'abadge', a.type),
      el('span', 'astatus', statusText(a)),
      el('span', 'anotional', (a.type === 'LIQUIDATION_BURST' ? 'at least ' : '') + usdt(a.notional) + ' USDT'),
      el('span', 'atime', a.ts ? clockTime(a.ts) : ''),
    );
    const facts = a.type === 'LIQUIDATION_BURST' && a.burst ? burstFacts(a) : [
      fmtQty(a.size) + (a.price === null || a.price === undefined ? '' : ' @ ' + fmtPrice(a.price)),
      a.distance_bps === null ? null : fmt(a.distance_bps, 2) + ' bps from mid',
      a.depth_share === null ? null : fmt(100 * a.depth_share, 0) + '% of side',
      fmt(a.age_s, 0) + ' s',
      'score ' + usdt(a.score),
    ].filter(function (x) { return x !== null; });
    node.append(head, el('div', 'adetails', facts.join(' \u00b7 ')), el('div', 'alife', lifeText(a)));
    return node;
  }

  function groupNode(members) {
    const first = members[0];
    const node = el('div', 'agroup');
    node.dataset.side = first.side || '';
    node.dataset.priceBin = first.price_bin === null ? '' : String(first.price_bin);
    const prices = members.map(function (a) { return a.price; }).filter(function (p) { return p !== null; });
    const low = Math.min.apply(null, prices), high = Math.max.apply(null, prices);
    const where = !prices.length ? '' : (low === high ? fmtPrice(low) : fmtPrice(low) + ' \u2013 ' + fmtPrice(high));
    const head = el('div', 'agroup-head');
    head.append(el('span', 'aside ' + (first.side || ''), first.side || ''), el('span', 'aprice', where),
      el('span', 'acount muted', members.length > 1 ? members.length + ' alerts' : ''));
    node.appendChild(head);
    for (const a of members) node.appendChild(alertNode(a));
    return node;
  }

  function render() {
    data.alertsDirty = false;
    const list = frame();
    if (!list) return;
    list.textContent = '';
    const box = byId('alerts');
    const min = minNotional();
    if (min === null) {
      askDefault();
      list.appendChild(el('div', 'muted', 'asking the API for the default filter\u2026'));
      return;
    }
    box.dataset.minNotional = String(min);
    const ranked = selected(min);
    const shown = ranked.slice(0, CFG.maxAlerts);
    for (const members of grouped(shown)) list.appendChild(groupNode(members));
    const hidden = data.alerts.length - shown.length;
    if (!data.alerts.length) list.appendChild(el('div', 'muted', 'no alerts in the last 180 s'));
    else if (!shown.length) list.appendChild(el('div', 'muted', 'no alert reaches the filter'));
    const note = box.querySelector('.ahidden');
    if (note) note.textContent = hidden > 0 ? hidden + ' below it' : '';
    if (filter.failed && filter.own === null) {
      list.appendChild(el('div', 'muted', 'default filter unavailable: showing every alert'));
    }
    setText('alerts-count', String(shown.length));
  }

  /* A new symbol: the old symbol's alerts go at once, and its own filter applies. */
  function reset() {
    if (filter.failed) { filter.failed = false; filter.asked = false; }   // ask again on a new symbol
    filter.own = stored(session.symbol);
    const list = byId('alerts-list');
    if (list) list.textContent = '';
    syncInput();
    data.alertsDirty = true;
  }

  LIQ.panels.alerts = { render: render, reset: reset, preset: preset, minNotional: minNotional, compare: compare };
})(window.LIQ);
