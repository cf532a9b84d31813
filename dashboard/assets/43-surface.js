/*
 * The 3D liquidity surface: time x price x size, the heatmap columns downsampled to
 * surfaceCols x surfaceRows. When it is drawn (every 5 s while on screen, never two
 * at once) is the scheduler's call; this file sets surfaceBusy back when Plotly is done.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const data = LIQ.data;
  const sched = LIQ.state.schedule;
  const byId = LIQ.dom.byId;
  const { sceneAxis, keptLayout, baseLayout } = LIQ.plot;

  function surfaceGrid() {
    const cols = data.columns;
    const step = Math.max(1, Math.ceil(cols.length / CFG.surfaceCols));
    const picked = [];
    for (let i = cols.length - 1; i >= 0; i -= step) picked.unshift(cols[i]);
    const last = cols[cols.length - 1];
    const lo = Math.round(last.bin0 + last.sizes.length / 2 - CFG.surfaceRows / 2);
    const now = last.t;
    const x = picked.map(function (c) { return Math.round((c.t - now) * 10) / 10; });
    const y = [];
    const z = [];
    for (let r = 0; r < CFG.surfaceRows; r += 1) {
      y.push((lo + r + 0.5) * last.binSize);
      z.push(picked.map(function (c) { const v = c.sizes[lo + r - c.bin0]; return v === undefined ? 0 : v; }));
    }
    return { x: x, y: y, z: z };
  }

  function render() {
    const div = byId('surface');
    if (!div || !data.columns.length) { sched.surfaceBusy = false; return; }
    const t0 = performance.now();
    const g = surfaceGrid();
    const traces = [{ type: 'surface', x: g.x, y: g.y, z: g.z, colorscale: LIQ.style.heatScale, showscale: false,
      hovertemplate: '%{x} s, %{y}: %{z:.3f}<extra></extra>' }];
    const layout = keptLayout('surface', function () {
      return baseLayout({
        margin: { l: 0, r: 0, t: 0, b: 0 },
        scene: {
          xaxis: sceneAxis('seconds ago'), yaxis: sceneAxis('price'), zaxis: sceneAxis('size'),
          camera: { eye: { x: -1.6, y: -1.4, z: 0.9 } }, aspectmode: 'manual', aspectratio: { x: 1.6, y: 1, z: 0.6 },
        },
      });
    });
    sched.surfaceBusy = true;
    Promise.resolve(Plotly.react(div, traces, layout, LIQ.style.plotConfig))
      .catch(function () { /* a lost WebGL context: the next redraw tries again */ })
      .then(function () {
        sched.surfaceBusy = false;
        LIQ.state.stats.surfaceDraws += 1;
        LIQ.state.stats.surfaceMs += performance.now() - t0;
      });
  }

  LIQ.panels.surface = { render: render };
})(window.LIQ);
