/**
 * Entry of the consult page (/join/{consult_id}?token=JWT): device check, join, lobby,
 * consult, end. Wires the signaling connection, the two peer connections and the DOM.
 */
import { mountLanguageSwitch, onLanguageChange, translateDocument } from "./i18n.js";
import { decodeJwtPayload, readConsultId, takeToken } from "./session.js";
import { Signaling } from "./signaling.js";
import { Publisher } from "./publisher.js";
import { Subscriber } from "./subscriber.js";
import { listDevices, openLocalMedia, startLevelMeter, stopStream } from "./devices.js";
import { VideoGrid } from "./tiles.js";
import { ChatPanel } from "./chat.js";
import { HostControls } from "./host-controls.js";
import { ScreenShare } from "./screen-share.js";
import { SpeakingDetector } from "./speaking.js";
import * as ui from "./ui.js";
import { mountRecordingControls } from "./recording-controls.js";
import { mountClinicalPanel } from "./clinical-panel.js";

const consultId = readConsultId();
const token = consultId ? takeToken(consultId) : null;
const claims = token ? decodeJwtPayload(token) : null;

const state = {
  /** "join" | "lobby" | "consult" | "ended" */
  view: "join",
  consultId,
  /** Display name: from the token until the server's Participant replaces it. */
  name: String(claims?.name ?? claims?.sub ?? ""),
  /** @type {object|null} this participant, as the server describes it */
  participant: null,
  /** @type {object|null} */
  consult: null,
  /** @type {object|null} */
  grants: null,
  /** @type {RTCIceServer[]} */
  iceServers: [],
  /** @type {Map<string, object>} everyone the server told us about, by participant_id */
  participants: new Map(),
  /** @type {object[]} participants waiting in the lobby (hosts only) */
  waiting: [],
  muted: { microphone: false, camera: false },
  /** @type {"ended"|"left"|"lost"|"removed"|null} */
  endedReason: null,
  /** @type {string|null} the host who removed this participant */
  endedBy: null,
};

/** @type {Signaling|null} */
let signaling = null;
/** @type {Publisher|null} */
let publisher = null;
/** @type {Subscriber|null} */
let subscriber = null;
/** @type {MediaStream} */
let localStream = new MediaStream();
let stopMeter = () => {};
/** Counts device opens so that a slow, superseded one does not win. */
let mediaRequest = 0;
/** Joining waits for the device check (it publishes what the check opened) and for itself. */
let checkingDevices = false;
let joining = false;

const hostControls = new HostControls({
  canModerate: () => Boolean(state.grants?.moderate) && state.view === "consult",
  onMute: (participantId) => moderate("mute_participant", { participant_id: participantId, source: "microphone" }),
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
  publisher: ensurePublisher,
  onChange: (sharing) => {
    ui.announce(sharing ? "announce_screen_started" : "announce_screen_stopped");
    render();
  },
});
const chat = new ChatPanel(ui.elements.chatPanel, {
  send: (text) => signaling.request("chat", { text }),
  ownId: () => state.participant?.participant_id,
  onError: (err) => ui.showError(err.code),
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
      return publisher?.pc ?? null;
    },
    get subscriberPc() {
      return subscriber?.pc ?? null;
    },
    get socket() {
      return signaling?.socket ?? null;
    },
  }),
});

function render() {
  ui.render({
    name: state.name,
    joinDisabled: !token || checkingDevices || joining,
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

function setView(view) {
  state.view = view;
  ui.showView(view);
  render();
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
    if (request === mediaRequest) ui.showError(err.code);
  }
  if (request !== mediaRequest) {
    stopStream(stream);
    return;
  }
  localStream = stream;
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

// ---------------------------------------------------------------- joining

async function join() {
  if (joining || checkingDevices) return;
  joining = true;
  ui.clearError();
  ui.announce("joining");
  render();
  let result;
  let markJoined;
  try {
    signaling = await Signaling.connect(token);
    markJoined = listen(signaling);
    result = await signaling.request("join", { consult_id: consultId });
  } catch (err) {
    signaling?.close();
    signaling = null;
    joining = false;
    ui.showError(err.code);
    render();
    return;
  }
  joining = false;
  state.participant = result.participant;
  state.name = result.participant.name;
  state.consult = result.consult;
  state.grants = result.grants;
  mountRecordingControls(signaling, result);
  state.iceServers = result.ice_servers ?? [];
  setParticipants(result.participants ?? []);
  state.waiting = (result.participants ?? []).filter((p) => p.status === "waiting");
  chat.setHistory(result.chat ?? []);
  subscriber = new Subscriber(signaling, state.iceServers, {
    onPlace: (placement) => {
      grid.addTrack(placement);
      if (placement.source === "microphone") speaking.watch(placement.participantId, placement.track);
    },
    onRemove: (placement) => {
      speaking.unwatch(placement.track);
      grid.removeTrack(placement);
    },
    onError: (err) => ui.showError(err.code ?? "invalid_sdp"),
    onFailed: () => ui.showError("media_failed"),
  });
  markJoined();
  stopMeter();
  ui.setMicLevel(0);
  if (result.status === "lobby") {
    setView("lobby");
  } else {
    await enterConsult();
  }
}

/**
 * Handle the server's events on `connection`. Returns the function to call once the
 * `join` result is applied: consult events wait for it (they build on its snapshot of the
 * participants, subscriber offers need its ICE servers), and keep their order.
 */
function listen(connection) {
  let markJoined;
  const joined = new Promise((resolve) => {
    markJoined = resolve;
  });
  const afterJoin = (handler) => async (payload) => {
    await joined;
    handler(payload);
  };

  connection.on("lobby", afterJoin(({ waiting }) => {
    const before = new Set(state.waiting.map((p) => p.participant_id));
    state.waiting = waiting ?? [];
    for (const p of state.waiting) {
      if (state.grants?.admit && !before.has(p.participant_id)) {
        ui.announce("announce_waiting", { name: p.name });
      }
    }
    render();
  }));

  connection.on("admitted", afterJoin(({ consult, participants }) => {
    state.consult = consult ?? state.consult;
    setParticipants(participants ?? []);
    ui.announce("announce_admitted");
    enterConsult();
  }));

  connection.on("participant_joined", afterJoin((participant) => {
    updateParticipant(participant);
    if (participant.participant_id !== state.participant.participant_id) {
      ui.announce("announce_joined", { name: participant.name });
    }
  }));

  connection.on("participant_updated", afterJoin(updateParticipant));

  connection.on("participant_left", afterJoin(({ participant_id: id }) => {
    const participant = state.participants.get(id);
    state.participants.delete(id);
    hostControls.forget(id);
    grid.removeParticipant(id);
    if (participant && id !== state.participant.participant_id) {
      ui.announce("announce_left", { name: participant.name });
    }
  }));

  connection.on("subscriber_offer", afterJoin((offer) => subscriber.handleOffer(offer)));

  connection.on("chat_message", afterJoin((message) => chat.add(message)));

  connection.on("muted_by_host", afterJoin(({ source, by }) => {
    if (source === "screen") {
      screenShare.stop().catch((err) => ui.showError(err.code));
    } else if (!state.muted[source]) {
      applyMute(source, true);
    }
    ui.announce(`announce_muted_by_host.${source}`, { by });
  }));

  // Sent just before the server disconnects us: the disconnect then finds the view ended.
  connection.on("removed", ({ by }) => {
    state.endedBy = by;
    finish("removed");
  });

  connection.on("consult_ended", () => finish("ended"));

  connection.on("disconnect", (reason) => {
    if (reason !== "io client disconnect" && state.view !== "ended") {
      ui.showError("connection_lost");
      finish("lost");
    }
  });

  return markJoined;
}

function setParticipants(participants) {
  state.participants = new Map(participants.map((p) => [p.participant_id, p]));
  const me = state.participants.get(state.participant?.participant_id);
  if (me) state.participant = me;
  for (const participant of participants) syncTile(participant);
}

function updateParticipant(participant) {
  state.participants.set(participant.participant_id, participant);
  if (participant.participant_id === state.participant?.participant_id) {
    state.participant = participant;
    // A moderator may have muted us: follow the server's state without echoing it back.
    for (const source of ["microphone", "camera"]) {
      if (participant.muted && participant.muted[source] !== state.muted[source]) {
        applyMute(source, participant.muted[source]);
      }
    }
  }
  syncTile(participant);
  render();
}

/** Joined participants other than us have a tile; everyone else has none. */
function syncTile(participant) {
  const id = participant.participant_id;
  if (id === state.participant?.participant_id) return;
  if (participant.status === "joined") {
    grid.showParticipant(id);
  } else {
    grid.removeParticipant(id);
  }
}

/**
 * The publisher connection, created on first use (a participant without camera and
 * microphone creates it when sharing the screen); null without grants.publish.
 * @returns {Publisher|null}
 */
function ensurePublisher() {
  if (!publisher && signaling && state.grants?.publish !== false && state.view === "consult") {
    publisher = new Publisher(signaling, state.iceServers, {
      onFailed: () => ui.showError("media_failed"),
    });
  }
  return publisher;
}

async function enterConsult() {
  if (state.view === "consult" || state.view === "ended") return;
  grid.setLocal(localStream, state.participant, state.muted);
  setView("consult");
  mountClinicalPanel(document.getElementById("clinical-panel"), {
    consultId, token, role: state.participant?.role, isHost: state.participant?.is_host,
  });
  if (localStream.getTracks().length === 0 || state.grants?.publish === false) return;
  ensurePublisher();
  try {
    await publisher.publish(localStream);
  } catch (err) {
    if (state.view !== "ended") ui.showError(err.code ?? "invalid_sdp");
  }
}

// ---------------------------------------------------------------- in the consult

function applyMute(source, muted) {
  state.muted[source] = muted;
  const tracks = source === "microphone" ? localStream.getAudioTracks() : localStream.getVideoTracks();
  for (const track of tracks) track.enabled = !muted;
  grid.setLocal(localStream, state.participant, state.muted);
  render();
}

async function toggleMute(source) {
  const muted = !state.muted[source];
  applyMute(source, muted);
  if (source === "microphone") ui.announce(muted ? "announce_mic_muted" : "announce_mic_on");
  else ui.announce(muted ? "announce_camera_off" : "announce_camera_on");
  try {
    await signaling.request("mute", { source, muted });
  } catch (err) {
    ui.showError(err.code);
  }
}

async function toggleScreenShare() {
  try {
    if (screenShare.sharing) await screenShare.stop();
    else await screenShare.start();
  } catch (err) {
    if (state.view !== "ended") ui.showError(err.code ?? "invalid_sdp");
  }
}

/**
 * Send a host's request about another participant.
 * @returns {Promise<boolean>} whether the server accepted it (else the error is shown)
 */
async function moderate(event, payload) {
  try {
    await signaling.request(event, payload);
    return true;
  } catch (err) {
    ui.showError(err.code);
    return false;
  }
}

async function admit(participantId) {
  try {
    await signaling.request("admit", { participant_id: participantId });
  } catch (err) {
    ui.showError(err.code);
  }
}

async function leave() {
  try {
    await signaling?.request("leave");
  } catch {
    // Leaving goes on locally whatever the server says: the media stops here anyway.
  }
  finish("left");
}

async function endConsult() {
  try {
    await signaling.request("end");
  } catch (err) {
    ui.showError(err.code);
    return;
  }
  finish("ended");
}

/**
 * Stop everything: both peer connections, every local track, the connection.
 * The closed peer connections stay reachable through `window.teleconsult` for tests.
 * @param {"ended"|"left"|"lost"|"removed"} reason
 */
function finish(reason) {
  if (state.view === "ended") return;
  state.endedReason = reason;
  stopMeter();
  hostControls.cancel();
  screenShare.close();
  speaking.close();
  chat.clear();
  publisher?.close();
  subscriber?.close();
  stopStream(localStream);
  ui.elements.preview.srcObject = null;
  grid.clear();
  state.waiting = [];
  setView("ended");
  signaling?.close();
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
ui.elements.leaveButton.addEventListener("click", leave);
ui.elements.lobbyLeaveButton.addEventListener("click", leave);
ui.elements.endButton.addEventListener("click", endConsult);

ui.showView("join");
render();
if (!consultId || !token) {
  ui.showError(consultId ? "token_missing" : "consult_not_found");
} else {
  checkDevices();
}
