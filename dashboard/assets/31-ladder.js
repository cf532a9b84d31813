/*
 * The DOM ladder: the top ladderLevels levels a side as HTML rows (built once, then
 * only their text, data-* attributes and bar widths change), walls in orange; asks
 * above the mid row, bids below, each side captioned. The rows are kept in
 * LIQ.state.view.ladder until the symbol changes.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const data = LIQ.data;
  const view = LIQ.state.view;
  const { byId, el } = LIQ.dom;
  const { num: fmt, price: fmtPrice, qty: fmtQty } = LIQ.format;
  const normSide = LIQ.store.normSide;

  function build() {
    const box = byId('ladder');
    box.textContent = '';
    const rows = { ask: [], bid: [] };
    const make = function (side) {
      const row = el('div', 'lrow ' + side);
      row.dataset.side = side;
      const bar = el('div', 'lbar');
      const px = el('span', 'lpx');
      const qty = el('span', 'lqty');
      row.append(bar, px, qty);
      return { row: row, bar: bar, px: px, qty: qty };
    };
    for (let i = 0; i < CFG.ladderLevels; i += 1) rows.ask.push(make('ask'));
    const mid = el('div', 'lmid');
    for (let i = 0; i < CFG.ladderLevels; i += 1) rows.bid.push(make('bid'));
    // asks: the best ask sits just above the mid row, so the list is drawn far-to-near;
    // each side is named by a caption as well as by its colour
    box.appendChild(el('div', 'lcap', 'asks \u00b7 sell orders'));
    for (let i = CFG.ladderLevels - 1; i >= 0; i -= 1) box.appendChild(rows.ask[i].row);
    box.appendChild(mid);
    for (const r of rows.bid) box.appendChild(r.row);
    box.appendChild(el('div', 'lcap', 'bids \u00b7 buy orders'));
    view.ladder = { box: box, rows: rows, mid: mid };
  }

  function wallKey(side, price) {
    return side + ':' + Math.round(price * Math.pow(10, data.decimals));
  }

  function render() {
    if (!view.ladder) build();
    const f = data.last;
    const walls = new Map();
    for (const w of f.walls || []) walls.set(wallKey(normSide(w.side), w.price), w);
    const bids = (f.bid_levels || []).slice(0, CFG.ladderLevels);
    const asks = (f.ask_levels || []).slice(0, CFG.ladderLevels);
    let maxQty = 0;
    for (const lv of bids.concat(asks)) maxQty = Math.max(maxQty, lv[1]);
    fillSide(view.ladder.rows.bid, 'bid', bids, maxQty, walls);
    fillSide(view.ladder.rows.ask, 'ask', asks, maxQty, walls);
    view.ladder.mid.textContent = 'spread ' + fmtPrice(f.spread) + '  \u00b7  mid ' + fmtPrice(f.mid_price);
    const box = view.ladder.box;
    box.dataset.symbol = f.symbol;
    box.dataset.seq = String(f.seq);
    box.dataset.lastUpdateId = String((f.sync || {}).last_update_id);
    box.dataset.walls = String(walls.size);
  }

  function fillSide(rows, side, levels, maxQty, walls) {
    for (let i = 0; i < rows.length; i += 1) {
      const r = rows[i];
      const lv = levels[i];
      if (!lv) {
        r.row.dataset.price = '';
        r.row.classList.add('empty');
        r.px.textContent = '';
        r.qty.textContent = '';
        r.bar.style.width = '0%';
        continue;
      }
      const wall = walls.get(wallKey(side, lv[0]));
      r.row.classList.remove('empty');
      r.row.dataset.price = String(lv[0]);
      r.row.dataset.qty = String(lv[1]);
      r.row.dataset.wall = wall ? '1' : '0';
      r.row.classList.toggle('wall', Boolean(wall));
      r.row.title = wall ? 'wall: ' + fmt(wall.multiple, 1) + '\u00d7 median, ' + fmt(wall.age_s, 0) + ' s old' : '';
      r.px.textContent = fmtPrice(lv[0]);
      r.qty.textContent = fmtQty(lv[1]);
      r.bar.style.width = (maxQty > 0 ? (100 * lv[1]) / maxQty : 0).toFixed(1) + '%';
    }
  }

  /* A new symbol rebuilds the rows on its first frame. */
  function reset() { view.ladder = null; }

  LIQ.panels.ladder = { render: render, reset: reset };
})(window.LIQ);
