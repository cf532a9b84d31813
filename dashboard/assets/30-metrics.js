/*
 * The metrics bar: mid (coloured and arrowed by its last move), spread, microprice
 * (arrowed above / below mid), imbalance and OFI (signed), bid and ask volume of the
 * last frame.
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;
  const setText = LIQ.dom.setText;
  const { num: fmt, price: fmtPrice, qty: fmtQty, dirClass } = LIQ.format;

  /* Direction is never told by colour alone: an arrow for a move, a sign for a value. */
  function arrow(x) {
    if (x === null || x === undefined || !Number.isFinite(x) || x === 0) return '';
    return x > 0 ? '\u25b2 ' : '\u25bc ';
  }

  function signed(x, decimals) {
    const text = fmt(x, decimals);
    return x > 0 && Number.isFinite(x) ? '+' + text : text;
  }

  function render() {
    const f = data.last;
    const midMove = data.prevMid !== null && f.mid_price !== null ? f.mid_price - data.prevMid : null;
    setText('m-mid', arrow(midMove) + fmtPrice(f.mid_price), dirClass(midMove));
    setText('m-spread', fmtPrice(f.spread) + (f.spread_bps !== null ? ' (' + fmt(f.spread_bps, 2) + ' bps)' : ''), 'v');
    const microEdge = f.microprice !== null && f.mid_price !== null ? f.microprice - f.mid_price : null;
    setText('m-micro', arrow(microEdge) + fmt(f.microprice, data.decimals + 2), dirClass(microEdge));
    setText('m-imb', signed(f.imbalance, 3), dirClass(f.imbalance));
    setText('m-ofi', signed(f.ofi, 3), dirClass(f.ofi));
    setText('m-bidvol', fmtQty(f.total_bid_volume), 'v up');
    setText('m-askvol', fmtQty(f.total_ask_volume), 'v down');
  }

  LIQ.panels.metrics = { render: render };
})(window.LIQ);
