// @ts-check
/**
 * What a page makes of the server's words about weak links (link-quality.js), and how the
 * publisher connection asks the browser to send a screen share.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  FULL_RECEIVE,
  parseLinkQuality,
  parseReceiveMode,
  videoPauseOf,
  voicePausedOf,
} from "../../web_client/static/link-quality.js";
import "./browser-fetch.js";
import { translate } from "../../web_client/static/i18n.js";
import { Publisher } from "../../web_client/static/publisher.js";
import { FakePeerConnection, FakeSignaling, FakeTrack, fake } from "./fakes.js";

describe("link_quality", () => {
  test("each participant's rating, by id", () => {
    const ratings = parseLinkQuality({ participants: { a: { quality: "good" }, b: { quality: "fair" }, c: { quality: "poor" } } });
    assert.deepEqual([...ratings], [["a", "good"], ["b", "fair"], ["c", "poor"]]);
  });

  test("anything else is no rating, never an exception", () => {
    for (const payload of [null, undefined, "poor", {}, { participants: null }, { participants: { a: null } }]) {
      assert.deepEqual([...parseLinkQuality(payload)], [], JSON.stringify(payload));
    }
    assert.deepEqual([...parseLinkQuality({ participants: { a: { quality: "bad" }, b: { quality: 3 } } })], []);
  });
});

describe("receive_mode", () => {
  test("audio only for a weak connection, or chosen; everything again", () => {
    assert.deepEqual(parseReceiveMode({ audio_only: true, reason: "weak_connection" }), { audioOnly: true, reason: "weak_connection", paused: [] });
    assert.deepEqual(parseReceiveMode({ audio_only: true, reason: "chosen" }), { audioOnly: true, reason: "chosen", paused: [] });
    assert.deepEqual(parseReceiveMode({ audio_only: false, reason: null }), FULL_RECEIVE);
    assert.deepEqual(parseReceiveMode({ audio_only: false, reason: null, paused: [] }), FULL_RECEIVE);
  });

  test("the videos paused for our link, by participant and source; malformed entries are left out", () => {
    const mode = parseReceiveMode({
      audio_only: false,
      reason: null,
      paused: [
        { participant_id: "p-nurse", source: "camera", reason: "weak_connection" },
        { participant_id: "p-doctor", source: "microphone" },
        { participant_id: 7, source: "camera" },
        null,
      ],
    });
    assert.deepEqual(mode, { audioOnly: false, reason: null, paused: [{ participantId: "p-nurse", source: "camera" }] });
    assert.deepEqual(parseReceiveMode({ audio_only: false, paused: "all" }), FULL_RECEIVE);
  });

  test("audio only for an unknown reason is shown as the link's doing; a malformed one is none", () => {
    assert.deepEqual(parseReceiveMode({ audio_only: true, reason: "cosmic" }), { audioOnly: true, reason: "weak_connection", paused: [] });
    assert.equal(parseReceiveMode({ audio_only: "true" }), null);
    assert.equal(parseReceiveMode(null), null);
  });
});

describe("which tile says its video is paused", () => {
  const full = { receiveMode: FULL_RECEIVE, audioOnly: false };
  const weak = { receiveMode: { audioOnly: true, reason: /** @type {const} */ ("weak_connection"), paused: [] }, audioOnly: false };
  const chosen = { receiveMode: { audioOnly: true, reason: /** @type {const} */ ("chosen"), paused: [] }, audioOnly: true };

  test("our weak link pauses every remote tile, camera and screen, not our own picture", () => {
    assert.equal(videoPauseOf("camera", weak), "weak_connection");
    assert.equal(videoPauseOf("screen", weak), "weak_connection");
    assert.equal(videoPauseOf("local", weak), null);
    assert.equal(videoPauseOf("camera", full), null);
  });

  test("a video paused for our link pauses that participant's tile only, and that source only", () => {
    const nursePaused = {
      receiveMode: { audioOnly: false, reason: null, paused: [{ participantId: "p-nurse", source: /** @type {const} */ ("camera") }] },
      audioOnly: false,
    };
    assert.equal(videoPauseOf("camera", nursePaused, "p-nurse"), "weak_connection");
    assert.equal(videoPauseOf("screen", nursePaused, "p-nurse"), null);
    assert.equal(videoPauseOf("camera", nursePaused, "p-doctor"), null);
    assert.equal(videoPauseOf("local", nursePaused), null);
  });

  test("that tile says so in the page's language", () => {
    const pause = videoPauseOf("camera", { receiveMode: parseReceiveMode({ audio_only: false, paused: [{ participant_id: "p-nurse", source: "camera" }] }) ?? FULL_RECEIVE, audioOnly: false }, "p-nurse");
    // tiles.js shows `tile_video_paused.<pause>` on the tile.
    assert.equal(translate("en", `tile_video_paused.${pause}`), "Video paused: weak connection");
    assert.equal(translate("zh-CN", `tile_video_paused.${pause}`), "视频已暂停：网络较弱");
  });

  test("our own audio only pauses every tile, ours included, even before the server confirms", () => {
    for (const kind of /** @type {const} */ (["camera", "screen", "local"])) {
      assert.equal(videoPauseOf(kind, chosen), "audio_only");
      assert.equal(videoPauseOf(kind, { ...full, audioOnly: true }), "audio_only");
    }
  });
});

describe("a screen share", () => {
  test("asks the browser to keep its resolution and give up frame rate", async () => {
    const publisher = new Publisher(new FakeSignaling({ publish: { ok: true, sdp: "answer" } }), { iceServers: [] }, { onFailed() {} }, FakePeerConnection.factory);
    await publisher.shareScreen(/** @type {any} */ (new FakeTrack("video")));
    const [screen] = fake(publisher.pc).transceivers;
    assert.equal(screen.sender.getParameters().degradationPreference, "maintain-resolution");
  });
});

describe("a voice paused for our weak link", () => {
  const mode = parseReceiveMode({
    audio_only: true,
    reason: "weak_connection",
    paused: [
      { participant_id: "p-nurse", source: "microphone", reason: "weak_connection" },
      { participant_id: "p-doctor", source: "camera" },
    ],
  });

  test("on audio only the server names the voices it does not forward; nothing else", () => {
    assert.deepEqual(mode, { audioOnly: true, reason: "weak_connection", paused: [{ participantId: "p-nurse", source: "microphone" }] });
  });

  test("that participant's camera tile says so in the page's language, no other tile", () => {
    const own = { receiveMode: mode ?? FULL_RECEIVE };
    assert.equal(voicePausedOf("camera", own, "p-nurse"), true);
    assert.equal(voicePausedOf("camera", own, "p-doctor"), false);
    assert.equal(voicePausedOf("screen", own, "p-nurse"), false);
    assert.equal(voicePausedOf("camera", { receiveMode: FULL_RECEIVE }, "p-nurse"), false);
    // tiles.js shows `tile_voice_paused.weak_connection` on the tile.
    assert.equal(translate("en", "tile_voice_paused.weak_connection"), "Voice paused: weak connection");
    assert.equal(translate("zh-CN", "tile_voice_paused.weak_connection"), "语音已暂停：网络较弱");
  });
});
