// @ts-check
/**
 * What a link carries: the consult id in the path; a patient's join link in the query string
 * (`?token=`), or the staff member's own identity token in the fragment (`#token=`), which the
 * hospital portal adds and which never reaches a server's logs.
 */

const TOKEN_KEY_PREFIX = "teleconsult.token.";

/**
 * The consult id of a `/join/{consult_id}` path.
 * @param {string} [pathname]
 * @returns {string|null}
 */
export function readConsultId(pathname = location.pathname) {
  const match = /\/join\/([^/]+)\/?$/.exec(pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

/**
 * Take the token out of the address bar and its history (so that a copied address, the back
 * button or a bookmark does not carry it) and keep it in this tab's sessionStorage, so that a
 * reload of the page still works. A token in the fragment wins over one in the query string.
 * @param {string} scope what the token is for: a consult id, or a page ("review", "pharmacy")
 * @returns {string|null} the JWT, or null when the link had none
 */
export function takeToken(scope) {
  const url = new URL(location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const fromLink = fragment.get("token") || url.searchParams.get("token");
  const key = TOKEN_KEY_PREFIX + scope;
  if (fromLink) {
    url.searchParams.delete("token");
    fragment.delete("token");
    const hash = fragment.toString();
    history.replaceState(history.state, "", url.pathname + url.search + (hash ? `#${hash}` : ""));
    try {
      sessionStorage.setItem(key, fromLink);
    } catch {
      // Without storage a reload needs the original link again; joining still works now.
    }
    return fromLink;
  }
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * The claims of a JWT, decoded without verification: for display only, the server
 * verifies the token and is the authority on who joins.
 * @param {string} token
 * @returns {Record<string, unknown>|null} null when the token is malformed
 */
export function decodeJwtPayload(token) {
  const part = token?.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
