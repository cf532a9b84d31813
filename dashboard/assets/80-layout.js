/*
 * Which panels show, and on what screen.
 *
 * Every panel section carries data-panel (its short name: ladder, heatmap, depth,
 * alerts, surface, impact, feed). The visible set comes, first found, from the URL's
 * `panels` (a shared link), the choice saved in this browser (localStorage, written
 * only when the user changes the panel menu), or the screen's default: every panel on
 * a desktop, the 3D surface off below 1200 px (it costs the most to draw, and on a
 * touch screen it takes the drags meant to scroll the page). A hidden panel is not
 * drawn at all (02-scheduler.js); shown again it is drawn at once.
 *
 * The screen size is one of desktop (1200 px and wider), tablet (768 to 1199 px) and
 * phone (below 768 px), on #liq-root as data-size; style.css lays the page out for
 * each with the same breakpoints. Plotly figures are resized whenever their box
 * changes (a panel hidden or shown, a breakpoint crossed), not only on a window resize.
 */
(function (LIQ) {
  'use strict';

  const lay = LIQ.state.layout;
  const byId = LIQ.dom.byId;

  const STORE_KEY = 'liq.hiddenPanels';
  const FIGURES = ['heatmap', 'depth', 'surface', 'impact-curve'];
  const HIDDEN_BY_DEFAULT = { desktop: [], tablet: ['surface'], phone: ['surface'] };
  const PHONE = '(max-width: 767.98px)';
  const TABLET = '(max-width: 1199.98px)';

  function sizeClass() {
    if (window.matchMedia(PHONE).matches) return 'phone';
    if (window.matchMedia(TABLET).matches) return 'tablet';
    return 'desktop';
  }

  function sections() { return Array.from(document.querySelectorAll('section[data-panel]')); }

  /* every panel's name, in page order */
  function names() { return sections().map(function (s) { return s.dataset.panel; }); }

  /* true until the layout is set up, so nothing is skipped before it */
  function shown(name) { return lay.shown === null || lay.shown.has(name); }

  function visible() { return names().filter(shown); }

  function loadSaved() {
    try {
      const raw = window.localStorage.getItem(STORE_KEY);
      if (raw === null) return null;
      const saved = JSON.parse(raw);
      return saved && Array.isArray(saved.hidden) ? saved.hidden : null;
    } catch (e) {
      return null;   // storage refused (private mode, a policy) or unreadable: the defaults
    }
  }

  /* Saved as the hidden ones, so a panel added later shows up. */
  function save() {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify({ hidden: names().filter(function (n) { return !shown(n); }) }));
    } catch (e) { /* not kept: the choice still holds for this page */ }
  }

  /* At start, once the layout is on the page: urlPanels is the link's list, or null. */
  function init(urlPanels) {
    watchSize();
    const all = names();
    let list;
    if (urlPanels) {
      list = all.filter(function (n) { return urlPanels.includes(n); });
    } else {
      const hidden = loadSaved() || HIDDEN_BY_DEFAULT[lay.size];
      list = all.filter(function (n) { return !hidden.includes(n); });
    }
    apply(list, false);
    watchFigures();
  }

  /* Show exactly `list`; byUser: the user's own choice, kept in this browser. */
  function apply(list, byUser) {
    const before = lay.shown;
    lay.shown = new Set(list);
    for (const section of sections()) section.hidden = !lay.shown.has(section.dataset.panel);
    const root = byId('liq-root');
    if (root) root.dataset.panels = visible().join(' ');
    syncMenu();
    if (byUser) save();
    if (before) {
      for (const name of lay.shown) if (!before.has(name)) LIQ.schedule.redraw(name);
    }
    LIQ.url.write(false);
  }

  /* The panel menu shows the visible set (its change comes back through fromMenu). */
  function syncMenu() {
    const dc = window.dash_clientside;
    if (dc && typeof dc.set_props === 'function') {
      try { dc.set_props('panel-toggles', { value: visible() }); } catch (e) { /* not rendered yet */ }
    }
  }

  /* The clientside callback of the panel menu. */
  function fromMenu(value) {
    const wanted = new Set(value || []);
    const list = names().filter(function (n) { return wanted.has(n); });
    if (list.join(' ') === visible().join(' ')) return;   // the page's own update of the menu
    apply(list, true);
  }

  /* Show one panel (a shortcut that needs it), as the user's choice. */
  function show(name) {
    if (shown(name)) return;
    apply(visible().concat([name]), true);
  }

  function watchSize() {
    const update = function () {
      lay.size = sizeClass();
      const root = byId('liq-root');
      if (root && root.dataset.size !== lay.size) root.dataset.size = lay.size;
    };
    update();
    for (const query of [PHONE, TABLET]) {
      const mq = window.matchMedia(query);
      if (typeof mq.addEventListener === 'function') mq.addEventListener('change', update);
    }
  }

  /* Plotly sizes a figure to its box when it draws; a box that changes between draws
   * (a panel hidden or shown beside it, a new breakpoint, a paused view) is resized here. */
  function watchFigures() {
    if (lay.figureObserver || typeof ResizeObserver === 'undefined') return;
    lay.figureObserver = new ResizeObserver(function (entries) {
      for (const entry of entries) {
        const div = entry.target;
        const full = div._fullLayout;
        if (!full || div.offsetParent === null) continue;   // never drawn, or hidden
        const w = entry.contentRect.width;
        const h = entry.contentRect.height;
        if (w < 1 || h < 1 || (Math.abs(full.width - w) <= 1 && Math.abs(full.height - h) <= 1)) continue;
        Promise.resolve(Plotly.Plots.resize(div)).catch(function () { /* hidden meanwhile */ });
      }
    });
    for (const id of FIGURES) {
      const div = byId(id);
      if (div) lay.figureObserver.observe(div);
    }
  }

  LIQ.layout = {
    init: init, shown: shown, visible: visible, names: names, show: show, fromMenu: fromMenu,
    size: function () { return lay.size; },
  };
})(window.LIQ);
