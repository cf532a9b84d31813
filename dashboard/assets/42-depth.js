/*
 * The depth curve: cumulative size of the last frame's levels (50 a side). Drawn in
 * the frame handler at most every depthEveryMs (the scheduler keeps the newest shown).
 */
(function (LIQ) {
  'use strict';

  const COLOR = LIQ.style.color;
  const data = LIQ.data;
  const byId = LIQ.dom.byId;
  const { axis, keptLayout, baseLayout } = LIQ.plot;

  function cumulative(levels) {
    const x = [];
    const y = [];
    let sum = 0;
    for (const lv of levels) { sum += lv[1]; x.push(lv[0]); y.push(sum); }
    return { x: x, y: y };
  }

  /* empty: the figure and its axes only (a first draw costs the most, split in two tasks) */
  function render(empty) {
    const div = byId('depth');
    if (!div) return;
    const b = cumulative(empty === true ? [] : data.last.bid_levels || []);
    const a = cumulative(empty === true ? [] : data.last.ask_levels || []);
    const traces = [
      { type: 'scatter', mode: 'lines', name: 'bids', x: b.x, y: b.y, fill: 'tozeroy',
        line: { color: COLOR.bid, shape: 'hv', width: 1.5 }, fillcolor: 'rgba(38,166,154,0.25)' },
      { type: 'scatter', mode: 'lines', name: 'asks', x: a.x, y: a.y, fill: 'tozeroy',
        line: { color: COLOR.ask, shape: 'hv', width: 1.5 }, fillcolor: 'rgba(239,83,80,0.25)' },
    ];
    const layout = keptLayout('depth', function () {
      return baseLayout({
        margin: { l: 48, r: 22, t: 6, b: 28 },   // room for the last x tick label (overflow 'allow')
        xaxis: axis({ tickformat: ',.' + data.decimals + 'f', nticks: 5 }),
        yaxis: axis({ title: { text: 'cumulative size', font: { size: 10 } } }),
      });
    });
    Plotly.react(div, empty === true ? traces.slice(0, 1) : traces, layout, LIQ.style.plotConfig);
  }

  function drawn() {
    const div = byId('depth');
    return Boolean(div && div._fullLayout);
  }

  LIQ.panels.depth = { render: render, drawn: drawn };
})(window.LIQ);
