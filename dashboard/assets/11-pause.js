/*
 * Pause and play: the view frozen on one moment while the socket keeps running.
 *
 * Paused, every message the socket brings (frames, and a new history after a
 * reconnect) is kept as it came, not drawn; the panels keep showing the moment of
 * the last frame drawn, so a redraw (a panel shown again, a resize) shows that
 * moment too. Play (or L, back to live) draws what was kept, in order, and the view
 * follows the data again. Past cfg.pauseHeldMax kept messages they are dropped and
 * play asks the API for a fresh history instead (the socket is reopened), so a page
 * left paused holds a bounded amount.
 *
 * A link can ask for a moment (the URL's t, 81-url.js): when the history arrives, its
 * frames up to that moment are drawn, the later ones kept, and the view is paused
 * there. A moment older than the history (the API keeps 180 s) is opened from the
 * recorded history (15-timeline.js) when the API has it, else said so, and the view
 * stays live. While the recorded history is shown, pause and play are the timeline's
 * (the socket is closed while paused and reopened on play). Owns LIQ.state.pause and
 * #view-state; the automatic refreshes of the impact panel stop while paused or in
 * history (it walks the server's current book).
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const pz = LIQ.state.pause;
  const data = LIQ.data;
  const { byId, setText } = LIQ.dom;

  /* the view does not follow the live data: paused, or showing the recorded history */
  function active() { return pz.active || LIQ.timeline.inHistory(); }

  /* Called by the connection with every history and frame message. True: kept for
   * later, not to be drawn now. A history met by a link's moment is cut at it. */
  function hold(msg, raw) {
    if (pz.target !== null && msg.type === 'history' && !pz.active) return cutAt(msg);
    if (!pz.active) return false;
    if (pz.overflow) return true;
    if (pz.held.length >= CFG.pauseHeldMax) {
      pz.overflow = true;     // play will reload the history rather than replay the gap
      pz.held = [];
      return true;
    }
    pz.held.push(raw);
    return true;
  }

  /* The history's frames up to the link's moment are drawn; the rest wait for play.
   * True when the message is not to be drawn: the recorded history takes over. */
  function cutAt(msg) {
    const target = pz.target;
    pz.target = null;
    const frames = msg.frames || [];
    let k = -1;
    // a frame's time is written to the URL to the millisecond: allow that rounding
    for (let i = 0; i < frames.length; i += 1) if (frames[i].timestamp <= target + 0.001) k = i;
    if (k < 0) {
      if (frames.length && LIQ.timeline.openAt(target)) return true;
      // no history at all: a symbol whose book just started (promoted by the link)
      pz.notice = frames.length ? olderNotice(target) : 'no history for '
        + String(LIQ.state.session.symbol).toUpperCase() + ' at the link\u2019s moment (' + momentText(target)
        + '): showing live';
      render();
      LIQ.url.write(false);
      return false;
    }
    pz.held = frames.slice(k + 1);   // frames (objects), drawn on play like kept messages
    msg.frames = frames.slice(0, k + 1);
    pz.active = true;
    pz.moment = frames[k].timestamp;
    pz.notice = '';
    render();
    LIQ.url.write(false);            // the moment of the frame shown, to the millisecond
    return false;
  }

  function olderNotice(target) {
    return 'the link\u2019s moment (' + momentText(target) + ') is older than the last ' + CFG.windowS
      + ' s: showing live';
  }

  /* A note in #view-state (the timeline's: a moment it could not open). */
  function notify(text) {
    pz.notice = text;
    render();
  }

  /* A moment for the URL's t: seconds since the epoch (ISO 8601 or a plain number). */
  function parseMoment(text) {
    if (text === null || text === undefined || text === '') return null;
    if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text);
    const ms = Date.parse(text);
    return Number.isFinite(ms) ? ms / 1000 : NaN;
  }

  /* At start: the moment a link asks for, to be applied to the coming history. */
  function openAt(text) {
    const t = parseMoment(text);
    if (t === null) return;
    if (Number.isNaN(t)) {
      pz.notice = 'the link\u2019s time \u201c' + text + '\u201d is not a date: showing live';
      render();
      return;
    }
    pz.target = t;
  }

  function pause() {
    if (LIQ.timeline.inHistory()) return LIQ.timeline.pause();
    if (pz.active || !data.last) return false;
    pz.active = true;
    pz.moment = data.last.timestamp;
    pz.notice = '';
    render();
    LIQ.url.write(false);
    return true;
  }

  /* Draw what came meanwhile and follow the data again. */
  function play() {
    if (LIQ.timeline.inHistory()) return LIQ.timeline.play();
    if (!pz.active) return false;
    const held = pz.held;
    const reload = pz.overflow;
    pz.active = false;
    pz.moment = null;
    pz.held = [];
    pz.overflow = false;
    pz.notice = '';
    render();
    LIQ.url.write(false);
    if (reload) { LIQ.connection.connect(); return true; }
    for (const item of held) {
      let msg = item;
      if (typeof item === 'string') {
        try { msg = JSON.parse(item); } catch (e) { continue; }
      }
      if (msg.type === 'history') {
        LIQ.store.reset();
        for (const f of msg.frames || []) LIQ.store.ingest(f);
      } else {
        LIQ.store.ingest(msg);
      }
    }
    if (data.last) LIQ.schedule.renderAll(true);
    LIQ.panels.impact.maybe(true);
    return true;
  }

  function toggle() {
    if (LIQ.timeline.inHistory()) return LIQ.timeline.toggle();
    return pz.active ? play() : pause();
  }

  /* A new symbol starts live: what was kept belongs to the old one. */
  function reset() {
    pz.active = false;
    pz.moment = null;
    pz.held = [];
    pz.overflow = false;
    pz.target = null;
    pz.notice = '';
    render();
  }

  /* A replay's moments are recorded times: shown in UTC like the banner's; live ones
   * in local clock time like every other time on the page. */
  function momentText(ts) {
    if (LIQ.panels.banner.isReplay() || LIQ.timeline.inHistory()) return LIQ.format.utcTime(ts);
    return LIQ.format.clockTime(ts);
  }

  /* The Pause button and #view-state; the timeline's play button says the same. */
  function render() {
    const root = byId('liq-root');
    const historyPaused = LIQ.timeline.inHistory() && !LIQ.timeline.playing();
    const frozen = pz.active || historyPaused;
    if (root) root.dataset.paused = frozen ? '1' : '0';
    if (pz.active) {
      setText('view-state', 'paused at ' + momentText(pz.moment) + ' (space or L: back to live)', 'view-state paused');
    } else if (historyPaused && LIQ.timeline.moment() !== null) {
      setText('view-state', 'paused at ' + momentText(LIQ.timeline.moment()) + ' (space: play, L: live)',
        'view-state paused');
    } else {
      setText('view-state', pz.notice, pz.notice ? 'view-state notice' : 'view-state');
    }
    const button = byId('pause');
    if (button) {
      const label = frozen ? 'Play' : 'Pause';
      if (button.textContent !== label) button.textContent = label;
    }
    LIQ.timeline.renderPlay(frozen);
  }

  LIQ.pause = {
    active: active, hold: hold, openAt: openAt, pause: pause, play: play, toggle: toggle, reset: reset,
    render: render, notify: notify, olderNotice: olderNotice,
  };
})(window.LIQ);
