/*
 * The metrics bar: mid (coloured and arrowed by its last move), spread, microprice
 * (arrowed above / below mid), imbalance and OFI (signed), bid and ask volume of the
 * last frame; then the derivatives context: mark and index price, basis (mark - index,
 * bps; mark - mid in the tooltip), funding per interval with its countdown (annualised
 * in the tooltip), open interest with its 5 min change (1 min and 1 h in the tooltip).
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
    renderDerivatives(f);
    LIQ.panels.liquidations.render();
  }

  function countdown(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = function (x) { return (x < 10 ? '0' : '') + x; };
    return h + ':' + pad(m) + ':' + pad(s % 60);
  }

  function pct(x, decimals) { return x === null || x === undefined ? '\u2013' : signed(x, decimals) + '%'; }

  function setTitle(id, text) {
    const node = LIQ.dom.byId(id);
    if (node) node.title = text;
  }

  function renderDerivatives(f) {
    const m = f.mark;
    setText('m-mark', m ? fmt(m.mark_price, data.decimals) : '\u2013', 'v');
    setText('m-index', m ? fmt(m.index_price, data.decimals) : '\u2013', 'v');
    setText('m-basis', m ? signed(m.basis_bps, 2) + ' bps' : '\u2013', dirClass(m ? m.basis_bps : null));
    setTitle('m-basis', m && m.mark_mid_bps !== null ? 'mark - mid: ' + signed(m.mark_mid_bps, 2) + ' bps' : '');
    const rate = m && m.funding_rate !== null ? m.funding_rate * 100 : null;
    setText('m-funding', m ? pct(rate, 4) + (m.funding_in_s !== null ? ' ' + countdown(m.funding_in_s) : '')
      : '\u2013', dirClass(rate));
    setTitle('m-funding', m && m.funding_rate_annual !== null
      ? 'annualised (3 a day x 365): ' + pct(m.funding_rate_annual * 100, 2) + '; next funding in ' +
        countdown(m.funding_in_s) : '');
    const oi = f.open_interest;
    setText('m-oi', oi ? fmtQty(oi.open_interest) + ' ' + pct(oi.change_5m_pct, 2) : '\u2013',
      dirClass(oi ? oi.change_5m : null));
    setTitle('m-oi', oi ? 'change 1 min ' + pct(oi.change_1m_pct, 2) + ', 5 min ' + pct(oi.change_5m_pct, 2) +
      ', 1 h ' + pct(oi.change_1h_pct, 2) + (oi.notional !== null ? '; ' + fmt(oi.notional / 1e6, 1) + 'M USDT' : '')
      : '');
  }

  LIQ.panels.metrics = { render: render };
})(window.LIQ);
