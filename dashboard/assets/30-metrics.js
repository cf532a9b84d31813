/*
 * The metrics bar: mid (coloured by its last move), spread, microprice, imbalance,
 * OFI, bid and ask volume of the last frame.
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;
  const setText = LIQ.dom.setText;
  const { num: fmt, price: fmtPrice, qty: fmtQty, dirClass } = LIQ.format;

  function render() {
    const f = data.last;
    const midMove = data.prevMid !== null && f.mid_price !== null ? f.mid_price - data.prevMid : null;
    setText('m-mid', fmtPrice(f.mid_price), dirClass(midMove));
    setText('m-spread', fmtPrice(f.spread) + (f.spread_bps !== null ? ' (' + fmt(f.spread_bps, 2) + ' bps)' : ''), 'v');
    const microEdge = f.microprice !== null && f.mid_price !== null ? f.microprice - f.mid_price : null;
    setText('m-micro', fmt(f.microprice, data.decimals + 2), dirClass(microEdge));
    setText('m-imb', fmt(f.imbalance, 3), dirClass(f.imbalance));
    setText('m-ofi', fmt(f.ofi, 3), dirClass(f.ofi));
    setText('m-bidvol', fmtQty(f.total_bid_volume), 'v up');
    setText('m-askvol', fmtQty(f.total_ask_volume), 'v down');
  }

  LIQ.panels.metrics = { render: render };
})(window.LIQ);
