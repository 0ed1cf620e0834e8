// @ts-check
/**
 * Host controls on each remote camera tile (hosts only, grants.moderate): "Mute <name>"
 * mutes their microphone (`mute_participant`), "Remove <name>" asks for confirmation in a
 * modal dialog, then removes them (`remove_participant`).
 */
import { find } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{participant_id: string, name: string, is_host?: boolean,
 *            muted?: {microphone: boolean, camera: boolean}}} Participant
 */

/** Adds and updates the host's buttons on the tiles, and owns the removal dialog. */
export class HostControls {
  /**
   * @param {{canModerate: () => boolean, onMute: (participantId: string) => Promise<void>,
   *          onRemove: (participantId: string) => Promise<void>}} handlers
   *   `canModerate` tells whether this participant has grants.moderate; `onMute` and
   *   `onRemove` send the requests
   */
  constructor({ canModerate, onMute, onRemove }) {
    this.canModerate = canModerate;
    this.onMute = onMute;
    this.onRemove = onRemove;
    /** @type {{participantId: string, name: string, opener: HTMLElement}|null} */
    this.pending = null;
    this.dialog = this.#createDialog();
  }

  /**
   * Give a remote camera tile its host buttons (or none, for non-hosts and unknown people).
   * Called by the video grid after each relabel, so names, language and mute state follow.
   * @param {HTMLElement} figure the tile
   * @param {Participant|undefined} participant whom it shows
   */
  decorate(figure, participant) {
    /** @type {HTMLElement|null} */
    let actions = figure.querySelector(":scope > .tile-actions");
    if (!participant || !this.canModerate()) {
      actions?.remove();
      return;
    }
    if (!actions) {
      actions = document.createElement("div");
      actions.className = "tile-actions";
      actions.setAttribute("role", "group");
      actions.append(this.#button("mute"), this.#button("remove"));
      figure.append(actions);
    }
    actions.dataset.participantId = participant.participant_id;
    actions.setAttribute("aria-label", t("host_controls_label", { name: participant.name }));
    const mute = find(actions, "[data-action=mute]", HTMLButtonElement);
    mute.textContent = t("mute_participant", { name: participant.name });
    // A host can mute, not unmute: only the participant turns their microphone back on.
    mute.disabled = Boolean(participant.muted?.microphone);
    const remove = find(actions, "[data-action=remove]", HTMLButtonElement);
    remove.textContent = t("remove_participant", { name: participant.name });
    remove.dataset.name = participant.name;
    // Hosts cannot be removed (the server refuses it).
    remove.hidden = Boolean(participant.is_host);
  }

  /** Close the dialog if it is open (the consult ended, or the person left). */
  cancel() {
    if (this.dialog.open) this.dialog.close();
  }

  /**
   * The participant left or was removed: a dialog about them has nothing left to confirm.
   * @param {string} participantId
   */
  forget(participantId) {
    if (this.pending?.participantId === participantId) this.cancel();
  }

  /**
   * @param {"mute"|"remove"} action
   * @returns {HTMLButtonElement}
   */
  #button(action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `button tile-action${action === "remove" ? " danger" : ""}`;
    button.dataset.action = action;
    button.addEventListener("click", () => {
      const participantId = button.parentElement?.dataset.participantId ?? "";
      if (action === "mute") this.onMute(participantId);
      else this.#confirmRemoval(participantId, button.dataset.name ?? "", button);
    });
    return button;
  }

  #createDialog() {
    const dialog = document.createElement("dialog");
    dialog.id = "remove-dialog";
    dialog.className = "remove-dialog";
    dialog.setAttribute("aria-labelledby", "remove-dialog-heading");
    dialog.setAttribute("aria-describedby", "remove-dialog-body");
    const heading = document.createElement("h2");
    heading.id = "remove-dialog-heading";
    const body = document.createElement("p");
    body.id = "remove-dialog-body";
    const confirm = document.createElement("button");
    confirm.type = "button";
    confirm.className = "button danger";
    confirm.dataset.action = "confirm-remove";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "button";
    cancel.dataset.action = "cancel-remove";
    // Cancel first and focused first: the harmless choice is the default.
    cancel.autofocus = true;
    const buttons = document.createElement("div");
    buttons.className = "dialog-buttons";
    buttons.append(cancel, confirm);
    dialog.append(heading, body, buttons);
    cancel.addEventListener("click", () => dialog.close());
    confirm.addEventListener("click", () => {
      const pending = this.pending;
      dialog.close();
      if (pending) this.onRemove(pending.participantId);
    });
    dialog.addEventListener("close", () => {
      const opener = this.pending?.opener;
      this.pending = null;
      // Back to where the host was, if that button is still there.
      if (opener?.isConnected) opener.focus();
    });
    find(document, "main").append(dialog);
    return dialog;
  }

  /**
   * @param {string} participantId
   * @param {string} name
   * @param {HTMLElement} opener the button that asked, focused again when the dialog closes
   */
  #confirmRemoval(participantId, name, opener) {
    this.pending = { participantId, name, opener };
    find(this.dialog, "#remove-dialog-heading").textContent = t("remove_dialog_heading", { name });
    find(this.dialog, "#remove-dialog-body").textContent = t("remove_dialog_body");
    find(this.dialog, "[data-action=confirm-remove]").textContent = t("remove_confirm");
    find(this.dialog, "[data-action=cancel-remove]").textContent = t("cancel");
    this.dialog.showModal();
  }
}
