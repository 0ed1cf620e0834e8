// @ts-check
/**
 * The consult session engine, driven like the page drives it, against a scripted server
 * (FakeSignaling) and peer connections that negotiate at once (FakePeerConnection).
 */
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { ConsultSession } from "../../web_client/static/consult-session.js";
import { SignalingError } from "../../web_client/static/signaling-error.js";
import { FakePeerConnection, FakeSignaling, FakeTrack, fake, fakeStream, settle } from "./fakes.js";

const DOCTOR = { participant_id: "p-doctor", name: "Dr. Wang Fang", role: "doctor", is_host: true, status: "joined" };
const PATIENT = { participant_id: "p-patient", name: "Li Hua", role: "patient", is_host: false, status: "waiting" };

/**
 * The `join` answer for `participant`.
 * @param {typeof DOCTOR} participant
 * @param {Partial<import("../../web_client/static/consult-session.js").JoinResult>} [extra]
 */
function joinResult(participant, extra = {}) {
  const host = participant.is_host;
  return {
    ok: true,
    status: participant.status === "waiting" ? "lobby" : "joined",
    participant,
    consult: { title: "Follow-up" },
    grants: { publish: true, admit: host, moderate: host, end: host, record: host },
    ice_servers: [],
    participants: [DOCTOR, PATIENT],
    chat: [],
    resume_token: "resume-1",
    ...extra,
  };
}

/**
 * A session for `participant` with camera and microphone, and everything it emits, in order.
 * @param {typeof DOCTOR} participant
 * @param {Record<string, unknown>} [answers] more of the server's answers
 */
function start(participant, answers = {}) {
  const signaling = new FakeSignaling({
    join: joinResult(participant),
    resume: joinResult({ ...participant, status: "joined" }, { resume_token: "resume-2" }),
    publish: { ok: true, sdp: "server answer" },
    ...answers,
  });
  const session = new ConsultSession({
    consultId: "c-1",
    token: "jwt",
    name: "from the token",
    connect: async () => signaling,
    createPeerConnection: FakePeerConnection.factory,
  });
  const microphone = new FakeTrack("audio");
  const camera = new FakeTrack("video");
  session.setLocalStream(fakeStream([microphone, camera]));
  /** @type {Array<[string, ...unknown[]]>} */
  const events = [];
  for (const name of [
    "view", "joined", "participant_joined", "participant_left", "waiting", "admitted", "muted_by_host",
    "track_added", "track_removed", "chat_message", "error", "clinical_updated", "reconnecting", "reconnected",
    "media_restarted", "ending",
  ]) {
    session.on(/** @type {any} */ (name), (/** @type {unknown[]} */ ...args) => events.push([name, ...args]));
  }
  /** @param {string} name */
  const emitted = (name) => events.filter(([event]) => event === name).map(([, ...args]) => args);
  return { session, signaling, microphone, camera, events, emitted };
}

beforeEach(() => {
  FakePeerConnection.created = [];
});

describe("joining", () => {
  test("a doctor joins, enters the consult and publishes microphone, camera and its low layer", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();

    assert.deepEqual(signaling.sent("join"), [{ consult_id: "c-1" }]);
    assert.deepEqual(emitted("view"), [["consult"]]);
    assert.equal(session.state.name, "Dr. Wang Fang");
    assert.deepEqual(session.state.participant, DOCTOR);
    assert.deepEqual([...session.state.participants.keys()], ["p-doctor", "p-patient"]);
    assert.deepEqual(session.state.waiting, [PATIENT]);
    const [publish] = signaling.sent("publish");
    assert.equal(publish.type, "offer");
    assert.deepEqual(publish.sources, { 0: "microphone", 1: "camera", 2: "camera" });
    assert.deepEqual(publish.layers, { 2: "low" });
    const pc = fake(session.publisher?.pc);
    assert.deepEqual(pc.remoteDescription, { type: "answer", sdp: "server answer" });
    assert.deepEqual(pc.transceivers.map((t) => [t.kind, t.direction]), [["audio", "sendonly"], ["video", "sendonly"], ["video", "sendonly"]]);
    assert.equal(session.joining, false);
  });

  test("a patient waits in the lobby and publishes only once the doctor admits them", async () => {
    const { session, signaling, emitted } = start(PATIENT);
    await session.join();
    assert.deepEqual(emitted("view"), [["lobby"]]);
    assert.equal(signaling.sent("publish").length, 0);
    assert.equal(session.publisher, null);

    await signaling.send("admitted", { consult: { title: "Now live" }, participants: [DOCTOR, { ...PATIENT, status: "joined" }] });

    assert.deepEqual(emitted("admitted"), [[]]);
    assert.deepEqual(emitted("view"), [["lobby"], ["consult"]]);
    assert.deepEqual(session.state.consult, { title: "Now live" });
    assert.equal(session.state.participant?.status, "joined");
    assert.equal(signaling.sent("publish").length, 1);
  });

  test("a participant without publish grant enters without a publisher and asks to receive", async () => {
    const { session, signaling } = start(DOCTOR, {
      join: joinResult(DOCTOR, { grants: { publish: false } }),
    });
    await session.join();
    assert.equal(session.state.view, "consult");
    assert.equal(session.ensurePublisher(), null);
    assert.equal(signaling.sent("publish").length, 0);
    assert.equal(signaling.sent("subscribe").length, 1);
  });

  test("a participant with no camera or microphone allowed receives without publishing", async () => {
    const { session, signaling } = start(DOCTOR);
    session.setLocalStream(fakeStream([]));
    await session.join();
    assert.equal(session.state.view, "consult");
    assert.equal(session.publisher, null);
    assert.equal(signaling.sent("publish").length, 0);
    assert.deepEqual(signaling.sent("subscribe"), [{}]);
  });

  test("one who publishes does not ask to subscribe: publishing opens the subscriber too", async () => {
    const { session, signaling } = start(DOCTOR);
    await session.join();
    assert.equal(signaling.sent("publish").length, 1);
    assert.equal(signaling.sent("subscribe").length, 0);
  });

  test("both peer connections use the join answer's ICE servers and transport policy", async () => {
    const turn = { urls: ["turns:turn.example:443"], username: "1800000000:p-doctor", credential: "c2VjcmV0" };
    const { session, signaling } = start(DOCTOR, {
      join: joinResult(DOCTOR, { ice_servers: [turn], ice_transport_policy: "relay" }),
    });
    await session.join();
    await signaling.send("subscriber_offer", { type: "offer", sdp: "mids:0", tracks: {} });
    assert.equal(FakePeerConnection.created.length, 2, "a publisher and a subscriber");
    for (const pc of FakePeerConnection.created) {
      assert.deepEqual(pc.config, { iceServers: [turn], iceTransportPolicy: "relay" });
    }
  });

  test("a refused join is reported, closes the connection, and can be tried again", async () => {
    let refuse = true;
    const { session, signaling, emitted } = start(DOCTOR, {
      join: () => {
        if (refuse) throw new SignalingError("consult_ended", "The consult has ended");
        return joinResult(DOCTOR);
      },
    });
    await session.join();
    assert.deepEqual(emitted("error"), [["consult_ended"]]);
    assert.equal(signaling.closed, true);
    assert.equal(session.signaling, null);
    assert.equal(session.joining, false);
    assert.equal(session.state.view, "join");

    refuse = false;
    await session.join();
    assert.equal(session.state.view, "consult");
  });

  test("a second click while joining does not join twice", async () => {
    const { session, signaling } = start(DOCTOR);
    await Promise.all([session.join(), session.join()]);
    assert.equal(signaling.sent("join").length, 1);
  });

  test("events that arrive before the join answer wait for it, in order", async () => {
    const joiner = { ...PATIENT, participant_id: "p-expert", name: "Dr. Zhou", status: "joined" };
    /** @type {FakeSignaling} */
    let signaling;
    const started = start(DOCTOR, {
      join: () => {
        // The server's broadcast overtakes our own answer.
        signaling.send("participant_joined", joiner);
        signaling.send("chat_message", { participant_id: "p-expert", name: "Dr. Zhou", text: "hello", at: "" });
        return joinResult(DOCTOR);
      },
    });
    signaling = started.signaling;
    await started.session.join();
    await settle();
    const order = started.events.map(([name]) => name).filter((name) => name !== "view");
    assert.deepEqual(order, ["joined", "participant_joined", "chat_message"]);
    assert.equal(started.session.state.participants.get("p-expert")?.name, "Dr. Zhou");
  });
});

describe("in the consult", () => {
  test("the server's subscriber offers are answered and their tracks placed and removed", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    await signaling.send("subscriber_offer", {
      type: "offer",
      sdp: "mids:0,1",
      tracks: {
        0: { participant_id: "p-patient", source: "microphone" },
        1: { participant_id: "p-patient", source: "camera" },
      },
    });
    assert.deepEqual(signaling.sent("subscriber_answer"), [{ type: "answer", sdp: "answer to mids:0,1" }]);
    assert.deepEqual(
      emitted("track_added").map(([p]) => /** @type {any} */ (p)).map((p) => [p.mid, p.participantId, p.source]),
      [["0", "p-patient", "microphone"], ["1", "p-patient", "camera"]],
    );

    // The patient's camera goes away: its mid leaves the map.
    await signaling.send("subscriber_offer", {
      type: "offer",
      sdp: "mids:0,1",
      tracks: { 0: { participant_id: "p-patient", source: "microphone" } },
    });
    assert.deepEqual(emitted("track_removed").map(([p]) => /** @type {any} */ (p).source), ["camera"]);
    assert.equal(signaling.sent("subscriber_answer").length, 2);
    assert.equal(FakePeerConnection.created.length, 2, "one publisher and one subscriber connection");
  });

  test("an offer that cannot be applied is reported as invalid_sdp", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    await signaling.send("subscriber_offer", { type: "offer", sdp: "garbage", tracks: {} });
    assert.deepEqual(emitted("error"), [["invalid_sdp"]]);
    assert.equal(signaling.sent("subscriber_answer").length, 0);
  });

  test("the server could not set up our receiving connection: the page shows its code, the visit stays", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    await signaling.send("media_error", { code: "media_ports_exhausted", message: "no free UDP port" });
    assert.deepEqual(emitted("error"), [["media_ports_exhausted"]]);
    assert.equal(session.state.view, "consult");
  });

  test("a failed publisher connection is replaced: new connections, an offer asking for a restart", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    const lost = fake(session.publisher?.pc);
    lost.becomes("failed");
    await settle();
    assert.deepEqual(emitted("media_restarted"), [[]]);
    assert.deepEqual(emitted("error"), []);
    assert.equal(lost.signalingState, "closed");
    assert.notEqual(fake(session.publisher?.pc), lost);
    assert.deepEqual(
      signaling.sent("publish").map((offer) => offer.restart),
      [undefined, true],
      "only the new connection's first offer asks the server to replace its side",
    );
  });

  test("a subscriber connection disconnected for a few seconds is replaced; its tracks leave the tiles", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    await signaling.send("subscriber_offer", {
      type: "offer", sdp: "mids:0", tracks: { 0: { participant_id: "p-patient", source: "microphone" } },
    });
    const placed = emitted("track_added");
    assert.equal(placed.length, 1);
    const lost = fake(session.subscriber?.pc);
    lost.becomes("disconnected");
    await new Promise((resolve) => setTimeout(resolve, 3100));
    await settle();
    assert.deepEqual(emitted("track_removed"), placed);
    assert.deepEqual(emitted("media_restarted"), [[]]);
    assert.equal(session.subscriber?.pc, null, "the new subscriber connection waits for the server's offer");
  });

  test("muting the microphone turns its track off at once and tells the server", async () => {
    const { session, signaling, microphone, camera } = start(DOCTOR);
    await session.join();
    const request = session.setMute("microphone", true);
    assert.equal(microphone.enabled, false, "off before the server answers");
    assert.equal(camera.enabled, true);
    await request;
    assert.deepEqual(signaling.sent("mute"), [{ source: "microphone", muted: true }]);
    assert.deepEqual(session.state.muted, { microphone: true, camera: false });
  });

  test("a host mutes our microphone: the track goes off and the page is told by whom", async () => {
    const { session, signaling, microphone, emitted } = start(PATIENT);
    await session.join();
    await signaling.send("muted_by_host", { source: "microphone", by: "Dr. Wang Fang" });
    assert.equal(microphone.enabled, false);
    assert.equal(session.state.muted.microphone, true);
    assert.deepEqual(emitted("muted_by_host"), [[{ source: "microphone", by: "Dr. Wang Fang" }]]);
    assert.equal(signaling.sent("mute").length, 0, "the server's own state is not echoed back");
  });

  test("the server's mute state of us is followed without echoing it back", async () => {
    const { session, signaling, camera } = start(DOCTOR);
    await session.join();
    await signaling.send("participant_updated", { ...DOCTOR, muted: { microphone: false, camera: true } });
    assert.equal(camera.enabled, false);
    assert.deepEqual(session.state.muted, { microphone: false, camera: true });
    assert.equal(signaling.sent("mute").length, 0);
  });

  test("hosts hear of each newcomer to the lobby once", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    const other = { ...PATIENT, participant_id: "p-other", name: "Zhang Wei" };
    await signaling.send("lobby", { waiting: [PATIENT, other] });
    await signaling.send("lobby", { waiting: [other] });
    assert.deepEqual(emitted("waiting").map(([p]) => /** @type {any} */ (p).name), ["Zhang Wei"]);
    assert.deepEqual(session.state.waiting, [other]);
  });

  test("someone joins and leaves", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    await signaling.send("participant_joined", { ...PATIENT, status: "joined" });
    await signaling.send("participant_left", { participant_id: "p-patient" });
    assert.deepEqual(emitted("participant_joined").map(([p]) => /** @type {any} */ (p).participant_id), ["p-patient"]);
    assert.deepEqual(emitted("participant_left"), [["p-patient", { ...PATIENT, status: "joined" }]]);
    assert.equal(session.state.participants.has("p-patient"), false);
  });

  test("clinical changes of this consult reach the page; other consults' do not", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    const update = { consult_id: "c-1", document: "prescription", id: "rx-1", change: "signed" };
    await signaling.send("clinical_updated", update);
    await signaling.send("clinical_updated", { ...update, consult_id: "c-2" });
    assert.deepEqual(emitted("clinical_updated"), [[update]]);

    signaling.reconnectHandler?.();
    await settle();
    assert.deepEqual(emitted("reconnected"), [[]]);
  });
});

describe("ending", () => {
  test("removed by the host: the page stops its media, then both connections and the socket close", async () => {
    const { session, signaling, events } = start(PATIENT);
    await session.join();
    await signaling.send("admitted", { participants: [DOCTOR, { ...PATIENT, status: "joined" }] });
    await signaling.send("subscriber_offer", { type: "offer", sdp: "mids:0", tracks: {} });
    /** @type {string[]} */
    const closedWhenEnding = [];
    session.on("ending", () => {
      if (session.publisher?.pc.signalingState === "closed") closedWhenEnding.push("publisher");
    });

    await signaling.send("removed", { by: "Dr. Wang Fang" });

    assert.equal(session.state.view, "ended");
    assert.equal(session.state.endedReason, "removed");
    assert.equal(session.state.endedBy, "Dr. Wang Fang");
    assert.deepEqual(closedWhenEnding, []);
    assert.equal(fake(session.publisher?.pc).signalingState, "closed");
    assert.equal(fake(session.subscriber?.pc).signalingState, "closed");
    assert.equal(signaling.closed, true);
    assert.deepEqual(events.slice(-2), [["ending", "removed"], ["view", "ended"]]);

    // The disconnect that follows finds the session ended.
    await signaling.send("disconnect", "io server disconnect");
    assert.equal(session.state.endedReason, "removed");
  });

  test("a dropped connection waits, then resumes the seat with the resume token and new media", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    await session.join();
    await session.setMute("microphone", true);
    await signaling.send("disconnect", "transport close");
    assert.equal(session.state.view, "consult", "no end, no lobby");
    assert.equal(session.state.reconnecting, true);
    assert.deepEqual(emitted("error"), [["reconnecting"]]);

    signaling.reconnectHandler?.();
    await settle();
    assert.deepEqual(signaling.sent("resume"), [{ consult_id: "c-1", resume_token: "resume-1" }]);
    assert.equal(session.resumeToken, "resume-2", "the refreshed token replaces the old");
    assert.equal(session.state.reconnecting, false);
    assert.deepEqual(emitted("reconnected"), [[]]);
    assert.deepEqual(signaling.sent("publish").at(-1)?.restart, true);
    assert.deepEqual(
      signaling.sent("mute").at(-1),
      { source: "microphone", muted: true },
      "our mute state is told again: the server may have restarted",
    );
    assert.equal(signaling.sent("join").length, 1, "a resume is not a new join");
  });

  test("a refused resume (the seat was given up) ends the session", async () => {
    const { session, signaling, emitted } = start(DOCTOR, {
      resume: () => {
        throw new SignalingError("resume_expired");
      },
    });
    await session.join();
    await signaling.send("disconnect", "transport close");
    signaling.reconnectHandler?.();
    await settle();
    assert.deepEqual(emitted("error").at(-1), ["resume_expired"]);
    assert.equal(session.state.endedReason, "lost");
  });

  test("a lost connection without a resume token ends the session with connection_lost", async () => {
    const { session, signaling, emitted } = start(DOCTOR, {
      join: joinResult(DOCTOR, { resume_token: undefined }),
    });
    await session.join();
    await signaling.send("disconnect", "transport close");
    assert.deepEqual(emitted("error"), [["connection_lost"]]);
    assert.equal(session.state.endedReason, "lost");
  });

  test("leaving ends the session even when the server does not answer", async () => {
    const { session, signaling } = start(DOCTOR, {
      leave: () => {
        throw new SignalingError("timeout");
      },
    });
    await session.join();
    await session.leave();
    assert.deepEqual(signaling.sent("leave"), [{}]);
    assert.equal(session.state.endedReason, "left");
    assert.equal(session.state.waiting.length, 0);
  });

  test("ending the consult goes on only when the server agrees", async () => {
    let agree = false;
    const { session } = start(DOCTOR, {
      end: () => {
        if (!agree) throw new SignalingError("forbidden");
        return { ok: true };
      },
    });
    await session.join();
    await assert.rejects(session.end(), { code: "forbidden" });
    assert.equal(session.state.view, "consult");
    agree = true;
    await session.end();
    assert.equal(session.state.endedReason, "ended");
  });

  test("the consult ended by the host ends it here once", async () => {
    const { session, signaling, emitted } = start(PATIENT);
    await session.join();
    await signaling.send("consult_ended");
    await signaling.send("consult_ended");
    assert.deepEqual(emitted("ending"), [["ended"]]);
  });

  test("requests after the connection is gone are refused with a code", async () => {
    const { session } = start(DOCTOR);
    await assert.rejects(session.request("chat", { text: "hi" }), { code: "connection_lost" });
  });
});

describe("weak links", () => {
  /**
   * The camera's sender on the session's current publisher connection.
   * @param {ConsultSession} session
   */
  const cameraSender = (session) => {
    const camera = fake(session.publisher?.pc).transceivers.find((t) => t.kind === "video");
    assert.ok(camera, "the camera is published");
    return camera.sender;
  };

  test("the camera is published with three temporal layers and a bitrate cap", async () => {
    const { session } = start(DOCTOR);
    await session.join();
    assert.deepEqual(cameraSender(session).getParameters().encodings, [{ scalabilityMode: "L1T3", maxBitrate: 1_000_000 }]);
  });

  test("the same camera goes out again as a low layer: a quarter of its size, 80 kbit/s, its frame rate left to the camera", async () => {
    const { session, camera } = start(DOCTOR);
    await session.join();
    const [full, low] = fake(session.publisher?.pc).transceivers.filter((t) => t.kind === "video");
    assert.equal(low.sender.track, full.sender.track);
    assert.equal(low.sender.track, camera);
    assert.deepEqual(low.sender.getParameters().encodings, [{ scalabilityMode: "L1T3", scaleResolutionDownBy: 4, maxBitrate: 80_000 }]);
    await session.setAudioOnly(true);
    assert.equal(low.sender.track, null, "audio only stops the low layer too");
  });

  test("a browser without that scalability mode publishes one layer, capped all the same", async (t) => {
    t.after(() => {
      FakePeerConnection.scalabilityModes = ["L1T3"];
    });
    FakePeerConnection.scalabilityModes = [];
    const { session, emitted } = start(DOCTOR);
    await session.join();
    assert.deepEqual(cameraSender(session).getParameters().encodings, [{ maxBitrate: 1_000_000 }]);
    assert.deepEqual(emitted("error"), []);
  });

  test("the server's ratings of everyone's connection reach the page; malformed entries are left out", async () => {
    const { session, signaling, emitted } = start(DOCTOR);
    /** @type {Map<string, string>[]} */
    const rated = [];
    session.on("link_quality", () => rated.push(new Map(session.state.linkQuality)));
    await session.join();
    await signaling.send("link_quality", {
      participants: { "p-doctor": { quality: "good" }, "p-patient": { quality: "poor" }, "p-x": { quality: "awful" } },
    });
    assert.deepEqual(rated, [new Map([["p-doctor", "good"], ["p-patient", "poor"]])]);
    assert.deepEqual(emitted("error"), []);
  });

  test("video paused for a weak connection, and back when the server says so", async () => {
    const { session, signaling } = start(PATIENT);
    /** @type {unknown[]} */
    const modes = [];
    session.on("receive_mode", (mode) => modes.push(mode));
    await session.join();
    await signaling.send("receive_mode", { audio_only: true, reason: "weak_connection" });
    assert.deepEqual(session.state.receiveMode, { audioOnly: true, reason: "weak_connection", paused: [] });
    await signaling.send("receive_mode", { audio_only: "yes" });
    await signaling.send("receive_mode", { audio_only: false, reason: null, paused: [{ participant_id: "p-doctor", source: "camera", reason: "weak_connection" }] });
    await signaling.send("receive_mode", { audio_only: false, reason: null, paused: [] });
    assert.deepEqual(modes, [
      { audioOnly: true, reason: "weak_connection", paused: [] },
      { audioOnly: false, reason: null, paused: [{ participantId: "p-doctor", source: "camera" }] },
      { audioOnly: false, reason: null, paused: [] },
    ], "a malformed receive_mode changes nothing");
  });

  test("audio only: the camera leaves its sender at once, the server is told; off brings it back", async () => {
    const { session, signaling, camera } = start(DOCTOR);
    await session.join();
    await session.setAudioOnly(true);
    assert.equal(session.state.audioOnly, true);
    assert.equal(cameraSender(session).track, null, "no camera frame leaves");
    assert.equal(camera.readyState, "live", "the camera stays open, for coming back quickly");
    await session.setAudioOnly(false);
    assert.equal(cameraSender(session).track, camera);
    assert.deepEqual(signaling.sent("audio_only"), [{ enabled: true }, { enabled: false }]);
    assert.equal(signaling.sent("publish").length, 1, "no renegotiation");
  });

  test("audio only refused by the server is undone here", async () => {
    const refuse = () => {
      throw new SignalingError("forbidden", "no");
    };
    const { session, camera } = start(DOCTOR, { audio_only: refuse });
    await session.join();
    await assert.rejects(session.setAudioOnly(true), { code: "forbidden" });
    assert.equal(session.state.audioOnly, false);
    assert.equal(cameraSender(session).track, camera);
  });

  test("audio only holds through a switched camera, a media restart and a resume", async () => {
    const { session, signaling } = start(DOCTOR);
    await session.join();
    await session.setAudioOnly(true);
    assert.equal(await session.sendTrack("camera", /** @type {any} */ (new FakeTrack("video"))), true);
    assert.equal(cameraSender(session).track, null, "the new camera is not sent either");

    fake(session.publisher?.pc).becomes("failed");
    await settle();
    assert.equal(cameraSender(session).track, null, "the new connection sends no camera");

    await signaling.send("disconnect", "transport close");
    signaling.reconnectHandler?.();
    await settle();
    assert.deepEqual(signaling.sent("audio_only").at(-1), { enabled: true }, "told again after a resume");
    assert.equal(cameraSender(session).track, null);
  });
});
