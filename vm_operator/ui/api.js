// The API client: every request carries the bearer token (when there is one), never a cookie.

const TOKEN_KEY = "vm-operator-token";
const TIMEOUT_MS = 20000;

// A refusal (a problem document) or a failure to reach the operator (status 0).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  get unreachable() {
    return this.status === 0;
  }

  get detail() {
    return this.message;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function vmPath(name, suffix = "") {
  return `/vms/${encodeURIComponent(name)}${suffix}`;
}

// request("POST", "/vms", {body: {...}}) -> the parsed JSON (or text, or null for 204);
// throws ApiError.
export async function request(method, path, { body, timeout = TIMEOUT_MS } = {}) {
  const headers = { Accept: "application/json, application/problem+json, text/plain", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      signal: controller.signal,
    });
  } catch (error) {
    clearTimeout(timer);
    const why = error.name === "AbortError"
      ? `the operator did not answer ${method} ${path} within ${timeout / 1000} s`
      : "the operator cannot be reached";
    throw new ApiError(0, { detail: why });
  }
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  try {
    if (response.status === 204) {
      data = null;
    } else if (type.includes("json")) {
      data = await response.json();
    } else {
      data = await response.text();
    }
  } catch (error) {
    throw new ApiError(0, { detail: `the answer to ${method} ${path} was cut off` });
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { detail: `HTTP ${response.status}` };
    throw new ApiError(response.status, problem);
  }
  return data;
}
