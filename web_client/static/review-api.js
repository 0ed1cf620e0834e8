/** The review and audit pages' access to the REST API, with the token they were opened with. */

const TOKEN_KEY_PREFIX = "teleconsult.staff-token.";

/**
 * Take the token out of the address bar (`?token=`) and keep it in this tab's
 * sessionStorage, so that a reload still works and a copied address carries no token.
 * @param {string} page "review" or "audit"
 * @returns {string|null}
 */
export function takePageToken(page) {
  const url = new URL(location.href);
  const fromLink = url.searchParams.get("token");
  const key = TOKEN_KEY_PREFIX + page;
  if (fromLink) {
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    try {
      sessionStorage.setItem(key, fromLink);
    } catch {
      // Without storage a reload needs the link again.
    }
    return fromLink;
  }
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

/** A refusal of the API, with its stable code. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/**
 * Call the REST API as the page's user.
 * @param {string|null} token
 * @param {string} path
 * @param {{method?: string, body?: object}} [options]
 * @returns {Promise<any>} the JSON answer
 * @throws {ApiError}
 */
export async function apiRequest(token, path, options = {}) {
  const headers = { Authorization: `Bearer ${token ?? ""}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: options.method ?? "GET",
      headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    });
  } catch {
    throw new ApiError("connection_failed");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(body?.error?.code ?? "internal_error", body?.error?.message);
  return body;
}

/**
 * A time offset as m:ss (or -m:ss before the recording started).
 * @param {number} seconds
 */
export function formatOffset(seconds) {
  const sign = seconds < 0 ? "-" : "";
  const total = Math.floor(Math.abs(seconds));
  return `${sign}${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}
