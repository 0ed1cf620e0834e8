// @ts-check
/**
 * The consult page's DOM outside the video grid: views, the alert and status regions,
 * the device check, the controls, the host's waiting room and the end screen.
 */
import { byId } from "./dom.js";
import { DICTIONARIES, t } from "./i18n.js";

/** Elements the entry module wires events to. */
export const elements = {
  joinButton: byId("join-button", HTMLButtonElement),
  cameraSelect: byId("camera-select", HTMLSelectElement),
  microphoneSelect: byId("microphone-select", HTMLSelectElement),
  preview: byId("preview", HTMLVideoElement),
  videoGrid: byId("video-grid"),
  muteButton: byId("mute-button", HTMLButtonElement),
  cameraButton: byId("camera-button", HTMLButtonElement),
  switchCameraButton: byId("switch-camera-button", HTMLButtonElement),
  soundButton: byId("sound-button", HTMLButtonElement),
  mediaRetryButton: byId("media-retry-button", HTMLButtonElement),
  lobbyPreview: byId("lobby-preview", HTMLVideoElement),
  screenButton: byId("screen-button", HTMLButtonElement),
  audioOnlyButton: byId("audio-only-button", HTMLButtonElement),
  chatPanel: byId("chat-panel"),
  leaveButton: byId("leave-button", HTMLButtonElement),
  lobbyLeaveButton: byId("lobby-leave-button", HTMLButtonElement),
  endButton: byId("end-button", HTMLButtonElement),
  languageSelect: byId("language-select", HTMLSelectElement),
};

/** @type {Record<string, string>} the heading of each view, focused when it opens */
const HEADINGS = {
  join: "join-heading",
  lobby: "lobby-heading",
  consult: "consult-heading",
  ended: "ended-heading",
};

/**
 * Heading and text of the end screen, by why the consult ended for this participant.
 * @type {Record<string, [string, string]>}
 */
const END_TEXTS = {
  ended: ["ended_heading", "ended_body"],
  left: ["left_heading", "ended_body"],
  lost: ["lost_heading", "lost_body"],
  removed: ["removed_heading", "removed_body"],
};

/** @type {string|null} the code of the error shown, kept to retranslate it */
let shownErrorCode = null;
/**
 * The media notice shown (what is sent, why not more), kept to retranslate it.
 * @type {{mode: import("./devices.js").MediaMode, problem: import("./devices.js").MediaProblem|null}|null}
 */
let shownMedia = null;

/**
 * Show one view ("join" | "lobby" | "consult" | "ended"), record it in
 * `document.body.dataset.view`, and move focus to its heading so screen readers follow.
 * @param {string} view
 */
export function showView(view) {
  const changed = document.body.dataset.view !== view;
  document.body.dataset.view = view;
  for (const panel of document.querySelectorAll("[data-view-panel]")) {
    if (panel instanceof HTMLElement) panel.hidden = panel.dataset.viewPanel !== view;
  }
  if (changed) document.getElementById(HEADINGS[view])?.focus();
  if (view === "lobby") {
    // A live region announces changes, not content it was revealed with: fill it afterwards.
    const status = byId("lobby-status");
    status.textContent = "";
    setTimeout(() => {
      if (document.body.dataset.view === "lobby") status.textContent = t("lobby_waiting");
    }, 100);
  }
}

/**
 * Show a friendly, translated message for an error code in the alert region.
 * @param {string|null|undefined} code a protocol error code or a client one ("media_denied",
 *   "timeout", …); none shows the "unknown" message
 */
export function showError(code) {
  shownErrorCode = code || "unknown";
  renderError();
}

/** Empty the alert region. */
export function clearError() {
  shownErrorCode = null;
  renderError();
}

function renderError() {
  const alert = byId("alert");
  if (!shownErrorCode) {
    alert.textContent = "";
    delete alert.dataset.errorCode;
    return;
  }
  const code = shownErrorCode;
  const key = `error.${code}`;
  alert.dataset.errorCode = code;
  alert.textContent = key in DICTIONARIES.en ? t(key) : t("error.unknown", { code });
}

/**
 * Say what this participant sends when it is less than camera and microphone, and why (each
 * cause its own words), with a "Try again" button; hidden when both work.
 * @param {import("./devices.js").MediaMode} mode
 * @param {import("./devices.js").MediaProblem|null} problem why the camera and microphone
 *   could not both be opened
 */
export function showMediaNotice(mode, problem) {
  shownMedia = mode === "camera_and_microphone" ? null : { mode, problem };
  renderMediaNotice();
}

function renderMediaNotice() {
  const notice = byId("media-notice");
  const view = document.body.dataset.view;
  notice.hidden = !shownMedia || view === "ended";
  if (!shownMedia) {
    delete notice.dataset.mode;
    delete notice.dataset.problem;
    return;
  }
  const { mode, problem } = shownMedia;
  notice.dataset.mode = mode;
  notice.dataset.problem = problem ?? "";
  byId("media-notice-text").textContent = [t(`media_mode.${mode}`), problem ? t(`error.${problem}`) : ""]
    .filter(Boolean)
    .join(" ");
  // Without https no retry can succeed: the link itself must change.
  elements.mediaRetryButton.hidden = problem === "media_insecure";
}

/**
 * Show or hide the "Enable sound" button.
 * @param {boolean} shown
 */
export function showSoundButton(shown) {
  elements.soundButton.hidden = !shown;
}

/**
 * Say something to screen-reader users through the polite status region.
 * @param {string} key translation key
 * @param {Record<string, string|number>} [params]
 */
export function announce(key, params) {
  const announcer = byId("announcer");
  announcer.textContent = "";
  // Cleared first so that the same sentence twice is still announced twice.
  setTimeout(() => {
    announcer.textContent = t(key, params);
  }, 50);
}

/**
 * Fill the camera and microphone <select>s.
 * @param {{cameras: MediaDeviceInfo[], microphones: MediaDeviceInfo[]}} devices
 * @param {{cameraId?: string, microphoneId?: string}} selected deviceIds in use
 */
export function renderDeviceOptions(devices, selected) {
  fillDeviceSelect(elements.cameraSelect, devices.cameras, selected.cameraId, "camera_label");
  fillDeviceSelect(elements.microphoneSelect, devices.microphones, selected.microphoneId, "microphone_label");
}

/**
 * @param {HTMLSelectElement} select
 * @param {MediaDeviceInfo[]} devices
 * @param {string|undefined} selectedId
 * @param {string} kindKey
 */
function fillDeviceSelect(select, devices, selectedId, kindKey) {
  if (devices.length === 0) {
    select.replaceChildren(new Option(t("device_none"), ""));
    select.disabled = true;
    return;
  }
  select.disabled = false;
  select.replaceChildren(
    ...devices.map((device, index) => {
      const label = device.label || t("device_default", { kind: t(kindKey), index: index + 1 });
      return new Option(label, device.deviceId, false, device.deviceId === selectedId);
    }),
  );
}

/**
 * Show the microphone level.
 * @param {number} level 0–100
 */
export function setMicLevel(level) {
  const meter = byId("mic-level");
  meter.setAttribute("aria-valuenow", String(level));
  meter.style.setProperty("--level", `${level}%`);
}

/**
 * Render everything that depends on the consult state and on the language.
 * @param {object} model
 * @param {string} model.name the participant's display name
 * @param {boolean} model.joinDisabled no token, or the device check or the join is under way
 * @param {{title?: string}|null} model.consult
 * @param {{admit?: boolean, end?: boolean, publish?: boolean}|null} model.grants
 * @param {{microphone: boolean, camera: boolean}} model.muted
 * @param {{microphone: boolean, camera: boolean}} model.hasTrack whether a local track of each kind exists
 * @param {Array<{participant_id: string, name: string}>} model.waiting
 * @param {(participantId: string) => void} model.onAdmit
 * @param {"ended"|"left"|"lost"|"removed"|null} model.endedReason
 * @param {string|null} [model.endedBy] the host who removed this participant
 * @param {boolean} [model.sharing] whether the screen is being shared
 * @param {boolean} [model.canSwitchCamera] whether another camera (or the other side) can be chosen
 * @param {boolean} [model.audioOnly] whether this participant chose audio only
 */
export function render(model) {
  byId("join-greeting").textContent = model.name ? t("join_greeting", { name: model.name }) : "";
  elements.joinButton.disabled = model.joinDisabled;
  if (document.body.dataset.view === "lobby" && byId("lobby-status").textContent) {
    byId("lobby-status").textContent = t("lobby_waiting");
  }
  byId("consult-heading").textContent = model.consult?.title || t("consult_heading");

  elements.muteButton.textContent = t(model.muted.microphone ? "unmute" : "mute");
  elements.muteButton.disabled = !model.hasTrack.microphone;
  elements.cameraButton.textContent = t(model.muted.camera ? "camera_on" : "camera_off");
  elements.cameraButton.disabled = !model.hasTrack.camera;
  elements.switchCameraButton.hidden = !model.canSwitchCamera || !model.hasTrack.camera;
  // A toggle: its name stays, its pressed state says whether audio only is on.
  elements.audioOnlyButton.textContent = t("audio_only");
  elements.audioOnlyButton.setAttribute("aria-pressed", String(Boolean(model.audioOnly)));
  elements.endButton.hidden = !model.grants?.end;
  elements.screenButton.textContent = t(model.sharing ? "stop_sharing" : "share_screen");
  elements.screenButton.hidden = model.grants?.publish === false || !navigator.mediaDevices?.getDisplayMedia;

  byId("waiting-room").hidden = !model.grants?.admit;
  renderWaitingList(model.waiting, model.onAdmit);

  const [heading, body] = END_TEXTS[model.endedReason ?? "ended"] ?? END_TEXTS.ended;
  byId("ended-heading").textContent = t(heading, { by: model.endedBy ?? "" });
  byId("ended-body").textContent = t(body);
  renderError();
  renderMediaNotice();
}

/**
 * One "Admit <name>" button per waiting participant, updated in place (keyed by id) so
 * that keyboard focus survives updates; when the focused entry goes away, focus moves to
 * the next button or to the waiting room heading.
 * @param {Array<{participant_id: string, name: string}>} waiting
 * @param {(participantId: string) => void} onAdmit
 */
function renderWaitingList(waiting, onAdmit) {
  const list = byId("waiting-list");
  const wanted = new Set(waiting.map((p) => p.participant_id));
  let focusLost = false;
  for (const item of /** @type {HTMLElement[]} */ ([...list.children])) {
    if (!wanted.has(item.dataset.participantId ?? "")) {
      focusLost ||= item.contains(document.activeElement);
      item.remove();
    }
  }
  waiting.forEach((participant, index) => {
    /** @type {HTMLLIElement|null} */
    let item = list.querySelector(`li[data-participant-id="${CSS.escape(participant.participant_id)}"]`);
    const button = item?.querySelector("button") ?? document.createElement("button");
    if (!item) {
      const li = document.createElement("li");
      li.dataset.participantId = participant.participant_id;
      button.type = "button";
      button.className = "button primary";
      button.addEventListener("click", () => onAdmit(li.dataset.participantId ?? ""));
      li.append(button);
      item = li;
    }
    // Moved only when out of the server's order: moving a node would drop its focus.
    if (list.children[index] !== item) list.insertBefore(item, list.children[index] ?? null);
    button.textContent = t("admit", { name: participant.name });
  });
  byId("waiting-none").hidden = waiting.length > 0;
  if (focusLost) (list.querySelector("button") ?? byId("waiting-heading", HTMLElement)).focus();
}
