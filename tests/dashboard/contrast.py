"""WCAG contrast of every visible text element of a page, measured in the browser.

For each element that shows text (an HTML element with a non-blank text node of its
own, an ``<input>`` with a value, an SVG ``<text>``), the text colour is its computed
``color`` (SVG: ``fill``), faded by the opacity of the element and its ancestors.
The background is composed from the bottom up: the ancestors' backgrounds, walked
up to the first opaque one (semi-transparent ones composited over it; a gradient
counts as each of its colour stops and the worst one is kept), plus any element
painted under the text that is not an ancestor (found with ``elementsFromPoint`` at
three points of the text box; the ladder's size bars sit under the prices that way).

The ratio is WCAG 2's (L1 + 0.05) / (L2 + 0.05) on relative luminance.
"""

from __future__ import annotations

from typing import Any

MEASURE_JS = r"""
(within) => {
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c || '');
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const allColours = (s) => (String(s).match(/rgba?\([^)]+\)/g) || []).map(parse);
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map(i => a * top[i] + (1 - a) * bottom[i]).concat([1]);
  };
  const lin = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const hex = (c) => '#' + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, '0')).join('');

  const opacityCache = new Map();
  const opacityOf = (node) => {        // the element's opacity times its ancestors'
    if (!node || node.nodeType !== 1) return 1;
    if (opacityCache.has(node)) return opacityCache.get(node);
    const o = Number(getComputedStyle(node).opacity) * opacityOf(node.parentElement);
    opacityCache.set(node, o);
    return o;
  };
  const overA = (top, bottom) => {    // Porter-Duff "over" of two colours with alpha
    const a = top[3] + bottom[3] * (1 - top[3]);
    if (a <= 0) return [0, 0, 0, 0];
    return [0, 1, 2].map(i => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a).concat([a]);
  };
  /* The alternatives one element paints as its background (one per stop of a gradient). */
  const layer = (node) => {
    const cs = getComputedStyle(node);
    const o = opacityOf(node);
    const bg = parse(cs.backgroundColor) || [0, 0, 0, 0];
    const grad = cs.backgroundImage && cs.backgroundImage !== 'none' ? allColours(cs.backgroundImage) : [];
    const alts = grad.length ? grad.map(g => overA(g, bg)) : [bg];
    return alts.filter(a => a[3] > 0).map(a => [a[0], a[1], a[2], a[3] * o]);
  };
  const describe = (node) => {
    const parts = [];
    for (let n = node; n && n.nodeType === 1 && parts.length < 3; n = n.parentElement) {
      let s = n.tagName.toLowerCase();
      if (n.id) { parts.unshift(s + '#' + n.id); break; }
      const cls = typeof n.className === 'string' ? n.className.trim().split(/\s+/).filter(Boolean) : [];
      if (cls.length) s += '.' + cls.slice(0, 2).join('.');
      parts.unshift(s);
    }
    return parts.join(' > ');
  };

  /* Background candidates of `node` given the stack of elements under it, top first. */
  const backgrounds = (stack) => {
    const layers = [];
    for (const n of stack) {
      const alts = layer(n);
      if (!alts.length) continue;
      layers.push(alts);
      if (alts.every(a => a[3] >= 0.999)) break;
    }
    let base = [[255, 255, 255, 1]];   // the canvas, if nothing is opaque
    for (let i = layers.length - 1; i >= 0; i -= 1) {
      const next = [];
      for (const b of base) for (const a of layers[i]) next.push(over(a, b));
      base = next.slice(0, 64);
    }
    return base;
  };

  const texts = [];
  const root = within ? document.querySelector(within) : document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT);
  for (let n = walker.currentNode; n; n = walker.nextNode()) {
    const tag = n.tagName.toLowerCase();
    if (['script', 'style', 'noscript', 'title', 'option', 'template', 'tspan', 'defs'].includes(tag)) continue;
    let text = '';
    if (tag === 'text' && n instanceof SVGElement) text = n.textContent.trim();
    else if (tag === 'input') text = ['radio', 'checkbox', 'hidden'].includes(n.type) ? '' : String(n.value || '');
    else if (!(n instanceof SVGElement)) {
      for (const c of n.childNodes) {
        if (c.nodeType === 3 && c.textContent.trim()) text += c.textContent.trim() + ' ';
      }
    }
    text = text.trim();
    if (!text) continue;
    const cs = getComputedStyle(n);
    if (cs.visibility !== 'visible' || cs.display === 'none') continue;
    const rect = n.getBoundingClientRect();
    if (rect.width < 1 || rect.height < 1) continue;
    const o = opacityOf(n);
    if (o < 0.05) continue;
    const colour = parse(n instanceof SVGElement ? cs.fill : cs.color);
    if (!colour) continue;
    const fillOpacity = n instanceof SVGElement ? Number(cs.fillOpacity || 1) : 1;
    texts.push({ node: n, text: text, colour: [colour[0], colour[1], colour[2], colour[3] * o * fillOpacity],
                 top: rect.top + window.scrollY, bottom: rect.bottom + window.scrollY });
  }

  const results = [];
  const savedY = window.scrollY;
  const viewH = window.innerHeight;
  const docH = document.documentElement.scrollHeight;
  for (let y = 0; y < docH; y += Math.max(100, viewH - 100)) {
    window.scrollTo(0, y);
    const scrollY = window.scrollY;
    for (const t of texts) {
      if (t.done) continue;
      const mid = (t.top + t.bottom) / 2 - scrollY;
      if (mid < 0 || mid >= viewH) continue;
      t.done = true;
      const node = t.node;
      const ancestors = [];
      for (let a = node; a; a = a.parentElement) ancestors.push(a);
      // Under the text: elements hit at three points of its box that are painted below
      // it and are neither its ancestors nor its descendants (sibling bars, overlays).
      const r = node.getBoundingClientRect();
      const points = [r.left + 2, (r.left + r.right) / 2, r.right - 2]
        .map(x => [Math.min(Math.max(x, 0), window.innerWidth - 1), (r.top + r.bottom) / 2]);
      let worst = null;
      for (const [px, py] of points) {
        const hit = document.elementsFromPoint(px, py);
        const at = hit.indexOf(node);
        const under = at >= 0 ? hit.slice(at + 1).filter(e => !e.contains(node) && !node.contains(e)) : [];
        // paint order, top first: underlays (not ancestors) sit above their container's background
        const stack = [];
        for (const a of ancestors) {
          if (a !== node) for (const u of under) if (!stack.includes(u) && a.contains(u)) stack.push(u);
          stack.push(a);
        }
        const fg = t.colour;
        for (const bg of backgrounds(stack.slice(0))) {
          const shown = over(fg, bg);
          const value = ratio(shown, bg);
          if (!worst || value < worst.ratio) worst = { ratio: value, colour: hex(shown), background: hex(bg) };
        }
      }
      results.push({ element: describe(node), text: t.text.slice(0, 40), ratio: Math.round(worst.ratio * 100) / 100,
                     colour: worst.colour, background: worst.background });
    }
  }
  window.scrollTo(0, savedY);
  return results;
}
"""


def measure_contrast(page: Any, within: str | None = None) -> list[dict[str, Any]]:
    """Every visible text element (inside the ``within`` selector, else the whole
    page): element path, text, ratio, colours (its worst case)."""
    return list(page.evaluate(MEASURE_JS, within))


def contrast_failures(measured: list[dict[str, Any]], minimum: float = 4.5) -> list[str]:
    """One line per element under ``minimum``, worst first, duplicates (same element path,
    colours and ratio) folded."""
    seen: dict[tuple[str, str, str, float], list[str]] = {}
    for m in sorted(measured, key=lambda m: m["ratio"]):
        if m["ratio"] >= minimum:
            continue
        key = (m["element"], m["colour"], m["background"], m["ratio"])
        seen.setdefault(key, []).append(m["text"])
    return [
        f"{ratio:.2f}:1  {element}  {colour} on {background}  {texts[0]!r}"
    + (f" (+{len(texts) - 1} alike)" if len(texts) > 1 else "")
        for (element, colour, background, ratio), texts in seen.items()
    ]


# Every state the page's own classes can show, built in a scratch block at the end of
# the page (the live page shows only some of them at a time: one source, whatever
# alerts happened, bars of whatever width). Mirrors the markup dashboard/assets/ makes.
# Returns the number of text elements it made.
STATE_SWATCHES_JS = r"""
() => {
  const root = document.createElement('div');
  root.id = 'contrast-swatches';
  const add = (parent, tag, cls, text) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    parent.appendChild(n);
    return n;
  };
  let texts = 0;
  const t = (parent, tag, cls, text) => { texts += 1; return add(parent, tag, cls, text); };
  // each source's banner, live and while the recorded history is shown (its own colour)
  for (const [kind, history] of ['sim', 'binance', 'replay', 'unknown'].flatMap(k => [[k, false], [k, true]])) {
    const banner = add(root, 'div', 'banner banner-' + kind + (history ? ' banner-history' : ''));
    banner.style.height = 'auto';
    banner.style.flexWrap = 'wrap';
    t(banner, 'span', 'badge src-' + kind, kind.toUpperCase() + ' source');
    if (history) t(banner, 'span', 'badge src-history', 'HISTORY');
    t(banner, 'span', 'reason', '(why this source)');
    const chips = add(banner, 'span', 'chips');
    for (const st of ['synced', 'quiet', 'resyncing', 'awaiting_snapshot', 'stale', 'unknown']) {
      t(chips, 'span', 'chip sync-' + st, 'BTCUSDT ' + st);
    }
    for (const st of ['connecting', 'connected', 'replaying', 'finished', 'reconnecting', 'disconnected', 'idle',
                      'history', 'stopped', 'closed']) {
      t(banner, 'span', 'conn conn-' + st, st);
    }
    t(banner, 'span', 'age', 'updated 0.4 s ago');
    t(banner, 'span', 'age age-old', 'updated 9.0 s ago');
    t(banner, 'span', 'view-state paused', 'paused at 2026-11-28 09:15:02 UTC (space: play, L: live)');
  }
  // the timeline strip: its controls and times, live and in history
  const strip = add(root, 'div', 'timeline');
  const controls = add(strip, 'div', 'tl-controls');
  t(controls, 'button', 'ctl tl-btn', 'Live');
  t(controls, 'button', 'ctl tl-btn', '\u2039 alert');
  const speed = add(controls, 'label', 'tl-speed-box');
  t(speed, 'span', 'tl-key', 'speed');
  const info = add(strip, 'div', 'tl-info');
  t(info, 'span', 'tl-time', 'live');
  t(info, 'span', 'tl-time tl-time-history', '2026-11-28 09:15:02 UTC');
  t(info, 'span', 'tl-span muted', '12 min recorded');
  const toolbar = add(root, 'div', 'toolbar');
  const metrics = add(toolbar, 'div', 'metrics');
  for (const cls of ['v', 'v up', 'v down']) {
    const m = add(metrics, 'div', 'metric');
    t(m, 'span', 'k', 'label');
    t(m, 'span', cls, '97,000.1');
  }
  const grid = add(root, 'div', 'lower-grid');
  const panel = add(grid, 'section', 'panel');
  const head = add(panel, 'header');
  t(head, 'span', '', 'Panel title');
  t(head, 'span', 'count', '3');
  const ladder = add(panel, 'div', 'ladder');
  for (const side of ['ask', 'bid']) {
    for (const wall of [false, true]) {
      for (const width of ['100%', '0%']) {
        const row = add(ladder, 'div', 'lrow ' + side + (wall ? ' wall' : ''));
        add(row, 'div', 'lbar').style.width = width;
        t(row, 'span', 'lpx', '97,000.1');
        t(row, 'span', 'lqty', '1.234');
      }
    }
  }
  t(ladder, 'div', 'lmid', 'spread 0.1 · mid 97,000.05');
  const panel2 = add(grid, 'section', 'panel');
  const alerts = add(panel2, 'div', 'alerts');
  grid.style.height = 'auto';          // every swatch on screen, none clipped by a scrolling list
  alerts.style.overflow = 'visible';
  const filterRow = add(alerts, 'div', 'afilter');
  t(filterRow, 'label', '', 'min notional');
  const minInput = add(filterRow, 'input', 'amin');
  minInput.value = '350000';
  texts += 1;
  t(filterRow, 'span', 'muted', 'USDT');
  t(filterRow, 'span', 'ahidden muted', '12 below it');
  t(alerts, 'div', 'muted', 'no alerts in the last 180 s');
  for (const side of ['bid', 'ask']) {
    const group = add(alerts, 'div', 'agroup');
    const gh = add(group, 'div', 'agroup-head');
    t(gh, 'span', 'aside ' + side, side);
    t(gh, 'span', 'aprice', '97,000.1 – 97,001.9');
    t(gh, 'span', 'acount muted', '2 alerts');
    for (const type of ['WALL', 'LAYERING', 'EXHAUSTION', 'OTHER']) {
      for (const ended of [false, true]) {
        const a = add(group, 'div', 'alert alert-' + type + (ended ? ' ended' : ''));
        const h = add(a, 'div', 'ahead');
        t(h, 'span', 'abadge', type);
        t(h, 'span', 'astatus', ended ? 'removed (pulled)' : 'grown');
        t(h, 'span', 'anotional', '1.04M USDT');
        t(h, 'span', 'atime', '12:00:00');
        t(a, 'div', 'adetails', '16.801 @ 61,700.0 · 0.20 bps from mid · 45% of side · 18 s');
        t(a, 'div', 'alife', 'born 61,700.0 16.801 → grown 61,700.0 21.238');
      }
    }
  }
  const panel3 = add(grid, 'section', 'panel');
  const result = add(panel3, 'div', 'impact-result');
  const row = add(result, 'div', 'irow');
  t(row, 'span', 'ikey', 'VWAP');
  t(row, 'span', 'ival', '97,000.123');
  const fills = add(result, 'div', 'fills');
  t(fills, 'div', 'fill', '97,000.1 × 0.5');
  t(result, 'div', 'error', 'size must be positive');
  const feed = add(panel3, 'div', 'feed');
  const frow = add(feed, 'div', 'frow');
  t(frow, 'span', 'fkey', 'bookTicker failures');
  t(frow, 'span', 'fval', '0');
  t(frow, 'span', 'fval bad', '3');
  (document.getElementById('liq-root') || document.body).appendChild(root);
  return texts;
}
"""
