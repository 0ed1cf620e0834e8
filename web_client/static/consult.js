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
import { listDevices, openLocalMedia, startLevelMeter, stopStream } from "./devices.js";
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

/** @type {Signaling|null} the connection of the latest join (kept after it closed, for tests) */
let signaling = null;
const session = new ConsultSession({
  consultId,
  token,
  name: String(claims?.name ?? claims?.sub ?? ""),
  connect: async (jwt, resumeToken) => {
    signaling = null;
    signaling = await Signaling.connect(jwt, resumeToken);
    return signaling;
  },
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

// Read-only handle for tests (getStats on the peer connections, the view, the socket).
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
  });
  grid.refresh();
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
  let stream;
  try {
    stream = await openLocalMedia(choice);
  } catch (err) {
    stream = new MediaStream();
    if (request === mediaRequest) ui.showError(codeOf(err));
  }
  if (request !== mediaRequest) {
    stopStream(stream);
    return;
  }
  localStream = stream;
  session.setLocalStream(stream);
  ui.elements.preview.srcObject = stream;
  stopMeter = startLevelMeter(stream, ui.setMicLevel);
  await refreshDeviceList();
  checkingDevices = false;
  render();
}

/** List the cameras and microphones, the ones in use selected. */
async function refreshDeviceList() {
  const [audio] = localStream.getAudioTracks();
  const [video] = localStream.getVideoTracks();
  ui.renderDeviceOptions(await listDevices(), {
    cameraId: video?.getSettings().deviceId,
    microphoneId: audio?.getSettings().deviceId,
  });
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
  ui.clearError();
  ui.announce("joining");
  await session.join();
}

session.on("change", render);

session.on("error", (code) => ui.showError(code));

session.on("joined", (result) => {
  if (signaling) mountRecordingControls(signaling, result);
  chat.setHistory(result.chat ?? []);
  stopMeter();
  ui.setMicLevel(0);
});

session.on("view", (view) => {
  if (view === "consult") grid.setLocal(localStream, /** @type {Participant} */ (state.participant), state.muted);
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

session.on("admitted", () => ui.announce("announce_admitted"));

session.on("reconnected", () => ui.clearError());

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

// The page's part of ending: the session then closes the peer connections and the socket.
session.on("ending", () => {
  stopMeter();
  hostControls.cancel();
  screenShare.close();
  speaking.close();
  chat.clear();
  stopStream(localStream);
  ui.elements.preview.srcObject = null;
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
ui.elements.screenButton.addEventListener("click", toggleScreenShare);
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
