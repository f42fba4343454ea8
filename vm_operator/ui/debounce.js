// One pending call per key: a later call for the same key replaces an earlier one not yet made.

const timers = new Map(); // key -> the timeout of its pending call

export function debounce(key, ms, fn) {
  clearTimeout(timers.get(key));
  timers.set(key, setTimeout(() => {
    timers.delete(key);
    fn();
  }, ms));
}
