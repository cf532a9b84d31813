/*
 * The connection: the websocket to ws://<api>/ws/<symbol> (or, for the recorded
 * history, /ws/<symbol>?from=<t>&speed=<x>), reconnects with backoff, the watchdog
 * for a silent socket, and the intake of its messages (a `history` replaces the store
 * and redraws everything; each `frame` is ingested and drawn; while the view is
 * paused both are handed to LIQ.pause instead).
 *
 * A history message (the last 180 s, about a megabyte) is parsed at once and then
 * taken in slices of about cfg.sliceMs of work, one task each, frames that arrive
 * meanwhile queued behind it; the panels are drawn once at the end, each heavy one in
 * its own task (02-scheduler.js), so loading it never blocks the page for long.
 * Owns LIQ.state.conn and the API's base URL (LIQ.connection.apiUrl for fetches).
 * The configured API may be several addresses separated by commas (API nodes of one
 * cluster): the page uses the first and moves to the next each time its socket drops.
 */
(function (LIQ) {
  'use strict';

  const CFG = LIQ.cfg;
  const session = LIQ.state.session;
  const conn = LIQ.state.conn;
  const sched = LIQ.state.schedule;
  const byId = LIQ.dom.byId;

  let bases = [];   // every API address configured, as origins
  let baseIndex = 0;

  /* A server bound to every interface (0.0.0.0 / ::) is reached on the host the page came from. */
  function originOf(configured) {
    const url = new URL(configured);
    if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = window.location.hostname;
    return url.origin;
  }

  function apiBase(configured) {
    bases = String(configured).split(',').map(function (u) { return u.trim(); }).filter(Boolean).map(originOf);
    baseIndex = 0;
    return bases[0];
  }

  /* The next API node, if there are several: a dropped socket retries there. */
  function nextApi() {
    if (bases.length < 2) return;
    baseIndex = (baseIndex + 1) % bases.length;
    session.apiBase = bases[baseIndex];
  }

  function wsUrl(symbol) {
    let url = session.apiBase.replace(/^http/, 'ws') + '/ws/' + encodeURIComponent(symbol);
    if (conn.history) url += '?from=' + conn.history.from.toFixed(3) + '&speed=' + conn.history.speed;
    return url;
  }

  function apiUrl(path) {
    return session.apiBase + path;
  }

  function closeSocket() {
    conn.gen += 1;           // late events of the old socket are ignored
    conn.loading = null;     // and a history being taken in slices is dropped
    if (conn.ws) {
      try { conn.ws.close(1000, 'switching'); } catch (e) { /* already closed */ }
    }
    conn.ws = null;
  }

  function connect() {
    clearTimeout(conn.retryTimer);
    closeSocket();
    const gen = conn.gen;
    const ws = new WebSocket(wsUrl(session.symbol));
    conn.ws = ws;
    if (conn.attempts) setConn(conn.state === 'disconnected' ? 'disconnected' : 'reconnecting', 'attempt ' + conn.attempts);
    else setConn('connecting', '');
    ws.onmessage = function (ev) { if (gen === conn.gen) onMessage(ev); };
    ws.onclose = function (ev) {
      if (gen !== conn.gen) return;
      // the recording ended (its last frame said so): nothing to retry
      if (conn.history && ev.code === 1000) { ended(ev.reason); return; }
      scheduleReconnect(ev.reason || 'closed (' + ev.code + ')', ev.code === 1008);
    };
    ws.onerror = function () { /* onclose follows and reconnects */ };
  }

  /* Retry with backoff. The banner says "reconnecting" while retries are young and
   * "disconnected" once the socket has been down for disconnectedAfterMs, or at once
   * when the server refused the symbol (close code 1008: retrying cannot help). */
  function scheduleReconnect(why, final) {
    closeSocket();
    if (!conn.downSince) conn.downSince = Date.now();
    if (final) {
      conn.retryAt = 0;
      setConn('disconnected', '(' + why + ')');
      return;
    }
    nextApi();
    const delay = conn.retryMs;
    conn.retryMs = Math.min(conn.retryMs * 2, CFG.backoffMaxMs);
    conn.attempts += 1;
    conn.retryAt = Date.now() + delay;
    const down = Date.now() - conn.downSince >= CFG.disconnectedAfterMs;
    setConn(down ? 'disconnected' : 'reconnecting', 'retrying in ' + (delay / 1000).toFixed(1) + ' s (' + why + ')');
    conn.retryTimer = setTimeout(connect, delay);
  }

  function ended(why) {
    closeSocket();
    setConn('closed', why || '');
    LIQ.timeline.ended();
  }

  /* Drop the socket and forget its retries: a new symbol starts clean (then connect()). */
  function reset() {
    clearTimeout(conn.retryTimer);
    closeSocket();
    conn.lastMsgAt = 0;
    conn.retryMs = CFG.backoffStartMs;
    conn.attempts = 0;
    conn.downSince = 0;
  }

  /* The recorded history from `from` (epoch s) at `speed`, or live (from null). */
  function open(from, speed) {
    conn.history = from === null ? null : { from: from, speed: speed };
    reset();
    connect();
  }

  /* A paused history: no socket and no retries until play. */
  function stop() {
    reset();
    setConn('stopped', '');
  }

  /* Where a reconnect of the history socket starts: after the last frame shown. */
  function resumeAt(from) {
    if (conn.history) conn.history.from = from;
  }

  function onMessage(ev) {
    const t0 = performance.now();
    conn.lastMsgAt = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.symbol && msg.symbol !== session.symbol) return;
    if (msg.type !== 'history' && msg.type !== 'frame') return;
    if (msg.type === 'history') {
      if (!performance.getEntriesByName('liq-history').length) performance.mark('liq-history');
      // the socket delivers: connected, whether the view is paused or not
      conn.retryMs = CFG.backoffStartMs;
      conn.attempts = 0;
      conn.downSince = 0;
      setConn('connected', '');
    }
    // a paused view keeps the message for later (11-pause.js); a link's moment cuts the history
    if (LIQ.pause.hold(msg, ev.data)) return;
    if (msg.type === 'history') {
      // the recorded history's socket starts with an empty one: the timeline has
      // already emptied the store for a seek, and keeps it when playing on
      if (LIQ.timeline.inHistory() && !(msg.frames || []).length) return;
      takeHistory(msg.frames || [], t0);
      return;
    }
    if (conn.loading) { conn.loading.queued.push(msg); return; }
    drawFrame(msg, t0);
  }

  function drawFrame(msg, t0) {
    const history = LIQ.timeline.inHistory();
    if (history) LIQ.timeline.onFrame(msg);
    sched.inHandler = true;
    try {
      LIQ.store.ingest(msg);
      LIQ.schedule.renderAll(false);
    } finally {
      sched.inHandler = false;
    }
    LIQ.schedule.record(performance.now() - t0);
    if (history) LIQ.timeline.afterFrame();
    LIQ.panels.impact.maybe(false);
  }

  /* The history's frames go into an emptied store a slice at a time (one task each);
   * frames arriving meanwhile wait behind them. A newer socket or symbol drops the job. */
  function takeHistory(frames, t0) {
    const job = { frames: frames, i: 0, queued: [], t0: t0 };
    conn.loading = job;
    LIQ.store.reset();
    slice(job);
  }

  function slice(job) {
    if (conn.loading !== job) return;
    const until = performance.now() + CFG.sliceMs;
    const frames = job.frames;
    while (job.i < frames.length) {
      LIQ.store.ingest(frames[job.i]);
      job.i += 1;
      if (performance.now() >= until) break;
    }
    if (job.i < frames.length) { setTimeout(function () { slice(job); }, 0); return; }
    for (const f of job.queued) LIQ.store.ingest(f);
    conn.loading = null;
    LIQ.schedule.renderInSteps();
    LIQ.state.stats.historyMs = performance.now() - job.t0;
    LIQ.panels.banner.refreshHealth();
    LIQ.panels.impact.maybe(true);
  }

  /* conn.state is the socket's state: connecting, connected, reconnecting, disconnected;
   * stopped (a paused history) and closed (the recording ended). */
  function setConn(state, detail) {
    conn.state = state;
    conn.detail = detail;
    const root = byId('liq-root');
    if (root) root.dataset.conn = state;
    LIQ.panels.banner.renderConn();
  }

  /* Twice a second: a long outage turns "reconnecting" into "disconnected", and a
   * socket that went silent is dropped and reopened. */
  function watchdog() {
    if (conn.state === 'reconnecting' && conn.downSince && Date.now() - conn.downSince >= CFG.disconnectedAfterMs) {
      setConn('disconnected', conn.detail);
    }
    if (conn.state === 'connected' && conn.lastMsgAt && Date.now() - conn.lastMsgAt > CFG.staleAfterMs) {
      scheduleReconnect('no data for ' + CFG.staleAfterMs / 1000 + ' s');
    }
  }

  function loading() { return conn.loading !== null; }

  LIQ.connection = {
    apiBase: apiBase, apiUrl: apiUrl, reset: reset, connect: connect, watchdog: watchdog,
    open: open, stop: stop, resumeAt: resumeAt, loading: loading,
  };
})(window.LIQ);
