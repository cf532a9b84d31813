/*
 * The feed health panel: the frame's `feed` block (messages/s, depth events/s, lag,
 * latency p50/p99, gaps, resyncs, reconnects, bookTicker checks/failures). Rows are
 * built once and kept in LIQ.state.view.feedCells / feedKeys.
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;
  const view = LIQ.state.view;
  const { byId, el } = LIQ.dom;
  const fmt = LIQ.format.num;

  const FEED_ROWS = [
    ['messages_per_s', 'messages / s', 1], ['depth_events_per_s', 'depth events / s', 1], ['lag_ms', 'lag ms', 1],
    ['latency_p50_ms', 'latency p50 ms', 2], ['latency_p99_ms', 'latency p99 ms', 2], ['gaps', 'gaps', 0],
    ['resyncs', 'resyncs', 0], ['reconnects', 'reconnects', 0], ['book_ticker_checks', 'bookTicker checks', 0],
    ['book_ticker_failures', 'bookTicker failures', 0],
  ];

  function render() {
    const box = byId('feed');
    if (!box) return;
    if (!view.feedCells) {
      view.feedCells = {};
      view.feedKeys = {};
      box.textContent = '';
      for (const [key, label] of FEED_ROWS) {
        const row = el('div', 'frow');
        const name = el('span', 'fkey', label);
        const value = el('span', 'fval');
        name.dataset.field = key;
        value.dataset.field = key;
        row.append(name, value);
        box.appendChild(row);
        view.feedCells[key] = value;
        view.feedKeys[key] = name;
      }
    }
    // In a replay, lag is the recording's (its receive time minus the exchange's event time).
    const replay = LIQ.panels.banner.isReplay();
    const lagLabel = replay ? 'recording lag ms' : 'lag ms';
    const lagKey = view.feedKeys.lag_ms;
    if (lagKey.textContent !== lagLabel) {
      lagKey.textContent = lagLabel;
      lagKey.title = replay
        ? 'receive time minus exchange event time, as recorded (negative: the recorder\'s clock was behind the exchange\'s)'
        : 'receive time minus exchange event time';
    }
    const feed = data.last.feed || {};
    for (const [key, , decimals] of FEED_ROWS) {
      const text = fmt(feed[key], decimals);
      const cell = view.feedCells[key];
      if (cell.textContent !== text) cell.textContent = text;
      cell.classList.toggle('bad', key === 'book_ticker_failures' && feed[key] > 0);
    }
  }

  LIQ.panels.feed = { render: render };
})(window.LIQ);
