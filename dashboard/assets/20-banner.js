/*
 * The status banner: the source badge (LIVE / SIMULATED / REPLAY, from /health or the
 * configured label), the connection status as the user should read it (connected,
 * replaying, replay finished, reconnecting, ...), the sync chip of every symbol, and
 * the age of the last message. While the recorded history is shown (15-timeline.js)
 * the banner takes a colour of its own, a HISTORY badge and the recorded time shown
 * (UTC) instead of "connected": history is never mistaken for live. Fetches /health
 * (on connect and every 10 s) into LIQ.state.session.health.
 */
(function (LIQ) {
  'use strict';

  const session = LIQ.state.session;
  const conn = LIQ.state.conn;
  const data = LIQ.data;
  const { byId, el, setText } = LIQ.dom;

  function isReplay() {
    if (data.last && data.last.replay) return true;
    return sourceOf(session.health).kind === 'replay';
  }

  function replayFinished() {
    if (data.last && data.last.replay) return Boolean(data.last.replay.finished);
    return Boolean(session.health && session.health.replay && session.health.replay.finished);
  }

  /* What the banner says: the truth about the data, not only about the socket. A
   * connected socket is "connected" for live and simulated data; for a replay it is
   * "replaying", then "replay finished" (the frame's replay.finished). */
  function connStatus() {
    if (LIQ.timeline.inHistory()) {
      // the socket of a paused history is closed on purpose, and closes at the recording's end
      return ['connected', 'stopped', 'closed'].includes(conn.state) ? 'history' : conn.state;
    }
    if (conn.state !== 'connected') return conn.state;
    if (!isReplay()) return 'connected';
    return replayFinished() ? 'finished' : 'replaying';
  }

  const CONN_TEXT = {
    connecting: 'connecting\u2026', connected: 'connected', replaying: 'replaying', finished: 'replay finished',
    reconnecting: 'reconnecting', disconnected: 'disconnected', idle: 'idle', stopped: 'stopped', closed: 'closed',
  };

  function renderConn() {
    const status = connStatus();
    const history = LIQ.timeline.inHistory();
    if (status === 'history') {
      setText('conn-status', LIQ.timeline.statusText(), 'conn conn-history');
    } else {
      const detail = conn.state === 'connected' ? '' : conn.detail;
      setText('conn-status', CONN_TEXT[status] + (detail ? ' ' + detail : ''), 'conn conn-' + status);
    }
    const root = byId('liq-root');
    if (root && root.dataset.status !== status) root.dataset.status = status;
    const banner = byId('banner');
    if (banner && banner.classList.contains('banner-history') !== history) banner.classList.toggle('banner-history', history);
    const badge = byId('hist-badge');
    if (badge && badge.hidden === history) badge.hidden = !history;
  }

  function sourceOf(health) {
    if (health && health.source) return health.source;
    const label = session.config.source_label || '';
    const kind = /SIMULATED/i.test(label) ? 'sim' : /REPLAY/i.test(label) ? 'replay' : /LIVE/i.test(label) ? 'binance' : '';
    return { kind: kind, label: label || 'source: asking the API\u2026', reason: '' };
  }

  function renderSource() {
    const src = sourceOf(session.health);
    let label = src.label || src.kind;
    if (src.kind === 'sim' && !/SIMULATED/.test(label)) label = 'SIMULATED ' + label;
    setText('src-badge', label, 'badge src-' + (src.kind || 'unknown'));
    setText('src-reason', src.reason ? '(' + src.reason + ')' : '');
    const banner = byId('banner');
    if (banner) banner.className = 'banner banner-' + (src.kind || 'unknown');
    renderConn();
  }

  const SYNC_TEXT = { synced: 'in sync', quiet: 'in sync, quiet', resyncing: 'resyncing', stale: 'stale',
                      awaiting_snapshot: 'awaiting snapshot' };

  function renderSync() {
    const box = byId('sync-chips');
    if (!box) return;
    const states = {};
    const healthSync = (session.health && session.health.sync) || {};
    for (const sym of session.config.symbols) states[sym] = (healthSync[sym] || {}).state || 'unknown';
    if (data.last && data.last.sync) states[session.symbol] = data.last.sync.state;
    for (const sym of session.config.symbols) {
      let chip = box.querySelector('[data-symbol="' + sym + '"]');
      if (!chip) {
        chip = el('span', 'chip');
        chip.dataset.symbol = sym;
        box.appendChild(chip);
      }
      const st = states[sym];
      const text = sym.toUpperCase() + ' ' + (SYNC_TEXT[st] || st);
      if (chip.textContent !== text) chip.textContent = text;
      if (chip.dataset.state !== st) { chip.dataset.state = st; chip.className = 'chip sync-' + st; }
      chip.title = ((healthSync[sym] || {}).reason) || '';
    }
  }

  /* Age of the last message; in a replay also the recorded time being shown (UTC). */
  function renderAge() {
    if (LIQ.timeline.inHistory()) { setText('update-age', 'from the recording', 'age'); return; }
    if (!conn.lastMsgAt) { setText('update-age', 'no data yet', 'age'); return; }
    const age = (Date.now() - conn.lastMsgAt) / 1000;
    let text = 'updated ' + age.toFixed(1) + ' s ago';
    if (isReplay() && data.last) text += ' \u00b7 recorded ' + LIQ.format.utcTime(data.last.timestamp);
    setText('update-age', text, age > 3 ? 'age age-old' : 'age');
  }

  function refreshHealth() {
    fetch(LIQ.connection.apiUrl('/health'))
      .then(function (r) { return r.json(); })
      .then(function (body) { session.health = body; renderSource(); renderSync(); LIQ.timeline.onHealth(); })
      .catch(function () { /* the socket state already tells the story */ });
  }

  LIQ.panels.banner = {
    isReplay: isReplay, renderConn: renderConn, renderSource: renderSource, renderSync: renderSync,
    renderAge: renderAge, refreshHealth: refreshHealth,
  };
})(window.LIQ);
