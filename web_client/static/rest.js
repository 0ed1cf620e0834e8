// @ts-check
/** The pages' calls to the REST API, authorised with the page's bearer token. */

/**
 * The error of a failed call: the problem's `code`, `details` (field errors, safety findings)
 * and HTTP `status` (none when the server could not be reached).
 * @typedef {Error & {code: string, details?: any, status?: number}} ApiError
 */

/**
 * Call a REST route; resolve with the JSON answer, reject with an ApiError.
 * @param {string|null} token
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 * @throws {ApiError}
 */
export async function api(token, method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${token ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    const error = /** @type {ApiError} */ (new Error("connection failed"));
    error.code = "connection_failed";
    throw error;
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = /** @type {ApiError} */ (new Error(data?.error?.message || response.statusText));
    error.code = data?.error?.code || "unknown";
    error.details = data?.error?.details;
    error.status = response.status;
    throw error;
  }
  return data;
}
