/*
 * Stepping through the alerts with the arrow keys: left = the previous (older) alert,
 * right = the next (newer) one, in time order whatever order the panel lists them in
 * (data-ts of each .alert; the panel's own order where an alert has none). The first
 * press selects the newest. The selected alert is marked (class `selected`,
 * aria-current), focused so a screen reader reads it, and scrolled into view; it stays
 * selected when the list is redrawn (a MutationObserver finds it again by its type,
 * side, price and time). Owns nothing of the alerts panel itself (50-alerts.js).
 */
(function (LIQ) {
  'use strict';

  const byId = LIQ.dom.byId;
  const steps = { key: null, observer: null, focused: false };

  function keyOf(node) {
    const d = node.dataset;
    return d.id || [d.type, d.side, d.price, d.ts].join('|');
  }

  /* The alerts on the page, oldest first. */
  function inTimeOrder() {
    const nodes = Array.from(document.querySelectorAll('#alerts .alert'));
    const timed = nodes.every(function (n) { return n.dataset.ts; });
    if (!timed) return nodes.reverse();   // the panel lists the newest first
    return nodes
      .map(function (n, i) { return { n: n, ts: Number(n.dataset.ts), i: i }; })
      .sort(function (a, b) { return a.ts - b.ts || b.i - a.i; })
      .map(function (x) { return x.n; });
  }

  function mark(node, focus) {
    for (const other of document.querySelectorAll('#alerts .alert.selected')) {
      if (other !== node) { other.classList.remove('selected'); other.removeAttribute('aria-current'); }
    }
    node.classList.add('selected');
    node.setAttribute('aria-current', 'true');
    node.tabIndex = -1;
    if (focus) {
      node.focus({ preventScroll: true });
      node.scrollIntoView({ block: 'nearest', behavior: LIQ.dom.scrollBehaviour() });
    }
  }

  /* dir -1: previous (older), +1: next (newer). False when there is no alert. */
  function step(dir) {
    watch();
    const list = inTimeOrder();
    if (!list.length) return false;
    let i = list.findIndex(function (n) { return keyOf(n) === steps.key; });
    if (i < 0) i = list.length - 1;
    else i = Math.min(list.length - 1, Math.max(0, i + dir));
    steps.key = keyOf(list[i]);
    mark(list[i], true);
    return true;
  }

  /* After the panel redraws its list: mark the selected alert again (and give it back
   * the focus it had), or forget it when it is gone. */
  function restore() {
    if (steps.key === null) return;
    const node = Array.from(document.querySelectorAll('#alerts .alert')).find(function (n) { return keyOf(n) === steps.key; });
    if (!node) { steps.key = null; return; }
    if (!node.classList.contains('selected')) mark(node, false);
    const focusLost = document.activeElement === document.body || document.activeElement === null;
    if (steps.focused && focusLost) node.focus({ preventScroll: true });
  }

  function watch() {
    const box = byId('alerts');
    if (steps.observer || !box || typeof MutationObserver === 'undefined') return;
    steps.observer = new MutationObserver(restore);
    steps.observer.observe(box, { childList: true });
    // whether the selected alert holds the focus (a redraw then hands it to its new node)
    document.addEventListener('focusin', function (ev) {
      steps.focused = Boolean(ev.target && ev.target.closest && ev.target.closest('#alerts .alert'));
    });
  }

  /* A new symbol: nothing selected. */
  function reset() { steps.key = null; }

  function selected() { return steps.key; }

  LIQ.alertSteps = { step: step, reset: reset, selected: selected };
})(window.LIQ);
