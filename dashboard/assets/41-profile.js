/*
 * The volume profile: traded volume per price bin as horizontal bars, drawn as one
 * trace of the heatmap's figure (its second x axis) so the two share the price axis.
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;

  /* The bars inside the heatmap's price rows (grid: heatGrid()'s lo, hi, binSize). */
  function trace(grid) {
    const p = data.profile;
    const x = [];
    const y = [];
    if (p) {
      for (let i = 0; i < p.sizes.length; i += 1) {
        const b = p.bin0 + i;
        if (b < grid.lo || b >= grid.hi) continue;
        x.push(p.sizes[i]);
        y.push((b + 0.5) * p.bin_size);
      }
    }
    return {
      type: 'bar', orientation: 'h', name: 'volume profile', x: x, y: y, xaxis: 'x2', yaxis: 'y',
      marker: { color: LIQ.style.color.profile }, width: grid.binSize * 0.9, hovertemplate: '%{y}: %{x:.3f}<extra></extra>',
    };
  }

  LIQ.panels.profile = { trace: trace };
})(window.LIQ);
