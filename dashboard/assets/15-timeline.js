/*
 * The timeline under the banner: the recorded history of the symbol shown.
 *
 * What the API holds (GET /history/<symbol>/coverage, asked at start and every
 * cfg.timelineEveryMs): the ranges with an in-sync book, drawn as bars, and the gaps
 * between them with their reason (the app not running, the book resyncing), drawn as
 * gaps, never filled in; the alerts (GET /history/<symbol>/alerts, the new ones each
 * time) as markers, through the alerts panel's minimum-notional filter. A cursor marks
 * the moment shown: the right end while live.
 *
 * Seeking (a click or a drag on the strip, the previous / next alert buttons, ← / →
 * while in history, a link's t older than the last 180 s) reopens the socket on the
 * recorded history, /ws/<symbol>?from=<t>&speed=<x>: every frame then carries
 * `history` {time, speed, finished}, the banner says HISTORY and the time shown, and
 * the address carries t. Pause closes that socket (the server stops rebuilding) and
 * play reopens it just after the moment shown, keeping what is drawn; a new speed
 * (1, 2, 5, 10x) does the same while playing. The last frame of the recording says
 * `finished` and the banner says the recording ends there. Live (the button, L) goes
 * back to the plain /ws/<symbol>.
 *
 * When the API keeps no history (/health's history.on false: started with --no-history,
 * or a replay) nothing is asked and the strip stays hidden; an error or nothing recorded
 * yet hides it too: the page is the live page as before. Owns
 * LIQ.state.timeline and #timeline.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const tl = LIQ.state.timeline;
  const session = LIQ.state.session;
  const { byId, el, setText } = LIQ.dom;
  const { utcTime } = LIQ.format;

  function inHistory() { return tl.mode === 'history'; }
  function playing() { return tl.mode === 'history' && tl.playing; }

  /* The moment shown for the address: in history, or a link's moment waiting for the coverage. */
  function moment() {
    if (tl.mode === 'history') return tl.time;
    return tl.link;
  }

  function now() { return Date.now() / 1000; }

  /* ---------------------------------------------------------------- what the API holds */

  function getJson(path) {
    return fetch(LIQ.connection.apiUrl(path)).then(function (r) {
      if (!r.ok) return Promise.reject(new Error('HTTP ' + r.status));
      return r.json();
    });
  }

  /* The coverage, then the alerts since the last ask, once /health says the API keeps a
   * history (so a page on an API without one asks nothing). A symbol switch makes late
   * answers moot. */
  function refresh() {
    const symbol = session.symbol;
    if (!symbol) return;
    const health = session.health;
    if (!health) { tl.waiting = true; return; }   // asked again when /health answers (onHealth)
    if (!(health.history && health.history.on)) {
      tl.available = false;
      tl.why = 'history is off';
      render(true);
      if (tl.link !== null) openLink();
      return;
    }
    const gen = tl.gen;
    const sym = encodeURIComponent(symbol);
    getJson('/history/' + sym + '/coverage')
      .then(function (body) {
        if (gen !== tl.gen) return null;
        tl.coverage = body;
        tl.fetchedAt = now();
        const span = spanOf(body);
        tl.available = span !== null;
        tl.why = tl.available ? '' : 'nothing recorded yet';
        if (!tl.available) return null;
        const from = tl.marksTo === null ? span[0] : tl.marksTo - 60;   // an alert's latest state may change
        const to = tl.fetchedAt;
        return getJson('/history/' + sym + '/alerts?from=' + from.toFixed(3) + '&to=' + to.toFixed(3))
          .then(function (got) {
            if (gen !== tl.gen) return;
            for (const a of got.alerts || []) keepMark(a);
            tl.marksTo = to;
          })
          .catch(function () { /* the markers come with the next refresh */ });
      })
      .catch(function (err) {
        if (gen !== tl.gen) return;
        tl.available = false;
        tl.why = String(err && err.message || err);
      })
      .then(function () {
        if (gen !== tl.gen) return;
        render(true);
        if (tl.link !== null) openLink();
      });
  }

  /* /health answered (20-banner.js). */
  function onHealth() {
    if (!tl.waiting) return;
    tl.waiting = false;
    refresh();
  }

  function keepMark(a) {
    const t = Number.isFinite(a.born_ts) ? a.born_ts : a.ts;
    if (!Number.isFinite(t)) return;
    tl.marks.set(a.id, { id: a.id, t: t, type: a.type, side: a.side, price: a.price,
                         peak: a.peak_notional === null || a.peak_notional === undefined ? a.notional : a.peak_notional });
  }

  /* [first moment with an in-sync book, last recorded] of a coverage answer, or null
   * when it holds none: the strip starts where there is a book to show. */
  function spanOf(cov) {
    if (!cov || !(cov.ranges || []).length) return null;
    const lo = cov.ranges[0][0];
    let hi = -Infinity;
    for (const r of cov.ranges.concat(cov.book_ranges || [])) hi = Math.max(hi, r[1]);
    for (const g of cov.gaps || []) hi = Math.max(hi, g.to);
    return hi > lo ? [lo, hi] : null;
  }

  /* The strip's time span: the first recorded moment to now. */
  function span() {
    const s = spanOf(tl.coverage);
    if (!s) return null;
    return [s[0], Math.max(now(), s[1], tl.time || 0)];
  }

  /* The alerts the panel's filter would show, oldest first. */
  function marks() {
    const min = LIQ.panels.alerts.minNotional();
    const list = [];
    for (const m of tl.marks.values()) {
      if (min !== null && min > 0 && !(m.peak >= min)) continue;
      list.push(m);
    }
    list.sort(function (a, b) { return a.t - b.t; });
    return list;
  }

  /* The in-sync ranges; the last one runs on to now while the app is recording it. */
  function ranges() {
    const list = ((tl.coverage && tl.coverage.ranges) || []).map(function (r) { return [r[0], r[1]]; });
    const last = list[list.length - 1];
    if (last && tl.fetchedAt - last[1] < 10) last[1] = Math.max(last[1], now());
    return list;
  }

  /* ---------------------------------------------------------------- drawing */

  function pct(t, s) { return Math.min(100, Math.max(0, (t - s[0]) / (s[1] - s[0]) * 100)); }

  function fmtSpan(seconds) {
    if (seconds < 120) return Math.round(seconds) + ' s';
    if (seconds < 7200) return Math.round(seconds / 60) + ' min';
    return (seconds / 3600).toFixed(1) + ' h';
  }

  /* The bars, gaps and markers are rebuilt when what they show changes, or when the
   * span has grown by a pixel's worth; the cursor and the time every second. */
  function render(force) {
    const box = byId('timeline');
    if (!box) return;
    const show = tl.available === true;
    if (box.hidden === show) box.hidden = !show;
    box.dataset.available = tl.available === null ? 'unknown' : String(tl.available);
    box.dataset.mode = tl.mode;
    if (!show) return;
    const s = span();
    if (!s) return;
    const track = byId('tl-track');
    const width = Math.max(100, track ? track.clientWidth : 100);
    const key = tl.fetchedAt + '|' + tl.marks.size + '|' + LIQ.panels.alerts.minNotional();
    if (force || key !== tl.drawnKey || (s[1] - tl.drawnHi) / (s[1] - s[0]) * width >= 1) {
      tl.drawnKey = key;
      tl.drawnHi = s[1];
      drawBars(s);
      drawMarks(s);
      box.dataset.from = String(s[0]);
      box.dataset.to = String(s[1]);
    }
    drawCursor(s);
  }

  function drawBars(s) {
    const bars = byId('tl-bars');
    if (!bars) return;
    const frag = document.createDocumentFragment();
    for (const r of ranges()) {
      const bar = el('span', 'tl-range');
      bar.style.left = pct(r[0], s) + '%';
      bar.style.width = Math.max(0.2, pct(r[1], s) - pct(r[0], s)) + '%';
      bar.dataset.from = String(r[0]);
      bar.dataset.to = String(r[1]);
      bar.title = 'recorded, book in sync: ' + utcTime(r[0]) + ' \u2013 ' + utcTime(r[1]);
      frag.appendChild(bar);
    }
    for (const g of (tl.coverage && tl.coverage.gaps) || []) {
      if (g.to <= s[0]) continue;   // before the first in-sync moment: not on the strip
      const off = /not running/.test(g.reason);
      const gap = el('span', 'tl-gap ' + (off ? 'tl-gap-off' : 'tl-gap-sync'));
      gap.style.left = pct(g.from, s) + '%';
      gap.style.width = Math.max(0.3, pct(g.to, s) - pct(g.from, s)) + '%';
      gap.dataset.from = String(g.from);
      gap.dataset.to = String(g.to);
      gap.dataset.reason = g.reason;
      gap.title = 'gap, ' + g.reason + ': ' + utcTime(g.from) + ' \u2013 ' + utcTime(g.to) + ' (' + fmtSpan(g.to - g.from) + ')';
      frag.appendChild(gap);
    }
    bars.textContent = '';
    bars.appendChild(frag);
  }

  function drawMarks(s) {
    const box = byId('tl-marks');
    if (!box) return;
    const list = marks().slice(-CFG.maxMarks);
    const frag = document.createDocumentFragment();
    for (const m of list) {
      const mark = el('span', 'tl-mark tl-mark-' + m.type);
      mark.style.left = pct(m.t, s) + '%';
      mark.dataset.ts = String(m.t);
      mark.dataset.id = m.id;
      mark.dataset.type = m.type;
      mark.title = m.type + ' ' + (m.side === 'bid' ? 'bid' : 'ask') + (m.price !== null && m.price !== undefined ? ' ' + m.price : '')
        + ' \u00b7 ' + utcTime(m.t);
      frag.appendChild(mark);
    }
    box.textContent = '';
    box.appendChild(frag);
    box.dataset.count = String(list.length);
  }

  function drawCursor(s) {
    const cursor = byId('tl-cursor');
    const track = byId('tl-track');
    const shown = tl.drag !== null ? tl.drag : (tl.mode === 'history' ? tl.time : null);
    const at = shown === null ? s[1] : shown;
    if (cursor) {
      cursor.style.left = pct(at, s) + '%';
      cursor.dataset.t = shown === null ? '' : String(shown);
      cursor.className = 'tl-cursor' + (shown === null ? ' tl-cursor-live' : ' tl-cursor-history');
    }
    if (track) {
      track.setAttribute('aria-valuemin', String(Math.floor(s[0])));
      track.setAttribute('aria-valuemax', String(Math.ceil(s[1])));
      track.setAttribute('aria-valuenow', String(Math.round(at)));
      track.setAttribute('aria-valuetext', shown === null ? 'live' : utcTime(shown));
    }
    let text = 'live';
    if (tl.drag !== null) text = utcTime(tl.drag);
    else if (tl.mode === 'history' && tl.time !== null) text = utcTime(tl.time);
    setText('tl-time', text, 'tl-time' + (shown === null ? '' : ' tl-time-history'));
    setText('tl-span', fmtSpan(s[1] - s[0]) + ' recorded', 'tl-span muted');
  }

  /* The play button mirrors the Pause button (11-pause.js calls this). */
  function renderPlay(frozen) {
    const button = byId('tl-play');
    if (!button) return;
    const label = frozen ? 'Play' : 'Pause';
    if (button.getAttribute('aria-label') !== label) {
      button.setAttribute('aria-label', label);
      button.textContent = frozen ? '\u25b6' : '\u275a\u275a';
      button.title = label + ' (space)';
    }
    const live = byId('tl-live');
    if (live) live.setAttribute('aria-pressed', tl.mode === 'live' ? 'true' : 'false');
  }

  /* What the banner says in history (20-banner.js). */
  function statusText() {
    if (tl.time === null) return 'loading\u2026';
    const text = utcTime(tl.time);
    if (!tl.loaded) return text + ' \u00b7 loading\u2026';
    if (tl.finished) return text + ' \u00b7 the recording ends here';
    if (!tl.playing) return text + ' \u00b7 paused';
    return text + ' \u00b7 ' + tl.speed + '\u00d7';
  }

  function syncRoot() {
    const root = byId('liq-root');
    if (!root) return;
    let state = 'live';
    if (tl.mode === 'history') state = tl.finished ? 'finished' : !tl.loaded ? 'loading' : tl.playing ? 'playing' : 'paused';
    if (root.dataset.history !== state) root.dataset.history = state;
  }

  function repaint() {
    syncRoot();
    render(false);
    LIQ.pause.render();
    LIQ.panels.banner.renderConn();
    LIQ.panels.banner.renderAge();
  }

  /* ---------------------------------------------------------------- seeking and playing */

  /* Show the recorded history from t (epoch s); paused: stop on the first frame. A moment
   * inside a stop of the app opens where the recording resumes; one within liveEdgeS of
   * now goes back to live. */
  function seek(t, paused) {
    const s = span();
    if (!tl.available || !s || !Number.isFinite(t)) return false;
    t = Math.min(Math.max(t, s[0]), now());
    for (const g of (tl.coverage && tl.coverage.gaps) || []) {
      if (/not running/.test(g.reason) && t >= g.from && t < g.to) t = g.to;
    }
    if (!paused && now() - t < CFG.liveEdgeS) { live(); return true; }
    const keepPlaying = tl.mode === 'history' ? tl.playing || tl.pauseOnFrame : true;
    const play = paused === undefined ? keepPlaying : !paused;
    LIQ.pause.reset();
    LIQ.alertSteps.reset();
    tl.mode = 'history';
    tl.from = t;
    tl.time = t;
    tl.loaded = false;
    tl.step = null;
    tl.finished = false;
    tl.playing = true;
    tl.pauseOnFrame = !play;
    LIQ.store.reset();
    LIQ.connection.open(t, tl.speed);
    tl.urlAt = Date.now();
    repaint();
    LIQ.url.write(false);
    return true;
  }

  /* Every frame of the recorded history, before it is drawn. */
  function onFrame(msg) {
    const h = msg.history;
    if (!h) return;
    if (tl.time !== null && h.time > tl.time + 1e-6 && !tl.pauseOnFrame) {
      const step = h.time - tl.time;
      if (tl.step === null || step < tl.step) tl.step = step;
    }
    tl.time = h.time;
    tl.loaded = true;
    tl.finished = Boolean(h.finished);
    LIQ.connection.resumeAt(h.time + (tl.step || 0.001));
  }

  /* After it is drawn: a seek asked to stop there; the address follows at most once a second. */
  function afterFrame() {
    if (tl.pauseOnFrame) {
      tl.pauseOnFrame = false;
      pause();
      return;
    }
    repaint();
    if (Date.now() - tl.urlAt >= 1000) { tl.urlAt = Date.now(); LIQ.url.write(false); }
  }

  /* The recording's socket closed at its end (after the frame saying finished). */
  function ended() {
    if (tl.mode !== 'history') return;
    tl.finished = true;
    tl.playing = false;
    repaint();
    LIQ.url.write(false);
  }

  function pause() {
    if (tl.mode !== 'history') return false;
    if (!tl.playing && !tl.pauseOnFrame) return false;
    tl.playing = false;
    tl.pauseOnFrame = false;
    if (!tl.finished) LIQ.connection.stop();
    repaint();
    LIQ.url.write(false);
    return true;
  }

  /* Play on from just after the moment shown, keeping what is drawn. */
  function play() {
    if (tl.mode !== 'history') return false;
    if (tl.pauseOnFrame) { tl.pauseOnFrame = false; repaint(); return true; }   // still loading: play on from it
    if (tl.playing || tl.finished || tl.time === null) return false;
    tl.playing = true;
    LIQ.connection.open(tl.time + (tl.step || 0.001), tl.speed);
    repaint();
    return true;
  }

  function toggle() { return tl.playing && !tl.pauseOnFrame ? pause() : play(); }

  function setSpeed(speed) {
    if (!CFG.speeds.includes(speed)) return false;
    tl.speed = speed;
    const select = byId('tl-speed');
    if (select && select.value !== String(speed)) select.value = String(speed);
    if (tl.mode === 'history' && tl.playing && !tl.pauseOnFrame && !tl.finished && tl.time !== null) {
      LIQ.connection.open(tl.time + (tl.step || 0.001), speed);
    }
    repaint();
    LIQ.url.write(false);
    return true;
  }

  /* Back to the live socket; its history message replaces what the page holds. */
  function live() {
    const was = tl.mode;
    tl.mode = 'live';
    tl.time = null;
    tl.step = null;
    tl.playing = false;
    tl.finished = false;
    tl.pauseOnFrame = false;
    tl.link = null;
    LIQ.pause.reset();
    LIQ.alertSteps.reset();
    if (was === 'history') LIQ.connection.open(null);
    repaint();
    LIQ.url.write(false);
    return was === 'history';
  }

  /* The previous (dir -1) or next (+1) alert marker from the moment shown (now, when
   * live): seek to it. False when there is none that way. */
  function stepAlert(dir) {
    const at = tl.mode === 'history' && tl.time !== null ? tl.time : now();
    const list = marks();
    let target = null;
    if (dir < 0) {
      for (const m of list) if (m.t < at - 0.5) target = m;
    } else {
      for (const m of list) if (m.t > at + 0.5) { target = m; break; }
    }
    if (!target) return false;
    return seek(target.t);
  }

  /* A link's moment older than the last 180 s (11-pause.js): opened paused from the
   * recorded history once the coverage says it is there. True: the timeline takes it. */
  function openAt(t) {
    if (tl.available === false) return false;
    tl.link = t;
    if (tl.available === true) openLink();
    return true;
  }

  function openLink() {
    const t = tl.link;
    tl.link = null;
    const s = spanOf(tl.coverage);
    if (tl.available && s && t >= s[0] - 1) {
      seek(t, true);
      return;
    }
    LIQ.pause.notify(tl.available
      ? 'the link\u2019s moment (' + utcTime(t) + ') is before the recorded history: showing live'
      : LIQ.pause.olderNotice(t));
    LIQ.url.write(false);
  }

  /* A new symbol: its own coverage and markers, shown live. */
  function reset() {
    tl.gen += 1;
    tl.mode = 'live';
    tl.time = null;
    tl.step = null;
    tl.playing = false;
    tl.finished = false;
    tl.pauseOnFrame = false;
    tl.link = null;
    tl.drag = null;
    tl.coverage = null;
    tl.available = null;
    tl.marks = new Map();
    tl.marksTo = null;
    tl.drawnKey = '';
    tl.waiting = false;
    syncRoot();
    render(true);
  }

  /* ---------------------------------------------------------------- the strip's controls */

  /* The moment under clientX; rect: the strip's box when the drag began (the strip keeps
   * the scale it had under the finger while the drag lasts). */
  function timeAt(clientX, rect) {
    const track = byId('tl-track');
    const s = span();
    if (!track || !s) return null;
    const r = rect || track.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / Math.max(1, r.width)));
    return s[0] + f * (s[1] - s[0]);
  }

  function wireTrack(track) {
    let rect = null;
    track.addEventListener('pointerdown', function (ev) {
      if (ev.button !== 0) return;
      rect = track.getBoundingClientRect();
      const t = timeAt(ev.clientX, rect);
      if (t === null) return;
      tl.drag = t;
      try { track.setPointerCapture(ev.pointerId); } catch (e) { /* a synthetic pointer */ }
      render(false);
      ev.preventDefault();
    });
    track.addEventListener('pointermove', function (ev) {
      if (tl.drag === null) return;
      const t = timeAt(ev.clientX, rect);
      if (t !== null) { tl.drag = t; render(false); }
    });
    const finish = function (ev, apply) {
      if (tl.drag === null) return;
      const t = apply ? (timeAt(ev.clientX, rect) || tl.drag) : null;
      tl.drag = null;
      if (t !== null) seek(t);
      render(false);
    };
    track.addEventListener('pointerup', function (ev) { finish(ev, true); });
    track.addEventListener('pointercancel', function (ev) { finish(ev, false); });
    // the slider's own keys: arrows move by seekStepS, Page Up / Down by 6x that, Home the start, End live
    track.addEventListener('keydown', function (ev) {
      const s = span();
      if (!s || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const at = tl.mode === 'history' && tl.time !== null ? tl.time : s[1];
      const moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -6, PageUp: 6 };
      if (ev.key in moves) seek(at + moves[ev.key] * CFG.seekStepS);
      else if (ev.key === 'Home') seek(s[0]);
      else if (ev.key === 'End') live();
      else return;
      ev.preventDefault();
    });
  }

  function init() {
    const track = byId('tl-track');
    if (track) wireTrack(track);
    const on = function (id, fn) {
      const node = byId(id);
      if (node) node.addEventListener('click', fn);
    };
    on('tl-live', function () { LIQ.backToLive(); });
    on('tl-play', function () { LIQ.pause.toggle(); });
    on('tl-prev', function () { stepAlert(-1); });
    on('tl-next', function () { stepAlert(1); });
    const select = byId('tl-speed');
    if (select) select.addEventListener('change', function () { setSpeed(Number(select.value)); });
    session.timers.push(setInterval(refresh, CFG.timelineEveryMs));
    session.timers.push(setInterval(function () { render(false); }, 1000));
    syncRoot();
  }

  function debug() {
    return {
      available: tl.available, mode: tl.mode, from: tl.from, time: tl.time, speed: tl.speed, playing: tl.playing,
      finished: tl.finished, step: tl.step, marks: tl.marks.size, link: tl.link,
      ranges: tl.coverage ? (tl.coverage.ranges || []).length : 0, gaps: tl.coverage ? (tl.coverage.gaps || []).length : 0,
    };
  }

  LIQ.timeline = {
    init: init, refresh: refresh, onHealth: onHealth, reset: reset, render: render, renderPlay: renderPlay, statusText: statusText,
    inHistory: inHistory, playing: playing, moment: moment, seek: seek, onFrame: onFrame, afterFrame: afterFrame,
    ended: ended, pause: pause, play: play, toggle: toggle, setSpeed: setSpeed, live: live, stepAlert: stepAlert,
    openAt: openAt, marks: marks, debug: debug,
  };
})(window.LIQ);
