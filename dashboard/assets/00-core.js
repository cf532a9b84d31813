/*
 * Core of the dashboard's browser side: the namespace every other file adds to, the
 * configuration, the named state objects, and the helpers all panels share (DOM,
 * number formats, Plotly axes and kept layouts).
 *
 * The page is a client of the public API. It opens ws://<api>/ws/<symbol> itself,
 * keeps the last 180 s of frames in bounded arrays and draws them straight into the
 * DOM (ladder, metrics, alerts, feed) and with Plotly.react (heatmap + volume
 * profile, depth curve, 3D surface, impact curve). No Dash server callback runs per
 * tick.
 *
 * One namespace: window.dash_clientside.liq, also reachable as window.LIQ. Its top
 * level is the public API (90-main.js): Dash calls LIQ.start and LIQ.impact as
 * clientside callbacks; tests and the benchmark read LIQ.debug(), LIQ.lastFrame() and
 * LIQ.resetStats(). Beside it: LIQ.cfg, LIQ.style, LIQ.state (named state objects),
 * LIQ.data (the frame store), the shared helpers LIQ.dom, LIQ.format, LIQ.plot, the
 * machinery LIQ.store, LIQ.schedule, LIQ.connection, LIQ.pause, and one object per
 * panel under LIQ.panels (banner, metrics, ladder, heatmap, profile, depth, surface,
 * alerts, impact, feed); around them the page's own controls: LIQ.timeline (the
 * recorded history under the banner), LIQ.alertSteps, LIQ.layout (which panels show,
 * the screen size), LIQ.url (the view in the address bar) and LIQ.keys (keyboard
 * shortcuts). No build step:
 * Dash serves every .js in assets/ as a plain script, in file-name order, so the
 * number prefix is the load order. This file must come first (the others read
 * window.LIQ and this file's helpers when they load); everything else only defines
 * functions and calls across files through the namespace when they run, after every
 * file has loaded. See docs/dashboard.md for the file list.
 */
(function () {
  'use strict';

  const clientside = window.dash_clientside = window.dash_clientside || {};
  const LIQ = clientside.liq = clientside.liq || {};
  window.LIQ = LIQ;

  LIQ.cfg = {
    windowS: 180,            // history kept and drawn, seconds
    columnS: 0.5,            // heatmap time bucket: frames closer than this share a column
    ladderLevels: 10,
    maxAlerts: 50,
    maxTrades: 4000,
    maxHeatRows: 360,        // price bins drawn on the heatmap
    heavyEveryMs: 900,       // heatmap + profile: at most about once a second
    depthEveryMs: 200,       // depth curve: at most 5 redraws a second (the newest frame is always drawn)
    maxGapCols: 4,           // heatmap: a hole longer than this many grid steps is left empty
    surfaceEveryMs: 5000,    // 3D surface: at most every 5 s, never two at once
    surfaceCols: 45,
    surfaceRows: 60,
    backoffStartMs: 500,
    backoffMaxMs: 10000,
    staleAfterMs: 15000,     // no message for this long on an open socket: reconnect
    healthEveryMs: 10000,
    disconnectedAfterMs: 30000,  // a socket down this long is shown as disconnected (retries go on)
    impactEveryMs: 2000,     // impact panel: re-walk the book at most this often, one request in flight
    impactNotional: 100000,  // default size: about this many USDT at mid, rounded to 1-2-5 (BTC ~1, ETH ~20-50)
    impactSteps: [0.1, 0.2, 0.5, 1, 2, 5, 10],   // curve sizes, in default sizes (BTC: 0.1 .. 10 BTC)
    statsKept: 2000,
    pauseHeldMax: 900,       // messages kept while paused (15 min at 1 frame/s); past it, play reloads the history
    sliceMs: 12,             // a history message is taken in slices of about this much work, one task each
    timelineEveryMs: 30000,  // the timeline asks the API for coverage and alerts this often
    speeds: [1, 2, 5, 10],   // playback speeds of the recorded history
    liveEdgeS: 3,            // a seek closer than this to now goes back to live instead
    seekStepS: 10,           // the timeline's slider: arrow keys move this much (Page Up / Down: 6x)
    maxMarks: 1000,          // alert markers drawn on the timeline (the newest)
  };
  const CFG = LIQ.cfg;

  LIQ.style = {
    color: {
      bid: '#26a69a', ask: '#ef5350', wall: '#ff9800', text: '#c9d1d9', muted: '#8b949e',
      grid: '#21262d', panel: '#161b22', profile: '#7e8ce0',
      liqLong: '#ff9f1c', liqShort: '#c77dff',   // liquidation markers: longs (forced sells), shorts (forced buys)
    },
    heatScale: [
      [0, '#0d1117'], [0.08, '#0b2a4a'], [0.25, '#1565c0'], [0.5, '#00acc1'],
      [0.75, '#fdd835'], [0.92, '#ff7043'], [1, '#ffffff'],
    ],
    plotConfig: { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d', 'select2d'] },
  };
  const COLOR = LIQ.style.color;

  /* ---------------------------------------------------------------- state */

  /* Everything the page holds between frames, by owner. The frames themselves are in
   * LIQ.data (01-store.js). These objects are never replaced (only their fields), so
   * a file may keep a reference to one; stats is replaced by resetStats(). */
  LIQ.state = {
    /* what the page was started with and what the API said about itself */
    session: { config: null, apiBase: '', symbol: null, health: null, timers: [] },
    /* the websocket: state is connecting, connected, reconnecting, disconnected (or idle);
     * for the recorded history also stopped (paused: no socket) and closed (the recording ended) */
    conn: {
      ws: null, gen: 0, state: 'idle', detail: '', retryMs: CFG.backoffStartMs, attempts: 0,
      retryTimer: null, retryAt: 0, downSince: 0, lastMsgAt: 0,
      history: null,   // {from, speed}: the socket reads the recording (/ws/<symbol>?from=&speed=)
      loading: null,   // a history message being taken in slices, and the frames that came meanwhile
    },
    /* DOM and Plotly objects kept across redraws */
    view: { ladder: null, feedCells: null, feedKeys: null, textCache: new Map(), layouts: {} },
    /* what redraws when (02-scheduler.js) */
    schedule: {
      inHandler: false, lastDepth: 0, depthTimer: null, heatPending: false, lastHeavy: 0,
      surfaceBusy: false, surfaceVisible: true, surfaceStale: false, surfaceObserver: null, lastSurface: 0,
      steps: 0, stepsLeft: 0,   // renderInSteps: its generation and the steps still to run
    },
    /* the impact calculator (60-impact.js) */
    impact: {
      side: 'buy', size: null, auto: null, gen: 0, inFlight: false, again: false, lastAt: 0,
      clicks: 0, submits: 0, rejected: false, requests: 0, maxInFlight: 0, inFlightNow: 0,
      visible: true, observer: null, skipped: 0,
    },
    /* which panels show and on what screen (80-layout.js); size: desktop, tablet, phone */
    layout: { shown: null, size: 'desktop', figureObserver: null },
    /* the paused view (11-pause.js): the moment shown and the messages held meanwhile;
     * target: the moment a link asked for, until the history arrives */
    pause: { active: false, moment: null, held: [], overflow: false, target: null, notice: '' },
    /* the recorded history (15-timeline.js): what the API holds (available: null until
     * asked, coverage, alert markers) and what is shown: mode live or history, the moment
     * (time), speed, playing, finished; link: a link's moment waiting for the coverage */
    timeline: {
      available: null, why: '', coverage: null, fetchedAt: 0, marks: new Map(), marksTo: null, gen: 0,
      mode: 'live', from: null, time: null, loaded: false, step: null, speed: 1, playing: false, finished: false, pauseOnFrame: false,
      link: null, drag: null, drawnHi: 0, drawnKey: '', urlAt: 0, waiting: false,
    },
    /* what drawing cost (LIQ.debug().stats), from LIQ.schedule.freshStats() */
    stats: null,
  };
  const view = LIQ.state.view;

  /* ---------------------------------------------------------------- small DOM helpers */

  function byId(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function setText(id, text, cls) {
    const key = text + '|' + (cls || '');
    if (view.textCache.get(id) === key) return;
    const node = byId(id);
    if (!node) return;
    view.textCache.set(id, key);
    node.textContent = text;
    if (cls !== undefined) node.className = cls;
  }

  function pageHidden() { return document.visibilityState === 'hidden'; }

  /* 'auto' (instant) when the user asked the system for reduced motion, else 'smooth' */
  function scrollBehaviour() {
    return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth';
  }

  LIQ.dom = { byId: byId, el: el, setText: setText, pageHidden: pageHidden, scrollBehaviour: scrollBehaviour };

  /* ---------------------------------------------------------------- number formats */

  const formats = new Map();

  function fmt(x, decimals) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '\u2013';
    let f = formats.get(decimals);
    if (!f) {
      f = new Intl.NumberFormat('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
      formats.set(decimals, f);
    }
    return f.format(x);
  }

  /* prices with the decimals inferred from the current book (LIQ.data.decimals) */
  function fmtPrice(x) { return fmt(x, LIQ.data.decimals); }

  function fmtQty(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return '\u2013';
    return fmt(x, Math.abs(x) >= 1000 ? 0 : 3);
  }

  function dirClass(x) {
    if (x === null || x === undefined || !Number.isFinite(x) || x === 0) return 'v';
    return x > 0 ? 'v up' : 'v down';
  }

  function clockTime(tsSeconds) {
    const t = new Date(tsSeconds * 1000);
    return t.toLocaleTimeString('en-GB', { hour12: false });
  }

  /* a recorded moment: 2026-11-28 09:15:02 UTC */
  function utcTime(tsSeconds) {
    return new Date(tsSeconds * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  }

  LIQ.format = { num: fmt, price: fmtPrice, qty: fmtQty, dirClass: dirClass, clockTime: clockTime, utcTime: utcTime };

  /* ---------------------------------------------------------------- plot styling */

  /* ticklabeloverflow 'allow': Plotly's default ('hide past div') measures every tick
   * label against every other with getBoundingClientRect on each redraw (forced layouts,
   * about 5 ms a figure); the margins already leave room for the labels. */
  function axis(extra) {
    return Object.assign({
      gridcolor: COLOR.grid, zerolinecolor: COLOR.grid, linecolor: COLOR.grid, color: COLOR.muted,
      tickfont: { size: 10 }, ticklabeloverflow: 'allow',
    }, extra);
  }

  function sceneAxis(title) {
    return { title: { text: title }, gridcolor: '#30363d', backgroundcolor: COLOR.panel, color: COLOR.muted,
      showbackground: true };
  }

  /* One layout object per panel, rebuilt only when the symbol or the price decimals
   * change; each redraw bumps datarevision, so Plotly diffs data only. */
  function keptLayout(name, build) {
    const key = LIQ.state.session.symbol + '|' + LIQ.data.decimals;
    let kept = view.layouts[name];
    if (!kept || kept.key !== key) {
      kept = { key: key, layout: build() };
      kept.layout.datarevision = 0;
      view.layouts[name] = kept;
    }
    kept.layout.datarevision += 1;
    return kept.layout;
  }

  function baseLayout(extra) {
    return Object.assign({
      uirevision: LIQ.state.session.symbol,   // keeps the user's zoom/pan until the symbol changes
      paper_bgcolor: COLOR.panel, plot_bgcolor: COLOR.panel, font: { color: COLOR.text, size: 11 },
      showlegend: false, hovermode: 'closest',
    }, extra);
  }

  LIQ.plot = { axis: axis, sceneAxis: sceneAxis, keptLayout: keptLayout, baseLayout: baseLayout };

  /* one object per panel, each added by its own file */
  LIQ.panels = {};
})();
