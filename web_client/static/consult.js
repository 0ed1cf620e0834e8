// @ts-check
/**
 * Entry of the consult page (/join/{consult_id}?token=JWT, a patient's join link; or
 * /join/{consult_id}#token=JWT, staff with their own identity token): device check, join, lobby,
 * consult, end. The session engine (consult-session.js) does the signaling and the peer
 * connections; this module owns the DOM: buttons, tiles, chat, panels and announcements.
 */
import { mountLanguageSwitch, onLanguageChange, translateDocument } from "./i18n.js";
import { decodeJwtPayload, readConsultId, takeToken } from "./session.js";
import { Signaling } from "./signaling.js";
import { ConsultSession } from "./consult-session.js";
import { NodeRoute } from "./node-route.js";
import { api } from "./rest.js";
import {
  listDevices,
  mediaProblemOf,
  nextCameraConstraints,
  openLocalMedia,
  openTrack,
  startLevelMeter,
  stopStream,
} from "./devices.js";
import { Chime } from "./chime.js";
import { ScreenWakeLock } from "./wake-lock.js";
import { VideoGrid } from "./tiles.js";
import { ChatPanel } from "./chat.js";
import { HostControls } from "./host-controls.js";
import { ScreenShare } from "./screen-share.js";
import { SpeakingDetector } from "./speaking.js";
import * as ui from "./ui.js";
import { mountRecordingControls } from "./recording-controls.js";
import { mountClinicalPanel } from "./clinical-panel.js";

/** @typedef {import("./consult-session.js").Participant} Participant */

const consultId = readConsultId();
const token = consultId ? takeToken(consultId) : null;
const claims = token ? decodeJwtPayload(token) : null;

/**
 * The cluster's origins as this page's own origin lists them: the only other origins its
 * consult is followed to. None when the page cannot tell (it then stays within its origin).
 * @returns {Promise<string[]>}
 */
async function clusterOrigins() {
  try {
    const answer = await api(null, "GET", "/api/cluster");
    const origins = Array.isArray(answer?.origins) ? answer.origins : [];
    return origins.filter((/** @type {unknown} */ origin) => typeof origin === "string");
  } catch {
    return [];
  }
}

/** @type {Signaling|null} the connection of the latest join (kept after it closed, for tests) */
let signaling = null;
const session = new ConsultSession({
  consultId,
  token,
  name: String(claims?.name ?? claims?.sub ?? ""),
  connect: async (jwt, resumeToken, nodeUrl) => {
    signaling = null;
    signaling = await Signaling.connect(jwt, resumeToken, nodeUrl);
    return signaling;
  },
  // The node this page came from: where it goes back to when the consult's node dies.
  route: new NodeRoute(location.origin, { trusted: await clusterOrigins() }),
});
const state = session.state;

/** @type {MediaStream} */
let localStream = new MediaStream();
session.setLocalStream(localStream);
let stopMeter = () => {};
/** Counts device opens so that a slow, superseded one does not win. */
let mediaRequest = 0;
/** Joining waits for the device check (it publishes what the check opened). */
let checkingDevices = false;
/** Whether another camera (or the other side of the phone) can be switched to. */
let canSwitchCamera = false;
/** @type {Set<MediaStreamTrack>} ended tracks to open again when the page shows (after a phone call) */
const endedTracks = new Set();
const wakeLock = new ScreenWakeLock();
const chime = new Chime();

/**
 * A coded error's code.
 * @param {unknown} err
 * @returns {string|undefined}
 */
const codeOf = (err) => /** @type {{code?: string}|null|undefined} */ (err)?.code;

const hostControls = new HostControls({
  canModerate: () => Boolean(state.grants?.moderate) && state.view === "consult",
  onMute: async (participantId) => {
    await moderate("mute_participant", { participant_id: participantId, source: "microphone" });
  },
  onRemove: async (participantId) => {
    const name = state.participants.get(participantId)?.name ?? "";
    if (await moderate("remove_participant", { participant_id: participantId })) {
      ui.announce("announce_participant_removed", { name });
    }
  },
});
const grid = new VideoGrid(
  ui.elements.videoGrid,
  (id) => state.participants.get(id),
  (figure, participant) => hostControls.decorate(figure, participant),
  () => {
    if (ui.elements.soundButton.hidden) ui.announce("announce_sound_blocked");
    ui.showSoundButton(true);
  },
);
const speaking = new SpeakingDetector((participantId, isSpeaking) => grid.setSpeaking(participantId, isSpeaking));
const screenShare = new ScreenShare({
  publisher: () => session.ensurePublisher(),
  onChange: (sharing) => {
    ui.announce(sharing ? "announce_screen_started" : "announce_screen_stopped");
    render();
  },
});
const chat = new ChatPanel(ui.elements.chatPanel, {
  send: async (text) => {
    await session.request("chat", { text });
  },
  ownId: () => state.participant?.participant_id,
  onError: (err) => ui.showError(codeOf(err)),
});

// Read-only handle for tests (getStats on the peer connections, the view, the socket, the wake lock).
Object.defineProperty(window, "teleconsult", {
  value: Object.freeze({
    get state() {
      return structuredClone({
        ...state,
        participants: [...state.participants.values()],
      });
    },
    get publisherPc() {
      return session.publisher?.pc ?? null;
    },
    get subscriberPc() {
      return session.subscriber?.pc ?? null;
    },
    get socket() {
      return session.signaling ? (signaling?.socket ?? null) : null;
    },
    get wakeLockHeld() {
      return wakeLock.held;
    },
  }),
});

function render() {
  ui.render({
    name: state.name,
    joinDisabled: !token || checkingDevices || session.joining,
    consult: state.consult,
    grants: state.grants,
    muted: state.muted,
    hasTrack: {
      microphone: localStream.getAudioTracks().length > 0,
      camera: localStream.getVideoTracks().length > 0,
    },
    waiting: state.waiting,
    onAdmit: admit,
    endedReason: state.endedReason,
    endedBy: state.endedBy,
    sharing: screenShare.sharing,
    canSwitchCamera,
    audioOnly: state.audioOnly,
  });
  grid.setLinks(linksOf());
}

/** @returns {import("./tiles.js").Links} what the tiles show of the links, from the session */
function linksOf() {
  return {
    quality: state.linkQuality,
    receiveMode: state.receiveMode,
    audioOnly: state.audioOnly,
    ownId: state.participant?.participant_id ?? null,
  };
}

// ---------------------------------------------------------------- device check

/**
 * (Re)open the camera and microphone for the preview, then list the devices.
 * @param {{cameraId?: string, microphoneId?: string}} [choice]
 */
async function checkDevices(choice) {
  const request = ++mediaRequest;
  checkingDevices = true;
  render();
  stopMeter();
  stopStream(localStream);
  const opened = await openLocalMedia(choice);
  if (request !== mediaRequest) {
    stopStream(opened.stream);
    return;
  }
  const stream = opened.stream ?? new MediaStream();
  ui.showMediaNotice(opened.mode, opened.problem);
  localStream = stream;
  session.setLocalStream(stream);
  for (const track of stream.getTracks()) watchEnded(track);
  ui.elements.preview.srcObject = stream;
  if (state.view === "lobby") ui.elements.lobbyPreview.srcObject = stream;
  stopMeter = startLevelMeter(stream, ui.setMicLevel);
  await refreshDeviceList();
  checkingDevices = false;
  render();
}

/** List the cameras and microphones, the ones in use selected. */
async function refreshDeviceList() {
  const [audio] = localStream.getAudioTracks();
  const [video] = localStream.getVideoTracks();
  const devices = await listDevices();
  canSwitchCamera = devices.cameras.length > 1 || Boolean(video?.getSettings().facingMode);
  ui.renderDeviceOptions(devices, {
    cameraId: video?.getSettings().deviceId,
    microphoneId: audio?.getSettings().deviceId,
  });
}

/**
 * "Try again" after the ladder settled for less than camera and microphone: before joining,
 * the device check runs again; in the consult, what opens now is sent (on the senders already
 * there, new ones for what was missing).
 */
async function retryMedia() {
  if (state.view !== "consult") {
    await checkDevices(chosenDevices());
    return;
  }
  const opened = await openLocalMedia(chosenDevices());
  ui.showMediaNotice(opened.mode, opened.problem);
  if (!opened.stream) return;
  /** @type {MediaStreamTrack[]} */
  const added = [];
  for (const track of opened.stream.getTracks()) {
    const old = track.kind === "audio" ? localStream.getAudioTracks()[0] : localStream.getVideoTracks()[0];
    if (!(await useTrack(track, old))) added.push(track);
  }
  if (added.length === 0) return;
  try {
    await session.publishLocal(new MediaStream(added));
  } catch (err) {
    ui.showError(codeOf(err) ?? "invalid_sdp");
  }
}

/**
 * Put `track` in the place of `old` (or beside the others when there is none): on the sender
 * that carries it to the server (no renegotiation), in the local stream and its tile.
 * @param {MediaStreamTrack} track
 * @param {MediaStreamTrack|undefined} old stopped once replaced
 * @returns {Promise<boolean>} whether a sender already carried this source
 */
async function useTrack(track, old) {
  const source = track.kind === "audio" ? "microphone" : "camera";
  track.enabled = !state.muted[source];
  watchEnded(track);
  const replaced = await session.sendTrack(source, track);
  if (old) {
    endedTracks.delete(old);
    localStream.removeTrack(old);
    old.stop();
  }
  localStream.addTrack(track);
  if (state.view === "consult") grid.setLocal(localStream, /** @type {Participant} */ (state.participant), state.muted);
  await refreshDeviceList();
  render();
  return replaced;
}

/**
 * Show the next camera (front ↔ back on a phone) to the others: the new track replaces the
 * old one on the same sender. Phones that cannot open two cameras at once get the old one
 * stopped first.
 */
async function switchCamera() {
  const [current] = localStream.getVideoTracks();
  if (!current) return;
  const constraints = nextCameraConstraints((await listDevices()).cameras, current.getSettings());
  let track;
  try {
    track = await openTrack("video", constraints);
  } catch (err) {
    if (mediaProblemOf(err) !== "media_busy") {
      ui.showError(mediaProblemOf(err));
      return;
    }
    current.stop();
    try {
      track = await openTrack("video", constraints);
    } catch (again) {
      ui.showError(mediaProblemOf(again));
      return;
    }
  }
  await useTrack(track, current);
  ui.announce("announce_camera_switched");
}

/**
 * When the system takes a device away (a phone call, the app in the background), open it
 * again (at once, or when the page shows again) and send the new track in its place.
 * @param {MediaStreamTrack} track
 */
function watchEnded(track) {
  track.addEventListener("ended", () => {
    if (state.view === "ended" || !localStream.getTracks().includes(track)) return;
    endedTracks.add(track);
    reacquireEnded();
  });
}

async function reacquireEnded() {
  for (const old of [...endedTracks]) {
    const kind = old.kind === "audio" ? "audio" : "video";
    const deviceId = old.getSettings().deviceId;
    let track;
    try {
      track = await openTrack(kind, deviceId ? { deviceId: { ideal: deviceId } } : true);
    } catch (err) {
      // Still held by the call: tried again when the page shows.
      ui.showError(mediaProblemOf(err));
      continue;
    }
    // Another run (two tracks ended together) may have replaced it meanwhile.
    if (!endedTracks.delete(old)) {
      track.stop();
      continue;
    }
    await useTrack(track, old);
  }
}

function chosenDevices() {
  return {
    cameraId: ui.elements.cameraSelect.value || undefined,
    microphoneId: ui.elements.microphoneSelect.value || undefined,
  };
}

// ---------------------------------------------------------------- the session's events

async function join() {
  if (session.joining || checkingDevices) return;
  // Inside the tap: audio made later (the admission chime) is then allowed to sound.
  chime.prepare();
  ui.clearError();
  ui.announce("joining");
  await session.join();
}

session.on("change", render);

session.on("error", (code) => ui.showError(code));

session.on("joined", (result) => {
  // Through the session: its connection changes when the signaling moves to another node.
  mountRecordingControls(
    { request: (event, payload) => session.request(event, payload), on: (event, handler) => session.onServer(event, handler) },
    result,
  );
  chat.setHistory(result.chat ?? []);
  stopMeter();
  ui.setMicLevel(0);
});

session.on("view", (view) => {
  if (view === "consult") grid.setLocal(localStream, /** @type {Participant} */ (state.participant), state.muted);
  ui.elements.lobbyPreview.srcObject = view === "lobby" ? localStream : null;
  if (view === "lobby" || view === "consult") wakeLock.hold();
  ui.showView(view);
  render();
  if (view === "consult") {
    mountClinicalPanel(document.getElementById("clinical-panel"), {
      consultId: state.consultId ?? "",
      token: token ?? "",
      role: state.participant?.role,
      isHost: state.participant?.is_host,
      joinLink: claims?.purpose === "join",
      updates: session,
    });
  }
});

session.on("participant", syncTile);

session.on("participant_joined", (participant) => {
  ui.announce("announce_joined", { name: participant.name });
});

session.on("participant_left", (id, participant) => {
  hostControls.forget(id);
  grid.removeParticipant(id);
  if (participant && id !== state.participant?.participant_id) {
    ui.announce("announce_left", { name: participant.name });
  }
});

session.on("waiting", (participant) => ui.announce("announce_waiting", { name: participant.name }));

session.on("admitted", () => {
  chime.play();
  ui.announce("announce_admitted");
});

session.on("reconnected", () => ui.clearError());
session.on("media_restarted", () => screenShare.resend().catch((err) => ui.showError(codeOf(err))));

session.on("muted_by_host", ({ source, by }) => {
  if (source === "screen") screenShare.stop().catch((err) => ui.showError(codeOf(err)));
  ui.announce(`announce_muted_by_host.${source}`, { by });
});

session.on("local_media", () => {
  grid.setLocal(localStream, /** @type {Participant} */ (state.participant), state.muted);
});

session.on("track_added", (placement) => {
  grid.addTrack(placement);
  if (placement.source === "microphone") speaking.watch(placement.participantId, placement.track);
});

session.on("track_removed", (placement) => {
  speaking.unwatch(placement.track);
  grid.removeTrack(placement);
});

session.on("chat_message", (message) => chat.add(message));

session.on("link_quality", () => grid.setLinks(linksOf()));

/** @type {import("./link-quality.js").ReceiveMode["reason"]} why video was paused last (null: it was not) */
let pausedFor = null;
session.on("receive_mode", (mode) => {
  // The page says it once; the tiles keep saying it.
  if (mode.reason === "weak_connection" && pausedFor !== "weak_connection") ui.announce("announce_weak_connection");
  if (!mode.audioOnly && pausedFor === "weak_connection") ui.announce("announce_video_back");
  pausedFor = mode.reason;
});

// The page's part of ending: the session then closes the peer connections and the socket.
session.on("ending", () => {
  stopMeter();
  hostControls.cancel();
  screenShare.close();
  speaking.close();
  chat.clear();
  endedTracks.clear();
  stopStream(localStream);
  ui.elements.preview.srcObject = null;
  ui.elements.lobbyPreview.srcObject = null;
  ui.showSoundButton(false);
  wakeLock.release();
  chime.close();
  grid.clear();
});

/**
 * Joined participants other than us have a tile; everyone else has none.
 * @param {Participant} participant
 */
function syncTile(participant) {
  const id = participant.participant_id;
  if (id === state.participant?.participant_id) return;
  if (participant.status === "joined" || participant.status === "reconnecting") {
    grid.showParticipant(id);
  } else {
    grid.removeParticipant(id);
  }
}

// ---------------------------------------------------------------- in the consult

/** @param {"microphone"|"camera"} source */
async function toggleMute(source) {
  const muted = !state.muted[source];
  const request = session.setMute(source, muted);
  if (source === "microphone") ui.announce(muted ? "announce_mic_muted" : "announce_mic_on");
  else ui.announce(muted ? "announce_camera_off" : "announce_camera_on");
  try {
    await request;
  } catch (err) {
    ui.showError(codeOf(err));
  }
}

async function toggleAudioOnly() {
  const enabled = !state.audioOnly;
  ui.announce(enabled ? "announce_audio_only_on" : "announce_audio_only_off");
  try {
    await session.setAudioOnly(enabled);
  } catch (err) {
    ui.showError(codeOf(err));
  }
}

async function toggleScreenShare() {
  try {
    if (screenShare.sharing) await screenShare.stop();
    else await screenShare.start();
  } catch (err) {
    if (state.view !== "ended") ui.showError(codeOf(err) ?? "invalid_sdp");
  }
}

/**
 * Send a host's request about another participant.
 * @param {string} event
 * @param {object} payload
 * @returns {Promise<boolean>} whether the server accepted it (else the error is shown)
 */
async function moderate(event, payload) {
  try {
    await session.request(event, payload);
    return true;
  } catch (err) {
    ui.showError(codeOf(err));
    return false;
  }
}

/** @param {string} participantId */
async function admit(participantId) {
  try {
    await session.request("admit", { participant_id: participantId });
  } catch (err) {
    ui.showError(codeOf(err));
  }
}

async function endConsult() {
  try {
    await session.end();
  } catch (err) {
    ui.showError(codeOf(err));
  }
}

// ---------------------------------------------------------------- start

mountLanguageSwitch(ui.elements.languageSelect);
translateDocument();
onLanguageChange(render);

ui.elements.joinButton.addEventListener("click", join);
ui.elements.cameraSelect.addEventListener("change", () => checkDevices(chosenDevices()));
ui.elements.microphoneSelect.addEventListener("change", () => checkDevices(chosenDevices()));
navigator.mediaDevices?.addEventListener("devicechange", () => {
  if (state.view === "join") refreshDeviceList();
});
ui.elements.muteButton.addEventListener("click", () => toggleMute("microphone"));
ui.elements.cameraButton.addEventListener("click", () => toggleMute("camera"));
ui.elements.switchCameraButton.addEventListener("click", switchCamera);
ui.elements.mediaRetryButton.addEventListener("click", retryMedia);
ui.elements.soundButton.addEventListener("click", () => {
  grid.enableSound();
  ui.showSoundButton(false);
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && endedTracks.size) reacquireEnded();
});
ui.elements.screenButton.addEventListener("click", toggleScreenShare);
ui.elements.audioOnlyButton.addEventListener("click", toggleAudioOnly);
ui.elements.leaveButton.addEventListener("click", () => session.leave());
ui.elements.lobbyLeaveButton.addEventListener("click", () => session.leave());
ui.elements.endButton.addEventListener("click", endConsult);

ui.showView("join");
render();
if (!consultId || !token) {
  ui.showError(consultId ? "token_missing" : "consult_not_found");
} else {
  checkDevices();
}
