// DOM and formatting helpers of the dashboard. Text goes in through textContent only, so nothing
// the API returns is ever parsed as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'testid') node.setAttribute('data-testid', value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'on') for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** An HTML element: el('td', {class: 'num', testid: 'x'}, 'text', otherNode). */
export function el(tag, attrs = {}, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** An SVG element, same shape as el(). */
export function svg(tag, attrs = {}, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A number with fixed decimals, or an em dash for null (the API's "cannot be computed"). */
export function fmtNumber(value, digits = 2) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function fmtInt(value) {
  return value === null || value === undefined ? '—' : value.toLocaleString('en-US');
}

/** A share in [0, 1] as a percentage. */
export function fmtShare(value, digits = 1) {
  return value === null || value === undefined ? '—' : `${fmtNumber(value * 100, digits)} %`;
}

/** "2026-11-22 07:00 UTC" (event time is UTC throughout the API). */
export function fmtTime(iso, {seconds = false} = {}) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const text = date.toISOString();
  return `${text.slice(0, 10)} ${text.slice(11, seconds ? 19 : 16)} UTC`;
}

/**
 * An element showing a number: the formatted text, and the exact value in data-value so that
 * tests and scripts read what the API said without re-parsing the formatting.
 */
export function numberCell(tag, value, {digits = 2, testid, suffix = '', kind = 'float'} = {}) {
  const text = kind === 'int' ? fmtInt(value) : fmtNumber(value, digits);
  const node = el(tag, {class: 'num', testid}, value === null ? text : text + suffix);
  node.dataset.value = value === null || value === undefined ? 'null' : String(value);
  return node;
}
