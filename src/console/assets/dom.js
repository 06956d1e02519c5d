/**
 * Building DOM without innerHTML: every value is a text node or a property, so nothing the API or a
 * provider returns (names, messages, workflow titles) can become markup.
 */

/** Set as attributes, not properties (`spellcheck = 'false'` as a property would mean true). */
const ATTRIBUTES = new Set(['class', 'for', 'role', 'spellcheck', 'autocomplete']);

/**
 * h('button', { type: 'button', onclick: fn, class: 'x' }, 'text', child…). Attributes named `on…`
 * become listeners, ATTRIBUTES and `aria-*`/`data-*` attributes, booleans toggle attributes,
 * anything else is set as a property (`hidden`, `value`, `disabled`, …).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (ATTRIBUTES.has(key) || key.startsWith('aria-') || key.startsWith('data-'))
      el.setAttribute(key, value === true ? 'true' : String(value));
    else if (value === true) el.setAttribute(key, '');
    else if (key in el) el[key] = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const byId = (id) => document.getElementById(id);

let uid = 0;
/** A document-unique id for label/aria wiring. */
export const nextId = (prefix) => `${prefix}-${(uid += 1)}`;

/** A table with a caption; `rows` are arrays of cells (strings, numbers or nodes). */
export function table(caption, headers, rows, { numeric = [] } = {}) {
  return h(
    'table',
    {},
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((text, i) => h('th', { scope: 'col', class: numeric.includes(i) ? 'num' : undefined }, text)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.length === 0
        ? h('tr', {}, h('td', { colSpan: headers.length, class: 'muted' }, 'Nothing in this period.'))
        : rows.map((cells) =>
            h(
              'tr',
              {},
              cells.map((cell, i) =>
                i === 0 ? h('th', { scope: 'row' }, cell) : h('td', { class: numeric.includes(i) ? 'num' : undefined }, cell),
              ),
            ),
          ),
    ),
  );
}
