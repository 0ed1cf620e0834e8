// @ts-check
/**
 * The consult page's recording controls: an indicator everyone sees while the consult is
 * recorded, the host's "Start recording" / "Stop recording" (with a verbal-consent dialog
 * when the patient has not agreed in their page), and the patient's consent button.
 * Mounted once the `join` result is known, in the lobby view for a waiting patient (the host
 * often asks for consent while admitting) and moved into the consult view on admission;
 * follows the server's `recording_state` events.
 */
import { byId } from "./dom.js";
import { onLanguageChange, t } from "./i18n.js";

/**
 * The consult's recording as the server describes it (`recording_state`).
 * @typedef {{recording?: boolean, by?: string|null, consent?: {given?: boolean, withdrawn?: boolean}}} RecordingState
 */
/**
 * What the controls need of the `join` result.
 * @typedef {{status: string, participant?: {role?: string}, grants?: {record?: boolean},
 *            participants?: Array<{role?: string}>, recording?: RecordingState}} Joined
 */

/**
 * Build the controls at the top of the current view and keep them in step with the server.
 * @param {Pick<import("./signaling.js").Signaling, "request"|"on">} signaling the joined connection
 * @param {Joined} joined the `join` result
 */
export function mountRecordingControls(signaling, joined) {
  const isHost = Boolean(joined.grants?.record);
  const isPatient = joined.participant?.role === "patient";
  /** @type {RecordingState} */
  let state = joined.recording ?? { recording: false, consent: { given: false } };

  const bar = document.createElement("div");
  bar.id = "recording-bar";
  bar.className = "recording-bar";

  const indicator = document.createElement("p");
  indicator.id = "recording-indicator";
  indicator.className = "recording-indicator";
  indicator.setAttribute("role", "status");

  const consentStatus = document.createElement("p");
  consentStatus.id = "recording-consent-status";

  const recordButton = document.createElement("button");
  recordButton.id = "record-button";
  recordButton.type = "button";
  recordButton.className = "button";
  recordButton.hidden = !isHost;

  const consentButton = document.createElement("button");
  consentButton.id = "consent-button";
  consentButton.type = "button";
  consentButton.className = "button primary";
  consentButton.hidden = !isPatient;

  const dialog = buildAttestDialog();
  bar.append(indicator, consentStatus, recordButton, consentButton, dialog.element);
  /**
   * Show the controls under the heading of a view (`view-lobby` or `view-consult`).
   * @param {string} viewId
   */
  function place(viewId) {
    const view = byId(viewId);
    view.insertBefore(bar, view.querySelector("h1")?.nextSibling ?? view.firstChild);
  }
  place(joined.status === "lobby" ? "view-lobby" : "view-consult");
  signaling.on("admitted", () => place("view-consult"));

  function render() {
    bar.dataset.recording = String(Boolean(state.recording));
    indicator.hidden = !state.recording;
    const by = state.by ? ` ${t("rec_indicator_by", { name: state.by })}` : "";
    indicator.textContent = state.recording
      ? `● ${t("rec_indicator")} — ${t("rec_indicator_detail")}${by}`
      : "";
    recordButton.textContent = t(state.recording ? "rec_stop" : "rec_start");
    const given = Boolean(state.consent?.given);
    consentButton.textContent = t(given ? "rec_consent_withdraw" : "rec_consent");
    consentButton.dataset.agreed = String(given);
    if (isPatient && given) consentStatus.textContent = t("rec_consent_given");
    else if (isHost && given) consentStatus.textContent = t("rec_consent_of_patient");
    else consentStatus.textContent = "";
    dialog.render();
  }

  /**
   * @param {string} event
   * @param {object} payload
   * @returns {Promise<boolean>} whether the server accepted it (else the error is shown)
   */
  async function request(event, payload) {
    try {
      state = await signaling.request(event, payload);
      render();
      return true;
    } catch (err) {
      showError(String(/** @type {{code?: string}} */ (err).code));
      return false;
    }
  }

  recordButton.addEventListener("click", async () => {
    if (state.recording) {
      await request("stop_recording", {});
    } else if (state.consent?.given || state.consent?.withdrawn || !dialog.needed(joined)) {
      // A withdrawal cannot be attested over: the server refuses, and the page says why.
      await request("start_recording", {});
    } else {
      dialog.open(async (reason) =>
        request("start_recording", { attested_consent: { reason } }),
      );
    }
  });
  consentButton.addEventListener("click", () =>
    request("recording_consent", { agree: !state.consent?.given }),
  );

  signaling.on("recording_state", (next) => {
    const was = Boolean(state.recording);
    state = next;
    render();
    if (was !== Boolean(next.recording)) announce(next.recording ? "announce_rec_started" : "announce_rec_stopped");
  });
  onLanguageChange(render);
  render();
}

/** @param {string} code */
function showError(code) {
  const alert = byId("alert");
  alert.dataset.errorCode = code;
  const key = `error.${code}`;
  const text = t(key);
  alert.textContent = text === key ? t("error.unknown", { code }) : text;
}

/** @param {string} key */
function announce(key) {
  const announcer = byId("announcer");
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = t(key);
  }, 50);
}

/** The host's dialog to attest the patient's verbal consent, with a reason. */
function buildAttestDialog() {
  const element = document.createElement("dialog");
  element.id = "consent-dialog";
  element.className = "remove-dialog";
  element.setAttribute("aria-labelledby", "consent-dialog-heading");
  const heading = document.createElement("h2");
  heading.id = "consent-dialog-heading";
  const intro = document.createElement("p");
  const form = document.createElement("form");
  form.method = "dialog";
  const label = document.createElement("label");
  label.htmlFor = "consent-reason";
  const reason = document.createElement("textarea");
  reason.id = "consent-reason";
  reason.required = true;
  reason.minLength = 3;
  reason.maxLength = 500;
  reason.rows = 3;
  const buttons = document.createElement("div");
  buttons.className = "dialog-buttons";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "button";
  const confirm = document.createElement("button");
  confirm.type = "submit";
  confirm.className = "button primary";
  confirm.id = "consent-confirm";
  buttons.append(cancel, confirm);
  form.append(label, reason, buttons);
  element.append(heading, intro, form);

  /** @type {((reason: string) => Promise<boolean>)|null} */
  let onConfirm = null;
  cancel.addEventListener("click", () => element.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!reason.reportValidity()) return;
    if (await onConfirm?.(reason.value.trim())) {
      reason.value = "";
      element.close();
    }
  });

  return {
    element,
    render() {
      heading.textContent = t("rec_attest_heading");
      intro.textContent = t("rec_attest_intro");
      label.textContent = t("rec_attest_reason");
      cancel.textContent = t("rec_attest_cancel");
      confirm.textContent = t("rec_attest_confirm");
    },
    /**
     * Consent is asked only when the consult has a patient.
     * @param {Joined} joined
     */
    needed(joined) {
      return (joined.participants ?? []).some((p) => p.role === "patient");
    },
    /** @param {(reason: string) => Promise<boolean>} handler */
    open(handler) {
      onConfirm = handler;
      element.showModal();
      reason.focus();
    },
  };
}
