/*
 * The alerts panel: WALL / WALL_REMOVED / LAYERING / EXHAUSTION badges from the
 * frames' `alerts`, newest first, the last maxAlerts kept by the store. Redrawn only
 * when a frame brought alerts (LIQ.data.alertsDirty).
 */
(function (LIQ) {
  'use strict';

  const data = LIQ.data;
  const { byId, el, setText } = LIQ.dom;
  const { num: fmt, price: fmtPrice, clockTime } = LIQ.format;
  const normSide = LIQ.store.normSide;

  function detailText(details) {
    if (!details || typeof details !== 'object') return '';
    const parts = [];
    for (const k of Object.keys(details)) {
      const v = details[k];
      const shown = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : fmt(v, 3)) : JSON.stringify(v);
      parts.push(k.replace(/_/g, ' ') + ' ' + shown);
    }
    return parts.join(' \u00b7 ');
  }

  function alertNode(a) {
    const node = el('div', 'alert alert-' + a.type);
    node.dataset.type = a.type;
    node.dataset.side = a.side || '';
    node.dataset.price = a.price === null || a.price === undefined ? '' : String(a.price);
    node.dataset.ts = a.ts ? String(a.ts) : '';   // time order for the arrow keys (55-alert-steps.js)
    const head = el('div', 'ahead');
    head.append(
      el('span', 'abadge', a.type),
      el('span', 'aside ' + (normSide(a.side) || ''), a.side || ''),
      el('span', 'aprice', a.price === null || a.price === undefined ? '' : fmtPrice(a.price)),
      el('span', 'atime', a.ts ? clockTime(a.ts) : ''),
    );
    node.append(head, el('div', 'adetails', detailText(a.details)));
    return node;
  }

  function render() {
    data.alertsDirty = false;
    const box = byId('alerts');
    if (!box) return;
    box.textContent = '';
    if (!data.alerts.length) { box.appendChild(el('div', 'muted', 'no alerts in the last 180 s')); }
    for (const a of data.alerts) box.appendChild(alertNode(a));
    setText('alerts-count', String(data.alerts.length));
  }

  /* A new symbol: the old symbol's alerts go at once, not with its first frame. */
  function reset() {
    const box = byId('alerts');
    if (box) box.textContent = '';
  }

  LIQ.panels.alerts = { render: render, reset: reset };
})(window.LIQ);
