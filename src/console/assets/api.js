/**
 * The API, as the console calls it: the tenant key from sessionStorage (this tab only, gone when the
 * tab closes) sent as a bearer token, never in a URL; every failure becomes an ApiError carrying the
 * API's own `error.message`, or a plain statement that the network failed.
 */

const KEY = 'conduit.apiKey';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  /** `status` 0 means the request never got an answer. */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export const networkError = () =>
  new ApiError(0, 'network_error', 'Cannot reach the Conduit API: the network request failed. Check your connection and try again.');

/** Calls the API; resolves with the parsed JSON body, rejects with an ApiError. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  const key = session.key();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch {
    throw networkError();
  }
  let text;
  try {
    text = await res.text();
  } catch {
    throw networkError();
  }
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (a proxy's error page): described by its status below
  }
  if (!res.ok) {
    const error = json && typeof json === 'object' && json.error;
    throw new ApiError(
      res.status,
      (error && error.code) || `http_${res.status}`,
      (error && error.message) || `The API answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}.`,
    );
  }
  return json;
}

/** Every page of a cursor-paginated list. */
export async function listAll(path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api('GET', `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}
