/*
 * The scheduler: what redraws when, and what it cost. LIQ.schedule.renderAll is
 * called after every frame: light panels are drawn in the handler, the depth curve at
 * most every depthEveryMs, the heatmap and the 3D surface in their own tasks right
 * after it. A history message is drawn by renderInSteps: the light panels, then the
 * depth curve, the heatmap and the surface each in a task of its own, the surface only
 * when it is on screen. A panel the user has hidden (80-layout.js) is not
 * drawn at all; LIQ.schedule.redraw draws it the moment it is shown again. Every draw
 * goes through timed(), which fills LIQ.state.stats (read by LIQ.debug() and
 * dashboard/bench_browser.py).
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const sched = LIQ.state.schedule;
  const data = LIQ.data;
  const byId = LIQ.dom.byId;
  const pageHidden = LIQ.dom.pageHidden;

  /* false for a panel the user has hidden (80-layout.js, loaded later) */
  function shown(name) { return LIQ.layout.shown(name); }

  function freshStats() {
    return {
      frames: 0, totalMs: 0, maxMs: 0, recent: [], longTasks: 0, longTaskMs: 0, panels: {},
      surfaceDraws: 0, surfaceMs: 0, historyMs: 0, deferredMs: 0, surfaceSkipped: 0,
    };
  }

  /* The frame handler's own time (connection's onMessage), one entry per frame. */
  function record(ms) {
    const st = LIQ.state.stats;
    st.frames += 1;
    st.totalMs += ms;
    st.maxMs = Math.max(st.maxMs, ms);
    st.recent.push(ms);
    if (st.recent.length > CFG.statsKept) st.recent.splice(0, st.recent.length - CFG.statsKept);
  }

  /* Every panel draw goes through here. Work done outside the frame handler (heatmap,
   * surface, throttled depth redraws) is also summed in stats.deferredMs, so
   * handler + deferred is all the drawing work the page did. */
  function timed(name, fn) {
    const t0 = performance.now();
    fn();
    const p = LIQ.state.stats.panels;
    const entry = p[name] || (p[name] = { calls: 0, ms: 0, maxMs: 0 });
    const ms = performance.now() - t0;
    entry.calls += 1;
    entry.ms += ms;
    entry.maxMs = Math.max(entry.maxMs, ms);
    if (!sched.inHandler) LIQ.state.stats.deferredMs += ms;
  }

  function renderAll(force) {
    if (!data.last) return;
    timed('metrics', LIQ.panels.metrics.render);
    if (shown('ladder')) timed('ladder', LIQ.panels.ladder.render);
    if (shown('depth')) scheduleDepth(force);
    if (shown('feed')) timed('feed', LIQ.panels.feed.render);
    timed('sync', LIQ.panels.banner.renderSync);
    LIQ.panels.banner.renderConn();
    if (data.alertsDirty && shown('alerts')) timed('alerts', LIQ.panels.alerts.render);
    scheduleHeavy(force);
  }

  /* Everything, once, after a history message: one task per step, so no single task
   * carries the whole page. The surface is drawn only when on screen (else marked stale
   * and drawn when it scrolls into view). */
  function renderInSteps() {
    if (!data.last) return;
    sched.steps += 1;
    const gen = sched.steps;
    const steps = [
      function () {
        timed('metrics', LIQ.panels.metrics.render);
        if (shown('ladder')) timed('ladder', LIQ.panels.ladder.render);
        if (shown('feed')) timed('feed', LIQ.panels.feed.render);
        timed('sync', LIQ.panels.banner.renderSync);
        LIQ.panels.banner.renderConn();
        if (shown('alerts')) timed('alerts', LIQ.panels.alerts.render);
      },
      function () {
        // a figure drawn for the first time costs the most: its axes first, its data next
        if (shown('depth') && !LIQ.panels.depth.drawn()) timed('depth', function () { LIQ.panels.depth.render(true); });
      },
      function () { if (shown('depth')) scheduleDepth(true); },
      function () {
        // the heatmap's first draw: a small image first, the whole figure next
        if (shown('heatmap') && !LIQ.panels.heatmap.drawn()) {
          timed('heatmap', function () { LIQ.panels.heatmap.render(true); });
        }
      },
      function () {
        sched.lastHeavy = performance.now();
        if (shown('heatmap')) timed('heatmap', LIQ.panels.heatmap.render);
      },
      function () { scheduleSurface(false, true); },
    ];
    sched.stepsLeft = steps.length;
    const run = function (i) {
      if (gen !== sched.steps || !data.last) { sched.stepsLeft = 0; return; }
      steps[i]();
      sched.stepsLeft = steps.length - i - 1;
      if (i + 1 < steps.length) setTimeout(function () { run(i + 1); }, 0);
    };
    run(0);
  }

  /* A panel shown again is drawn at once from what the store holds (the paused moment,
   * when paused). The impact panel redraws itself when it comes into view (60-impact.js). */
  function redraw(name) {
    if (!data.last) return;
    if (name === 'ladder') timed('ladder', LIQ.panels.ladder.render);
    else if (name === 'feed') timed('feed', LIQ.panels.feed.render);
    else if (name === 'alerts') timed('alerts', LIQ.panels.alerts.render);
    else if (name === 'depth') scheduleDepth(true);
    else if (name === 'heatmap') queueHeatmap();
    else if (name === 'surface') scheduleSurface(true);
  }

  /* Heavy panels run in their own tasks after the frame handler, one per task, so
   * no single task carries the heatmap and the 3D surface together. */
  /* The depth curve is drawn in the handler, but at most every depthEveryMs; a frame
   * that arrives sooner is drawn by a trailing timer, so the newest book is always shown. */
  function scheduleDepth(force) {
    const now = performance.now();
    if (force || now - sched.lastDepth >= CFG.depthEveryMs) {
      clearTimeout(sched.depthTimer);
      sched.depthTimer = null;
      sched.lastDepth = now;
      timed('depth', LIQ.panels.depth.render);
    } else if (!sched.depthTimer) {
      sched.depthTimer = setTimeout(function () {
        sched.depthTimer = null;
        sched.lastDepth = performance.now();
        if (data.last && shown('depth')) timed('depth', LIQ.panels.depth.render);
      }, CFG.depthEveryMs - (now - sched.lastDepth));
    }
  }

  /* The 3D surface is drawn with the history and then every surfaceEveryMs while it is on
   * screen; off screen (below the fold) or in a hidden tab it is only marked stale and
   * redrawn the moment it scrolls into view. */
  function watchSurface() {
    const div = byId('surface');
    if (!div || sched.surfaceObserver || typeof IntersectionObserver === 'undefined') return;
    sched.surfaceObserver = new IntersectionObserver(function (entries) {
      for (const e of entries) sched.surfaceVisible = e.isIntersecting;
      if (sched.surfaceVisible && sched.surfaceStale && data.last) scheduleSurface(true);
    });
    sched.surfaceObserver.observe(div);
  }

  /* due: draw now if it is on screen, whatever the time since the last draw */
  function scheduleSurface(force, due) {
    if (!sched.surfaceObserver) watchSurface();
    if (!shown('surface')) { sched.surfaceStale = true; return; }
    const now = performance.now();
    if (sched.surfaceBusy || (!force && !due && now - sched.lastSurface < CFG.surfaceEveryMs)) return;
    sched.lastSurface = now;
    if (!force && (!sched.surfaceVisible || pageHidden())) {
      sched.surfaceStale = true;
      LIQ.state.stats.surfaceSkipped += 1;
      return;
    }
    sched.surfaceStale = false;
    sched.surfaceBusy = true;
    setTimeout(function () { timed('surface', LIQ.panels.surface.render); }, 0);
  }

  function queueHeatmap() {
    if (sched.heatPending) return;
    sched.lastHeavy = performance.now();
    sched.heatPending = true;
    setTimeout(function () {
      sched.heatPending = false;
      if (shown('heatmap')) timed('heatmap', LIQ.panels.heatmap.render);
    }, 0);
  }

  function scheduleHeavy(force) {
    const now = performance.now();
    if (shown('heatmap') && (force || (now - sched.lastHeavy >= CFG.heavyEveryMs && !pageHidden()))) queueHeatmap();
    scheduleSurface(force);
  }

  LIQ.schedule = {
    freshStats: freshStats, record: record, timed: timed, renderAll: renderAll,
    heavy: scheduleHeavy, watchSurface: watchSurface, redraw: redraw, renderInSteps: renderInSteps,
  };
})(window.LIQ);
