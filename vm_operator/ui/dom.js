// DOM helpers. Everything that comes from the API (VM names, messages, log lines) becomes a
// text node or an attribute value set with setAttribute: nothing is ever parsed as HTML.

export const DASH = "\u2014";

const FORBIDDEN_ATTRIBUTE = /^(on|style$|srcdoc$)/i;

// el("button", {class: "x", type: "button", "aria-label": "Start ci"}, "Start")
// Properties (not attributes) are given as {prop: {...}}, e.g. {prop: {disabled: true}}.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "prop") {
      Object.assign(node, value);
    } else if (value !== null && value !== undefined && value !== false) {
      if (FORBIDDEN_ATTRIBUTE.test(key)) {
        throw new Error(`el(): the attribute ${key} is not allowed`);
      }
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, ...children);
  return node;
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (FORBIDDEN_ATTRIBUTE.test(key)) {
      throw new Error(`svg(): the attribute ${key} is not allowed`);
    }
    node.setAttribute(key, String(value));
  }
  append(node, ...children);
  return node;
}

export function append(node, ...children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The text of a value, or a dash when the API did not give it.
export function show(value) {
  return value === null || value === undefined || value === "" ? DASH : String(value);
}

export function setText(node, value) {
  const text = show(value);
  if (node.textContent !== text) node.textContent = text;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`no element #${id}`);
  return node;
}

// The number in an input, or undefined when it is empty.
export function numberField(id) {
  const value = byId(id).value.trim();
  return value === "" ? undefined : Number(value);
}

export function megabytes(mb) {
  if (mb === null || mb === undefined) return DASH;
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

export function gigabytes(gb) {
  return gb === null || gb === undefined ? DASH : `${gb} GB`;
}

export function bytes(count) {
  if (count === null || count === undefined) return DASH;
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function clock(time) {
  const date = time instanceof Date ? time : new Date(time);
  return Number.isNaN(date.getTime()) ? DASH : date.toLocaleTimeString();
}

export function dateTime(time) {
  if (!time) return DASH;
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? DASH : date.toLocaleString();
}
