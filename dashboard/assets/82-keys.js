/*
 * Keyboard shortcuts and the sheet that lists them (? or the ? button). One table,
 * SHORTCUTS, drives both the handler and the sheet.
 *
 * A shortcut never fires while the user types in a field (input, textarea, select,
 * anything contenteditable), with Ctrl, Alt or Meta held (the browser's own
 * shortcuts), or while the sheet is open (there only ? and Escape close it). Space and
 * the arrows keep their usual job on a focused button, checkbox, radio or link: space
 * presses the button, arrows move between radio buttons.
 */
(function (LIQ) {
  'use strict';

  const session = LIQ.state.session;
  const byId = LIQ.dom.byId;
  const el = LIQ.dom.el;

  const SHORTCUTS = [
    { keys: ['1', '9'], range: true, what: 'switch to the 1st \u2026 9th symbol of the switcher' },
    { keys: ['?'], what: 'show or hide this sheet' },
    { keys: ['L'], what: 'back to live: from the recorded history, or play if paused; the heatmap\u2019s time axis '
      + 'back on the newest data' },
    { keys: ['Space'], what: 'pause / play: freeze the view on its moment (the link then carries it), then catch up; '
      + 'in the recorded history, pause or play it' },
    { keys: ['\u2190'], what: 'previous (older) alert in the alerts panel; in the recorded history, seek to it' },
    { keys: ['\u2192'], what: 'next (newer) alert; in the recorded history, seek to it' },
    { keys: ['I'], what: 'the impact calculator\u2019s size field' },
    { keys: ['Esc'], what: 'close this sheet or the panel menu' },
  ];

  const TYPING_INPUTS = ['text', 'number', 'search', 'email', 'password', 'tel', 'url', 'date', 'time',
    'datetime-local', 'month', 'week'];

  /* A field that takes typed text: no shortcut fires there. */
  function typing(target) {
    if (!target || target.nodeType !== 1) return false;
    if (target.isContentEditable) return true;
    const tag = target.tagName;
    if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
    return tag === 'INPUT' && TYPING_INPUTS.includes((target.type || 'text').toLowerCase());
  }

  /* A control whose own keys are space / the arrows (button, checkbox, radio, link, summary). */
  function ownsKeys(target) {
    if (!target || target.nodeType !== 1) return false;
    const tag = target.tagName;
    return tag === 'BUTTON' || tag === 'A' || tag === 'SUMMARY' || tag === 'INPUT';
  }

  function sheet() {
    let dialog = byId('shortcut-sheet');
    if (dialog) return dialog;
    dialog = el('dialog', 'shortcut-sheet');
    dialog.id = 'shortcut-sheet';
    dialog.setAttribute('aria-labelledby', 'shortcut-title');
    const title = el('h2', '', 'Keyboard shortcuts');
    title.id = 'shortcut-title';
    const table = el('table', 'shortcuts');
    for (const s of SHORTCUTS) {
      const row = el('tr');
      const keys = el('th');
      keys.scope = 'row';
      s.keys.forEach(function (k, i) {
        if (i) keys.append(s.range ? ' \u2013 ' : ' ');
        keys.appendChild(el('kbd', '', k));
      });
      row.append(keys, el('td', '', s.what));
      table.appendChild(row);
    }
    const note = el('p', 'muted',
      'Shortcuts never fire while you type in a field. Space and the arrows keep their usual job on a focused '
      + 'button or radio button.');
    const close = el('button', 'ctl', 'Close');
    close.type = 'button';
    close.id = 'shortcut-close';
    close.addEventListener('click', function () { dialog.close(); });
    dialog.append(title, table, note, close);
    // a click on the backdrop (outside the sheet's box) closes it
    dialog.addEventListener('click', function (ev) {
      if (ev.target !== dialog) return;
      const r = dialog.getBoundingClientRect();
      if (ev.clientX < r.left || ev.clientX > r.right || ev.clientY < r.top || ev.clientY > r.bottom) dialog.close();
    });
    dialog.addEventListener('close', function () {
      const opener = byId('shortcuts-open');
      if (dialog.dataset.returnFocus === '1' && opener) opener.focus();
    });
    document.body.appendChild(dialog);
    return dialog;
  }

  function sheetOpen() {
    const dialog = byId('shortcut-sheet');
    return Boolean(dialog && dialog.open);
  }

  function toggleSheet(fromButton) {
    const dialog = sheet();
    if (dialog.open) { dialog.close(); return; }
    dialog.dataset.returnFocus = fromButton ? '1' : '0';
    dialog.showModal();
    byId('shortcut-close').focus();
  }

  function closeMenu() {
    const menu = byId('panel-menu');
    if (menu && menu.open) { menu.open = false; return true; }
    return false;
  }

  function symbolAt(index) {
    const symbols = (session.config && session.config.symbols) || [];
    return index < symbols.length ? symbols[index] : null;
  }

  /* The key's action; true when it was handled (its default is then prevented). */
  function act(ev) {
    const key = ev.key;
    if (sheetOpen()) {
      if (key === '?') { toggleSheet(false); return true; }
      return false;   // Escape: the dialog closes itself
    }
    if (key === 'Escape') return closeMenu();
    if (key === '?') { toggleSheet(false); return true; }
    const digit = /^Digit([1-9])$|^Numpad([1-9])$/.exec(ev.code || '');
    if (/^[1-9]$/.test(key) || digit) {
      const n = /^[1-9]$/.test(key) ? Number(key) : Number(digit[1] || digit[2]);
      const symbol = symbolAt(n - 1);
      if (symbol) LIQ.selectSymbol(symbol, 'user');
      return Boolean(symbol);
    }
    if (key === 'l' || key === 'L') { LIQ.backToLive(); return true; }
    if (key === 'i' || key === 'I') {
      LIQ.layout.show('impact');
      return LIQ.panels.impact.focusSize();
    }
    if (ownsKeys(ev.target)) return false;
    if (key === ' ' || key === 'Spacebar') { LIQ.pause.toggle(); return true; }
    if (key === 'ArrowLeft' || key === 'ArrowRight') {
      if (LIQ.timeline.inHistory()) { LIQ.timeline.stepAlert(key === 'ArrowLeft' ? -1 : 1); return true; }
      LIQ.layout.show('alerts');
      LIQ.alertSteps.step(key === 'ArrowLeft' ? -1 : 1);
      return true;
    }
    return false;
  }

  function onKeyDown(ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    if (typing(ev.target)) return;
    if (act(ev)) ev.preventDefault();
  }

  /* The buttons beside the symbol switcher, and the menu closed by a click elsewhere. */
  function init() {
    document.addEventListener('keydown', onKeyDown);
    const open = byId('shortcuts-open');
    if (open) open.addEventListener('click', function () { toggleSheet(true); });
    const pause = byId('pause');
    if (pause) pause.addEventListener('click', function () { LIQ.pause.toggle(); });
    document.addEventListener('click', function (ev) {
      const menu = byId('panel-menu');
      if (menu && menu.open && !menu.contains(ev.target)) menu.open = false;
    });
  }

  LIQ.keys = { init: init, shortcuts: SHORTCUTS, typing: typing, sheetOpen: sheetOpen };
})(window.LIQ);
