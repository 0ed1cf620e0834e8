// @ts-check
/**
 * Playback links of a recording's files are signed for a few minutes (recordings/links.py):
 * when each one stops working, and when the review page should fetch fresh ones so that
 * seeking late in a long recording still works.
 */
import { decodeJwtPayload } from "./session.js";

/** Never refresh sooner than this after the previous links arrived (ms). */
const MIN_DELAY_MS = 1000;
/** Refresh at most this long before the links expire (ms)... */
const MAX_MARGIN_MS = 60_000;
/** ...and otherwise this share of their remaining life before. */
const MARGIN_SHARE = 0.2;

/**
 * When a playback link stops working: the `exp` claim of its signed `access` parameter.
 * @param {string} link a path or URL with `?access=claims.signature`
 * @returns {number|null} ms since the epoch; null when the link carries no expiry
 */
export function linkExpiresAt(link) {
  const access = new URL(link, "http://link.invalid").searchParams.get("access");
  // An access value is "claims.signature", its claims encoded as a JWT's payload is.
  const exp = access ? decodeJwtPayload(`.${access}`)?.exp : undefined;
  return typeof exp === "number" ? exp * 1000 : null;
}

/**
 * How long to wait before fetching fresh links: ahead of the first expiry by a fifth of the
 * time left (at most a minute), and never less than a second.
 * @param {Record<string, string>} links a recording's links, by file name
 * @param {number} nowMs the time now, ms since the epoch
 * @returns {number|null} ms to wait; null when no link expires
 */
export function refreshDelayMs(links, nowMs) {
  const expiries = Object.values(links)
    .map(linkExpiresAt)
    .filter((at) => at !== null);
  if (expiries.length === 0) return null;
  const left = Math.min(...expiries) - nowMs;
  return Math.max(MIN_DELAY_MS, left - Math.min(MAX_MARGIN_MS, left * MARGIN_SHARE));
}
