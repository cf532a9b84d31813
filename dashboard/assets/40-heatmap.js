/*
 * The liquidity heatmap: time x price, colour = resting size, with the best bid/ask
 * lines, trades as triangles (up: buy, down: sell; area ~ quantity), liquidations as
 * diamonds (area ~ notional; a long liquidated, a forced sell: a filled orange diamond
 * with a light outline; a short, a forced buy: a tall open violet one), the open interest as a thin line on its own scale
 * across the top, and the volume profile (41-profile.js) on a second x axis sharing
 * the price axis. Drawn by the scheduler in its own task, about once a second.
 *
 * No WebGL: the trades are painted on a 2D canvas laid over the plot area (through the
 * figure's own axes, again after every redraw, zoom or pan of the figure), and the
 * best bid/ask, the liquidations (one a second at most: a few hundred points, with
 * their hover) and the open interest are SVG. Plotly's WebGL traces cost the page's
 * first draw about half a second of set-up in one piece (software GL), a long task no
 * slicing can split.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const COLOR = LIQ.style.color;
  const data = LIQ.data;
  const byId = LIQ.dom.byId;
  const { axis, keptLayout, baseLayout } = LIQ.plot;

  /* The heatmap is drawn on a regular time grid (one step = the usual spacing of the
   * columns, a multiple of columnS). Each grid slot shows the newest column at or before
   * it (the book as it stood then), holes longer than maxGapCols steps stay empty. With
   * evenly spaced x and y Plotly paints one pixel per cell and scales the image
   * (its "fast" heatmap path), instead of one fillRect per cell on a canvas the size of
   * the plot. */
  function gridStep(cols) {
    const diffs = [];
    for (let i = Math.max(1, cols.length - 21); i < cols.length; i += 1) diffs.push(cols[i].t - cols[i - 1].t);
    if (!diffs.length) return CFG.columnS;
    diffs.sort(function (a, b) { return a - b; });
    const median = diffs[diffs.length >> 1];
    return Math.max(1, Math.round(median / CFG.columnS)) * CFG.columnS;
  }

  /* newest: only that many of the newest columns (a figure's first draw is split: a small image first) */
  function heatGrid(newest) {
    const cols = newest ? data.columns.slice(-newest) : data.columns;
    const last = cols[cols.length - 1];
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of cols) { lo = Math.min(lo, c.bin0); hi = Math.max(hi, c.bin0 + c.sizes.length); }
    if (hi - lo > CFG.maxHeatRows) {
      lo = Math.round(last.bin0 + last.sizes.length / 2 - CFG.maxHeatRows / 2);
      hi = lo + CFG.maxHeatRows;
    }
    const rows = hi - lo;
    const step = gridStep(cols);
    const n = Math.min(Math.floor((last.t - cols[0].t) / step + 1e-9) + 1, Math.ceil(CFG.windowS / step));
    const x = new Array(n);
    const pick = new Array(n);
    let j = 0;
    for (let k = 0; k < n; k += 1) {
      const ts = last.t - (n - 1 - k) * step;
      x[k] = ts * 1000;
      while (j + 1 < cols.length && cols[j + 1].t <= ts + step / 2) j += 1;
      const c = cols[j];
      pick[k] = c.t <= ts + step / 2 && ts - c.t <= CFG.maxGapCols * step ? c : null;
    }
    const y = new Array(rows);
    const z = new Array(rows);
    for (let r = 0; r < rows; r += 1) {
      y[r] = (lo + r + 0.5) * last.binSize;
      const row = new Array(n);
      const bin = lo + r;
      for (let k = 0; k < n; k += 1) {
        const c = pick[k];
        const v = c ? c.sizes[bin - c.bin0] : undefined;
        row[k] = v === undefined ? null : v;
      }
      z[r] = row;
    }
    return { x: x, y: y, z: z, lo: lo, hi: hi, binSize: last.binSize };
  }

  function colourTop(z) {
    // the 97th percentile of recent sizes: one wall must not wash out the rest
    const sample = [];
    for (const row of z) {
      for (let c = Math.max(0, row.length - 20); c < row.length; c += 1) if (row[c] > 0) sample.push(row[c]);
    }
    if (!sample.length) return 1;
    sample.sort(function (a, b) { return a - b; });
    return sample[Math.floor(sample.length * 0.97)] || sample[sample.length - 1];
  }

  /* The canvas over the figure's plot area (inside #panel-heatmap, which is its offset parent). */
  function tradeCanvas(div) {
    let canvas = byId('heatmap-trades');
    if (!canvas) {
      canvas = document.createElement('canvas');
      canvas.id = 'heatmap-trades';
      canvas.className = 'trades-layer';
      canvas.setAttribute('aria-hidden', 'true');
      div.parentNode.appendChild(canvas);
    }
    return canvas;
  }

  /* Liquidations: a shape (diamond) no trade has; the side liquidated told by the
   * shape as well as the colour (and the hover): longs (a forced sell) filled and
   * outlined, shorts (a forced buy) tall and open. */
  const LIQ_SHAPES = { sell: 'diamond', buy: 'diamond-tall-open' };

  function liquidationTrace(side) {
    const x = [];
    const y = [];
    const size = [];
    const text = [];
    let maxNotional = 1e-9;
    for (const lq of data.liquidations) maxNotional = Math.max(maxNotional, lq.notional);
    for (const lq of data.liquidations) {
      if (lq.side !== side) continue;
      x.push(lq.ts * 1000);
      y.push(lq.price);
      size.push(9 + 26 * Math.sqrt(lq.notional / maxNotional));
      text.push(LIQ.format.qty(lq.qty) + ' (' + LIQ.format.num(lq.notional / 1000, 0) + 'k USDT)');
    }
    const longs = side === 'sell';
    return {
      type: 'scatter', mode: 'markers', name: longs ? 'longs liquidated' : 'shorts liquidated', x: x, y: y,
      text: text,
      marker: { size: size, color: longs ? COLOR.liqLong : COLOR.liqShort, opacity: 0.9, symbol: LIQ_SHAPES[side],
                line: longs ? { width: 2, color: COLOR.text } : { width: 2.5 } },
      hovertemplate: (longs ? 'long liquidated' : 'short liquidated') + ' %{y} %{text}<extra></extra>',
    };
  }

  function openInterestTrace() {
    return {
      type: 'scatter', mode: 'lines', name: 'open interest', x: data.oi.t, y: data.oi.v, yaxis: 'y3',
      line: { color: COLOR.profile, width: 1, dash: 'dot' }, hovertemplate: 'open interest %{y:,.3f}<extra></extra>',
    };
  }

  /* shape as well as colour: up for a buy aggressor, down for a sell */
  const SHAPES = { buy: 'triangle-up', sell: 'triangle-down' };

  /* Trades as triangles, area ~ quantity (4 to 26 px across, as the marker sizes were):
   * up and green for a buy aggressor, down and red for a sell. */
  function drawTrades() {
    const div = byId('heatmap');
    const full = div && div._fullLayout;
    if (!full || !full.xaxis || !full.yaxis || div.offsetParent === null) return;
    const xa = full.xaxis;
    const ya = full.yaxis;
    const canvas = tradeCanvas(div);
    const w = Math.max(1, Math.round(xa._length));
    const h = Math.max(1, Math.round(ya._length));
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
      canvas.style.width = w + 'px';
      canvas.style.height = h + 'px';
    }
    canvas.style.left = (div.offsetLeft + xa._offset) + 'px';
    canvas.style.top = (div.offsetTop + ya._offset) + 'px';
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    let maxQty = 1e-9;
    for (const tr of data.trades) maxQty = Math.max(maxQty, tr.qty);
    const counts = { buy: 0, sell: 0 };
    ctx.globalAlpha = 0.7;
    for (const side of ['buy', 'sell']) {
      const up = SHAPES[side] === 'triangle-up';
      ctx.fillStyle = side === 'buy' ? COLOR.bid : COLOR.ask;
      ctx.beginPath();
      for (const tr of data.trades) {
        if (tr.side !== side) continue;
        const px = xa.c2p(tr.ts * 1000);
        const py = ya.c2p(tr.price);
        const r = (4 + 22 * Math.sqrt(tr.qty / maxQty)) / 2;
        if (!(px >= -r && px <= w + r && py >= -r && py <= h + r)) continue;
        const tip = up ? -r : r;
        ctx.moveTo(px, py + tip);
        ctx.lineTo(px + r * 0.9, py - tip * 0.6);
        ctx.lineTo(px - r * 0.9, py - tip * 0.6);
        ctx.closePath();
        counts[side] += 1;
      }
      ctx.fill();
    }
    canvas.dataset.buys = String(counts.buy);
    canvas.dataset.sells = String(counts.sell);
    canvas.dataset.buyShape = SHAPES.buy;
    canvas.dataset.sellShape = SHAPES.sell;
  }

  /* Once per figure (a purge forgets its listeners): trades follow every redraw, zoom and pan. */
  function followFigure(div) {
    if (typeof div.on !== 'function' || div._liqTradesHook === div._ev) return;
    div.on('plotly_afterplot', drawTrades);
    div._liqTradesHook = div._ev;
  }

  /* gridOnly: the resting sizes of the newest columns alone (the figure's first draw is
   * split in two tasks: the figure with a small image, then everything). */
  function render(gridOnly) {
    const div = byId('heatmap');
    if (!div || !data.columns.length) return;
    const g = heatGrid(gridOnly === true ? 8 : 0);
    const traces = [
      { type: 'heatmap', name: 'resting size', x: g.x, y: g.y, z: g.z, zmin: 0, zmax: colourTop(g.z),
        colorscale: LIQ.style.heatScale, showscale: false, hovertemplate: '%{y}<br>%{z:.3f}<extra></extra>' },
      { type: 'scatter', mode: 'lines', name: 'best bid', x: data.series.t, y: data.series.bid,
        line: { color: COLOR.bid, width: 1.5, shape: 'hv' }, hoverinfo: 'skip' },
      { type: 'scatter', mode: 'lines', name: 'best ask', x: data.series.t, y: data.series.ask,
        line: { color: COLOR.ask, width: 1.5, shape: 'hv' }, hoverinfo: 'skip' },
      liquidationTrace('sell'),
      liquidationTrace('buy'),
      openInterestTrace(),
      LIQ.panels.profile.trace(g),
    ];
    if (gridOnly === true) traces.length = 1;
    const layout = keptLayout('heatmap', function () {
      return baseLayout({
        margin: { l: 64, r: 8, t: 6, b: 28 },
        xaxis: axis({ type: 'date', domain: [0, 0.85] }),
        xaxis2: axis({ domain: [0.865, 1], anchor: 'y', showticklabels: false, title: { text: '' } }),
        yaxis: axis({ tickformat: ',.' + data.decimals + 'f' }),
        // the open interest: its own scale, in the top fifth, no labels (the metrics bar has the figure)
        yaxis3: { domain: [0.8, 1], overlaying: false, anchor: 'x', showgrid: false, showticklabels: false,
                  zeroline: false, fixedrange: true },
        bargap: 0,
      });
    });
    Plotly.react(div, traces, layout, LIQ.style.plotConfig);
    followFigure(div);
    drawTrades();
  }

  /* A new symbol: no trades of the old one left on the canvas. */
  function reset() {
    const canvas = byId('heatmap-trades');
    if (canvas) canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  }

  function drawn() {
    const div = byId('heatmap');
    return Boolean(div && div._fullLayout && div.data && div.data.length);
  }

  LIQ.panels.heatmap = { render: render, reset: reset, drawTrades: drawTrades, drawn: drawn };
})(window.LIQ);
