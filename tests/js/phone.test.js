// @ts-check
/**
 * The phone page's pure logic: the camera and microphone fallback ladder and its messages,
 * the next camera, the one-to-one arrangement, and when the review page refreshes its links.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import "./browser-fetch.js";
import { mediaProblemOf, nextCameraConstraints, openWithFallback } from "../../web_client/static/devices.js";
import { linkExpiresAt, refreshDelayMs } from "../../web_client/static/playback-links.js";
import { arrangementFor } from "../../web_client/static/tiles.js";

/**
 * A getUserMedia that refuses `audio` and/or `video` with the given error names and records
 * what it was asked; it resolves with a label of what it opened.
 * @param {{audio?: string, video?: string}} refusals error name by kind
 */
function fakeGetUserMedia(refusals) {
  /** @type {string[]} */
  const asked = [];
  /** @param {MediaStreamConstraints} constraints */
  const getUserMedia = async (constraints) => {
    const kinds = /** @type {const} */ (["audio", "video"]).filter((kind) => constraints[kind]);
    asked.push(kinds.join("+"));
    for (const kind of kinds) {
      const name = refusals[kind];
      if (name) throw Object.assign(new Error(`${kind} refused`), { name });
    }
    return /** @type {MediaStream} */ (/** @type {unknown} */ (kinds.join("+")));
  };
  return { getUserMedia, asked };
}

describe("the fallback ladder", () => {
  test("with both devices allowed, opens both at the first rung", async () => {
    const { getUserMedia, asked } = fakeGetUserMedia({});
    const result = await openWithFallback(getUserMedia, { audio: true, video: true }, true);
    assert.deepEqual(result, { stream: "audio+video", mode: "camera_and_microphone", problem: null });
    assert.deepEqual(asked, ["audio+video"]);
  });

  test("a denied camera gives the microphone alone, saying the camera was denied", async () => {
    const { getUserMedia, asked } = fakeGetUserMedia({ video: "NotAllowedError" });
    const result = await openWithFallback(getUserMedia, { audio: true, video: true }, true);
    assert.deepEqual(result, { stream: "audio", mode: "microphone_only", problem: "media_denied" });
    assert.deepEqual(asked, ["audio+video", "audio"]);
  });

  test("a microphone held by another app gives the camera alone", async () => {
    const { getUserMedia } = fakeGetUserMedia({ audio: "NotReadableError" });
    const result = await openWithFallback(getUserMedia, { audio: true, video: true }, true);
    assert.deepEqual(result, { stream: "video", mode: "camera_only", problem: "media_busy" });
  });

  test("nothing allowed ends at receive only, after trying each rung", async () => {
    const { getUserMedia, asked } = fakeGetUserMedia({ audio: "NotAllowedError", video: "NotAllowedError" });
    const result = await openWithFallback(getUserMedia, { audio: true, video: true }, true);
    assert.deepEqual(result, { stream: null, mode: "receive_only", problem: "media_denied" });
    assert.deepEqual(asked, ["audio+video", "audio", "video"]);
  });

  test("no device at all is told apart from a denial", async () => {
    const { getUserMedia } = fakeGetUserMedia({ audio: "NotFoundError", video: "NotFoundError" });
    const result = await openWithFallback(getUserMedia, { audio: true, video: true }, true);
    assert.deepEqual(result, { stream: null, mode: "receive_only", problem: "media_missing" });
  });

  test("a page that is not a secure context asks nothing and says why", async () => {
    const { getUserMedia, asked } = fakeGetUserMedia({});
    const result = await openWithFallback(getUserMedia, { audio: true, video: true }, false);
    assert.deepEqual(result, { stream: null, mode: "receive_only", problem: "media_insecure" });
    assert.deepEqual(asked, []);
  });

  test("a browser without getUserMedia receives only", async () => {
    const result = await openWithFallback(null, { audio: true, video: true }, true);
    assert.deepEqual(result, { stream: null, mode: "receive_only", problem: "media_unavailable" });
  });

  test("getUserMedia's error names map to distinct problems, old Chromium names included", () => {
    const of = (/** @type {string} */ name) => mediaProblemOf(Object.assign(new Error(), { name }));
    assert.deepEqual(
      ["NotAllowedError", "SecurityError", "NotReadableError", "TrackStartError", "NotFoundError",
        "OverconstrainedError", "TypeError"].map(of),
      ["media_denied", "media_denied", "media_busy", "media_busy", "media_missing", "media_missing",
        "media_unavailable"],
    );
    assert.equal(mediaProblemOf(undefined), "media_unavailable");
  });
});

describe("switching cameras", () => {
  const cameras = [{ deviceId: "front" }, { deviceId: "back" }, { deviceId: "usb" }];

  test("with several cameras, takes the next one in the list, wrapping around", () => {
    assert.deepEqual(nextCameraConstraints(cameras, { deviceId: "front" }), { deviceId: { exact: "back" } });
    assert.deepEqual(nextCameraConstraints(cameras, { deviceId: "usb" }), { deviceId: { exact: "front" } });
  });

  test("with one listed camera, asks for the other side of the phone", () => {
    const one = [{ deviceId: "front" }];
    assert.deepEqual(nextCameraConstraints(one, { deviceId: "front", facingMode: "user" }), {
      facingMode: { exact: "environment" },
    });
    assert.deepEqual(nextCameraConstraints(one, { facingMode: "environment" }), { facingMode: { exact: "user" } });
  });
});

describe("the one-to-one arrangement", () => {
  test("oneself and one other camera: the other large, oneself inset", () => {
    assert.equal(arrangementFor(["local", "p-1:camera"]), "pip");
  });

  test("alone, with a screen share, or with more people: the grid", () => {
    assert.equal(arrangementFor(["local"]), "grid");
    assert.equal(arrangementFor(["local", "p-1:screen"]), "grid");
    assert.equal(arrangementFor(["local", "p-1:camera", "p-1:screen"]), "grid");
    assert.equal(arrangementFor(["local", "p-1:camera", "p-2:camera"]), "grid");
  });
});

describe("refreshing playback links", () => {
  /**
   * A link as the server signs it (recordings/links.py), expiring at `exp` (seconds).
   * @param {number} exp
   */
  const link = (exp) => {
    const claims = Buffer.from(JSON.stringify({ rec: "r-1", sub: "rev", exp })).toString("base64url");
    return `/api/recordings/r-1/files/camera.webm?access=${claims}.c2lnbmF0dXJl`;
  };
  const now = 1_700_000_000_000;

  test("a link's expiry is the exp of its access value; a link without one has none", () => {
    assert.equal(linkExpiresAt(link(1_700_000_300)), 1_700_000_300_000);
    assert.equal(linkExpiresAt("/api/recordings/r-1/files/camera.webm"), null);
    assert.equal(linkExpiresAt("/api/recordings/r-1/files/camera.webm?access=garbage"), null);
  });

  test("five-minute links are refreshed a minute before the first of them expires", () => {
    const links = { "camera.webm": link(1_700_000_300), "mic.webm": link(1_700_000_600) };
    assert.equal(refreshDelayMs(links, now), 240_000);
  });

  test("short links are refreshed a fifth of their life early, never sooner than a second", () => {
    assert.equal(refreshDelayMs({ a: link(1_700_000_010) }, now), 8_000);
    assert.equal(refreshDelayMs({ a: link(1_699_999_990) }, now), 1_000);
  });

  test("links that never expire are not refreshed", () => {
    assert.equal(refreshDelayMs({ a: "/api/recordings/r-1/files/a.webm" }, now), null);
    assert.equal(refreshDelayMs({}, now), null);
  });
});
