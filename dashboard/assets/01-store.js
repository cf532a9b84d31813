/*
 * The frame store, LIQ.data: the last frame, the price decimals inferred from it, and
 * the bounded 180 s history the panels draw (heatmap columns, best bid/ask series,
 * trades, alerts, volume profile). Frames come in through LIQ.store.ingest (from the
 * socket, 10-connection.js); LIQ.store.reset empties it on a new history or symbol.
 *
 * Alerts have a life (docs/metrics.md, "Alerts"): each frame carries every live alert
 * and the last state of those that ended since the previous frame, so the store keeps
 * the latest state per id (alertById; alerts lists them) and ended ones for 180 s.
 *
 * The derivatives context: liquidations as they came (each in one frame, like trades)
 * and the open interest of each frame, both for the same 180 s.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;

  function freshData() {
    return {
      last: null, prevMid: null, decimals: 2, columns: [], series: { t: [], bid: [], ask: [] },
      trades: [], alerts: [], alertById: new Map(), alertsDirty: true, profile: null,
      liquidations: [], oi: { t: [], v: [] }, liqDirty: true,
    };
  }

  /* Reset in place: LIQ.data stays the same object, so any file may hold on to it. */
  const data = LIQ.data = freshData();

  function reset() { Object.assign(data, freshData()); }

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
    return levels.length ? d : data.decimals;
  }

  /* A trade's or an alert's side (buy / sell) as a book side (bid / ask). */
  function normSide(side) {
    if (side === 'buy') return 'bid';
    if (side === 'sell') return 'ask';
    return side;
  }

  function ingest(frame) {
    data.prevMid = data.last ? data.last.mid_price : null;
    data.last = frame;
    data.decimals = inferDecimals(frame);
    const t = frame.timestamp;
    addColumn(frame, t);
    addSeries(frame, t);
    for (const tr of frame.trades || []) data.trades.push(tr);
    for (const lq of frame.liquidations || []) { data.liquidations.push(lq); data.liqDirty = true; }
    if (frame.open_interest) { data.oi.t.push(t * 1000); data.oi.v.push(frame.open_interest.open_interest); }
    addAlerts(frame);
    if (frame.volume_profile) data.profile = frame.volume_profile;
    trim(t);
  }

  /* The latest state of each alert. A live alert the frame no longer carries ended
   * while this page missed its last state (frames dropped for a slow tab): it is kept
   * as ended, reason unknown, rather than shown live for ever. */
  function addAlerts(frame) {
    const byId = data.alertById;
    const carried = new Set();
    let changed = false;
    for (const a of frame.alerts || []) {
      carried.add(a.id);
      const prev = byId.get(a.id);
      if (!prev || prev.ts !== a.ts || prev.status !== a.status || prev.live !== a.live) changed = true;
      byId.set(a.id, a);
    }
    for (const [id, a] of byId) {
      if (a.live && !carried.has(id)) {
        byId.set(id, Object.assign({}, a, {
          live: false, status: a.type === 'WALL' ? 'removed' : 'ended', reason: 'unknown', ts: frame.timestamp,
        }));
        changed = true;
      }
    }
    if (changed) { data.alerts = Array.from(byId.values()); data.alertsDirty = true; }
  }

  function addColumn(frame, t) {
    const hm = frame.heatmap;
    if (!hm || !hm.sizes || !hm.sizes.length) return;
    const col = { t: t, bin0: hm.bin0, binSize: hm.bin_size, sizes: hm.sizes };
    const cols = data.columns;
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
    const s = data.series;
    s.t.push(t * 1000);
    s.bid.push(frame.best_bid);
    s.ask.push(frame.best_ask);
  }

  function trim(now) {
    const cutoff = now - CFG.windowS;
    let n = 0;
    while (n < data.columns.length && data.columns[n].t < cutoff) n += 1;
    if (n) data.columns.splice(0, n);
    n = 0;
    while (n < data.series.t.length && data.series.t[n] < cutoff * 1000) n += 1;
    if (n) { data.series.t.splice(0, n); data.series.bid.splice(0, n); data.series.ask.splice(0, n); }
    n = 0;
    while (n < data.trades.length && data.trades[n].ts < cutoff) n += 1;
    if (data.trades.length - n > CFG.maxTrades) n = data.trades.length - CFG.maxTrades;
    if (n) data.trades.splice(0, n);
    n = 0;
    while (n < data.liquidations.length && data.liquidations[n].ts < cutoff) n += 1;
    if (data.liquidations.length - n > CFG.maxTrades) n = data.liquidations.length - CFG.maxTrades;
    if (n) { data.liquidations.splice(0, n); data.liqDirty = true; }
    n = 0;
    while (n < data.oi.t.length && data.oi.t[n] < cutoff * 1000) n += 1;
    if (n) { data.oi.t.splice(0, n); data.oi.v.splice(0, n); }
    let dropped = false;
    for (const [id, a] of data.alertById) {
      if (!a.live && a.ts < cutoff) { data.alertById.delete(id); dropped = true; }
    }
    if (dropped) { data.alerts = Array.from(data.alertById.values()); data.alertsDirty = true; }
  }

  LIQ.store = { reset: reset, ingest: ingest, normSide: normSide };
})(window.LIQ);
