/*
 * The liquidation tape under the heatmap: the latest liquidations, newest first, each
 * told by an arrow and a word as well as its colour (a long liquidated is a forced
 * sell, the price pushed down; a short, a forced buy). Binance sends at most one a
 * second per symbol, so the tape is a lower bound (said in its label's tooltip).
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;
  const byId = LIQ.dom.byId;
  const { num: fmt, qty: fmtQty, clockTime } = LIQ.format;
  const SHOWN = 12;

  function item(lq) {
    const node = document.createElement('span');
    const longs = lq.side === 'sell';
    node.className = 'liq ' + (longs ? 'down' : 'up');
    node.dataset.side = lq.side;
    const n = lq.notional;
    const usdt = n >= 1e6 ? fmt(n / 1e6, 2) + 'M' : n >= 1e3 ? fmt(n / 1e3, 0) + 'k' : fmt(n, 0);
    node.textContent = (longs ? '\u25bc long ' : '\u25b2 short ') + fmtQty(lq.qty) + ' @ ' +
      fmt(lq.price, data.decimals) + ' ' + usdt + ' ' + clockTime(lq.ts);
    return node;
  }

  function render() {
    if (!data.liqDirty) return;
    const box = byId('liq-tape');
    if (!box) return;
    data.liqDirty = false;
    box.textContent = '';
    const list = data.liquidations;
    if (!list.length) {
      box.textContent = data.last && data.last.liquidation_stats ? 'none in the last 180 s' : 'not watched';
      return;
    }
    for (let i = list.length - 1; i >= Math.max(0, list.length - SHOWN); i -= 1) box.appendChild(item(list[i]));
  }

  LIQ.panels.liquidations = { render: render };
})(window.LIQ);
