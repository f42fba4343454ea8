// What this operator offers (the paths its /openapi.json lists) and what the token may do
// (read-only or not): learnt once at sign-in, asked by every panel.

let routes = new Set();
let readOnly = false;

export function setRoutes(paths) {
  routes = new Set(paths);
}

// offers("/events"): whether this operator serves that path.
export function offers(path) {
  return routes.has(path);
}

export function setReadOnly(value) {
  readOnly = value;
}

export function isReadOnly() {
  return readOnly;
}
