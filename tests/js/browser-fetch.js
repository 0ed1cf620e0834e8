// @ts-check
/**
 * `fetch` of `file:` URLs, which Node's own fetch refuses: i18n.js fetches its dictionaries
 * beside itself, as a browser does from the server. Import this before anything that imports
 * i18n.js.
 */
import { readFile } from "node:fs/promises";

const networkFetch = globalThis.fetch;

/**
 * @param {string | URL | Request} input
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
globalThis.fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.protocol !== "file:") return networkFetch(input, init);
  try {
    return new Response(await readFile(url), { status: 200 });
  } catch {
    return new Response(null, { status: 404 });
  }
};
