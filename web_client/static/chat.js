// @ts-check
/**
 * The consult's chat panel: a log of messages (the `join` result's history, then each
 * `chat_message`) and a form that sends `chat`. Messages are plain text, never markup.
 */
import { find } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{participant_id: string|null, name: string, text: string, at: string}} ChatMessage
 */

/** The chat panel of the consult view (`#chat-panel`). */
export class ChatPanel {
  /**
   * @param {HTMLElement} panel the `#chat-panel` element (holds `#chat-log` and `#chat-form`)
   * @param {{send: (text: string) => Promise<void>, ownId: () => string|undefined,
   *          onError: (err: unknown) => void}} handlers
   *   `send` sends one message (rejects with a coded error, reported to `onError`; the text
   *   stays in the input to try again); `ownId` is this participant's id
   */
  constructor(panel, { send, ownId, onError }) {
    this.log = find(panel, "#chat-log");
    this.empty = find(panel, "#chat-empty");
    this.form = find(panel, "#chat-form", HTMLFormElement);
    this.input = find(panel, "#chat-input", HTMLInputElement);
    this.sendButton = find(panel, "#chat-send", HTMLButtonElement);
    this.ownId = ownId;
    /** @type {ChatMessage[]} kept to redraw the names and times in another language */
    this.messages = [];
    this.form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (!text || this.sendButton.disabled) return;
      this.sendButton.disabled = true;
      try {
        await send(text);
        this.input.value = "";
      } catch (err) {
        onError(err);
      } finally {
        this.sendButton.disabled = false;
        this.input.focus();
      }
    });
  }

  /**
   * Replace the log with earlier messages (the `join` result's `chat`). Call it while the
   * panel is hidden so that the history is not read out as news.
   * @param {ChatMessage[]} messages oldest first
   */
  setHistory(messages) {
    this.messages = [];
    this.log.replaceChildren();
    for (const message of messages) this.add(message);
    this.#updateEmpty();
  }

  /**
   * Append one message; the log (role=log, polite) announces it.
   * @param {ChatMessage} message
   */
  add(message) {
    this.messages.push(message);
    this.log.append(this.#render(message));
    this.#updateEmpty();
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** Redraw the messages (after a language change). */
  refresh() {
    this.log.replaceChildren(...this.messages.map((message) => this.#render(message)));
  }

  /** Forget every message and empty the form (the consult ended for this page). */
  clear() {
    this.setHistory([]);
    this.input.value = "";
  }

  /**
   * @param {ChatMessage} message
   * @returns {HTMLElement}
   */
  #render(message) {
    const item = document.createElement("div");
    item.className = "chat-message";
    const own = message.participant_id !== null && message.participant_id === this.ownId();
    item.classList.toggle("chat-own", own);
    const author = document.createElement("span");
    author.className = "chat-author";
    author.textContent = own ? t("chat_you", { name: message.name }) : message.name;
    const time = document.createElement("time");
    time.className = "chat-time";
    time.dateTime = message.at;
    const at = new Date(message.at);
    time.textContent = Number.isNaN(at.getTime())
      ? ""
      : at.toLocaleTimeString(document.documentElement.lang || undefined, { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("p");
    text.className = "chat-text";
    text.textContent = message.text;
    item.append(author, " ", time, text);
    return item;
  }

  #updateEmpty() {
    this.empty.hidden = this.messages.length > 0;
  }
}
