// @ts-check
/**
 * Entry of the quality review page (/review#token=JWT): list recordings with filters, play
 * one beside its consult's timeline (click to seek), score it against the hospital's rubric
 * and pin comments to the player's current time. Every request is audited by the server.
 */
import { byId } from "./dom.js";
import { mountLanguageSwitch, onLanguageChange, t, translateDocument } from "./i18n.js";
import { linkExpiresAt, refreshDelayMs } from "./playback-links.js";
import { api as rest } from "./rest.js";
import { takeToken } from "./session.js";

/**
 * A recording as `GET /api/recordings/{id}` describes it (the fields this page reads).
 * @typedef {{id: string, title: string, may_review: boolean,
 *            rendition: {status: string, progress: number, file?: string|null},
 *            manifest: {tracks: Track[]}, links: Record<string, string>}} Recording
 * @typedef {{name: string, kind: string, source: string, codec: string, frames?: number,
 *            duration?: number|null, sha256?: string|null}} Track
 */

/**
 * The code of a failed request.
 * @param {unknown} err
 * @returns {string|undefined}
 */
const codeOf = (err) => /** @type {{code?: string}} */ (err).code;

/**
 * A time offset as m:ss (or -m:ss before the recording started).
 * @param {number} seconds
 */
export function formatOffset(seconds) {
  const sign = seconds < 0 ? "-" : "";
  const total = Math.floor(Math.abs(seconds));
  return `${sign}${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

const token = takeToken("review");
const player = byId("player", HTMLVideoElement);

/** @type {Recording|null} the recording open in the player */
let current = null;
/** @type {ReturnType<typeof setInterval>|undefined} */
let progressTimer;
/** @type {ReturnType<typeof setTimeout>|undefined} fetches fresh playback links before these expire */
let linksTimer;
/** @type {string|null|undefined} */
let lastError = null;

/** @param {string|null|undefined} code */
function showError(code) {
  lastError = code;
  const alert = byId("alert");
  if (!code) {
    alert.textContent = "";
    delete alert.dataset.errorCode;
    return;
  }
  alert.dataset.errorCode = code;
  const key = `error.${code}`;
  const text = t(key);
  alert.textContent = text === key ? t("error.unknown", { code }) : text;
}

/**
 * @param {string} key
 * @param {Record<string, string|number>} [params]
 */
function announce(key, params) {
  const announcer = byId("announcer");
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = t(key, params);
  }, 50);
}

/**
 * @param {string} path
 * @param {{method?: string, body?: unknown}} [options]
 * @returns {Promise<any>}
 */
const api = (path, options = {}) => rest(token, options.method ?? "GET", path, options.body);

async function loadList() {
  const form = new FormData(byId("filters", HTMLFormElement));
  const query = new URLSearchParams();
  for (const [name, entry] of form.entries()) {
    // The filters are text and date inputs: no files.
    const value = String(entry);
    if (!value) continue;
    query.set(name, name === "from" || name === "to" ? new Date(`${value}T00:00:00`).toISOString() : value);
  }
  try {
    const { recordings } = await api(`/api/recordings?${query}`);
    renderList(recordings);
    showError(null);
  } catch (err) {
    showError(codeOf(err));
  }
}

/**
 * @param {Array<{id: string, status: string, title: string, started_at: string,
 *                doctor: {name: string}}>} recordings
 */
function renderList(recordings) {
  const list = byId("recordings");
  list.replaceChildren(
    ...recordings.map((recording) => {
      const item = document.createElement("li");
      item.dataset.recordingId = recording.id;
      item.dataset.status = recording.status;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = t("review_open", {
        title: recording.title,
        date: new Date(recording.started_at).toLocaleString(),
        doctor: recording.doctor.name,
      });
      button.disabled = recording.status === "deleted" || recording.status === "recording";
      button.addEventListener("click", () => openRecording(recording.id));
      const status = document.createElement("span");
      status.className = "badge";
      status.textContent = recording.status;
      item.append(button, " ", status);
      return item;
    }),
  );
  byId("recordings-none").hidden = recordings.length > 0;
}

/** @param {string} id */
async function openRecording(id) {
  /** @type {Recording} */
  let recording;
  try {
    recording = current = await api(`/api/recordings/${encodeURIComponent(id)}`);
  } catch (err) {
    showError(codeOf(err));
    return;
  }
  showError(null);
  byId("recording").hidden = false;
  byId("player-heading").textContent = recording.title;
  byId("recording").dataset.recordingId = recording.id;
  setPlayerSource();
  renderTracks();
  renderRendition();
  watchRendition();
  scheduleLinkRefresh();
  byId("score-form").hidden = !recording.may_review;
  byId("comment-form").hidden = !recording.may_review;
  await Promise.all([loadTimeline(), loadScores(), loadComments()]);
  byId("player-heading").focus();
}

/** The review file once it is ready; until then the first camera track (no sound). */
function setPlayerSource() {
  if (!current) return;
  const rendition = current.rendition.status === "ready" ? current.rendition.file : null;
  const camera = current.manifest.tracks.find((track) => track.kind === "video" && track.frames);
  const name = rendition ?? camera?.name ?? current.manifest.tracks[0]?.name;
  if (!name) return;
  const time = player.currentTime;
  const playing = !player.paused && !player.ended;
  player.src = current.links[name];
  player.dataset.file = name;
  if (time) player.currentTime = time;
  if (playing) player.play().catch(() => {});
}

/** Fetch fresh playback links shortly before the current ones expire. */
function scheduleLinkRefresh() {
  clearTimeout(linksTimer);
  const delay = current ? refreshDelayMs(current.links, Date.now()) : null;
  if (delay !== null) linksTimer = setTimeout(refreshLinks, delay);
}

/**
 * Swap in fresh playback links (the player keeps its position and whether it plays), then
 * schedule the next refresh.
 */
async function refreshLinks() {
  const id = current?.id;
  if (!id) return;
  /** @type {Recording} */
  let recording;
  try {
    recording = await api(`/api/recordings/${encodeURIComponent(id)}`);
  } catch (err) {
    showError(codeOf(err));
    return;
  }
  if (current?.id !== id) return;
  current = recording;
  setPlayerSource();
  renderTracks();
  renderRendition();
  scheduleLinkRefresh();
}

function renderTracks() {
  const recording = current;
  if (!recording) return;
  byId("tracks").replaceChildren(
    ...recording.manifest.tracks.map((track) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `${recording.links[track.name]}&download=1`;
      link.textContent = `${track.source} (${track.codec}, ${track.duration ?? "?"} s)`;
      item.append(link, ` SHA-256 ${track.sha256 ?? "—"}`);
      return item;
    }),
  );
}

function renderRendition() {
  if (!current) return;
  const { status, progress } = current.rendition;
  byId("rendition-status").textContent = t("review_rendition", {
    status: t(`rendition_${status}`),
    progress,
  });
  byId("rendition-progress", HTMLProgressElement).value = progress;
  byId("rendition-progress").dataset.status = status;
}

function watchRendition() {
  clearInterval(progressTimer);
  if (!current || !["pending", "running"].includes(current.rendition.status)) return;
  const id = current.id;
  progressTimer = setInterval(async () => {
    if (current?.id !== id) return clearInterval(progressTimer);
    /** @type {Recording} */
    let recording;
    try {
      recording = current = await api(`/api/recordings/${encodeURIComponent(id)}`);
    } catch (err) {
      clearInterval(progressTimer);
      showError(codeOf(err));
      return;
    }
    renderRendition();
    if (recording.rendition.status === "ready") {
      setPlayerSource();
      clearInterval(progressTimer);
    } else if (recording.rendition.status === "failed") {
      clearInterval(progressTimer);
    }
  }, 1000);
}

/**
 * @param {number} offset seconds into the recording
 * @param {string} label
 */
function seekButton(offset, label) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link-button";
  button.textContent = label;
  button.dataset.offset = String(offset);
  button.addEventListener("click", () => {
    player.currentTime = Math.max(0, offset);
    player.focus();
  });
  return button;
}

/** @returns {string} the open recording's id, for its sub-resources */
const currentId = () => encodeURIComponent(current?.id ?? "");

/**
 * What happened, as the timeline lists it; a reconnect says how long the participant was away
 * (the gap in their media).
 * @param {{kind: string, detail?: {away_seconds?: number}}} event
 * @returns {string}
 */
function describeEvent(event) {
  const what = event.kind.replaceAll("_", " ");
  const away = event.detail?.away_seconds;
  return typeof away === "number" ? `${what} (${t("review_away", { seconds: String(away) })})` : what;
}

async function loadTimeline() {
  /** @type {{events: Array<{kind: string, offset: number, actor: {name: string}, detail?: {away_seconds?: number}}>}} */
  const { events } = await api(`/api/recordings/${currentId()}/timeline`);
  byId("timeline").replaceChildren(
    ...events.map((event) => {
      const item = document.createElement("li");
      item.dataset.kind = event.kind;
      item.append(
        seekButton(
          event.offset,
          t("review_seek", {
            time: formatOffset(event.offset),
            event: describeEvent(event),
            actor: event.actor.name,
          }),
        ),
      );
      return item;
    }),
  );
}

async function loadScores() {
  /**
   * @type {{rubric: string[], reviews: Array<{reviewer: {name: string}, comment?: string|null,
   *          scores: Array<{criterion: string, score: number}>}>}}
   */
  const { rubric, reviews } = await api(`/api/recordings/${currentId()}/scores`);
  const container = byId("rubric");
  container.replaceChildren(
    ...rubric.map((criterion, index) => {
      const fieldset = document.createElement("fieldset");
      fieldset.className = "rubric-criterion";
      fieldset.dataset.criterion = criterion;
      const legend = document.createElement("legend");
      legend.textContent = criterion;
      fieldset.append(legend);
      for (let score = 1; score <= 5; score += 1) {
        const id = `score-${index}-${score}`;
        const input = document.createElement("input");
        input.type = "radio";
        input.name = `criterion-${index}`;
        input.id = id;
        input.value = String(score);
        input.required = true;
        const label = document.createElement("label");
        label.htmlFor = id;
        label.textContent = String(score);
        fieldset.append(input, label);
      }
      return fieldset;
    }),
  );
  byId("reviews").replaceChildren(
    ...(reviews.length
      ? reviews.map((review) => {
          const item = document.createElement("li");
          const scores = review.scores.map((s) => `${s.criterion}: ${s.score}`).join(", ");
          item.textContent = `${review.reviewer.name} — ${scores}${review.comment ? ` — ${review.comment}` : ""}`;
          return item;
        })
      : [Object.assign(document.createElement("li"), { textContent: t("review_scores_none") })]),
  );
}

/** @param {SubmitEvent} event */
async function saveScore(event) {
  event.preventDefault();
  /** @type {Record<string, number>} */
  const scores = {};
  for (const fieldset of byId("rubric").querySelectorAll("fieldset")) {
    /** @type {HTMLInputElement|null} */
    const checked = fieldset.querySelector("input:checked");
    if (checked) scores[fieldset.dataset.criterion ?? ""] = Number(checked.value);
  }
  try {
    await api(`/api/recordings/${currentId()}/scores`, {
      method: "POST",
      body: { scores, comment: byId("score-comment", HTMLTextAreaElement).value },
    });
  } catch (err) {
    showError(codeOf(err));
    return;
  }
  showError(null);
  announce("review_saved");
  byId("score-comment", HTMLTextAreaElement).value = "";
  await loadScores();
}

async function loadComments() {
  /** @type {{comments: Array<{offset: number, text: string, author: {name: string}}>}} */
  const { comments } = await api(`/api/recordings/${currentId()}/comments`);
  byId("comments").replaceChildren(
    ...comments.map((comment) => {
      const item = document.createElement("li");
      item.dataset.offset = String(comment.offset);
      item.append(
        seekButton(comment.offset, t("review_go_to", { time: formatOffset(comment.offset) })),
        ` ${comment.author.name}: ${comment.text}`,
      );
      return item;
    }),
  );
}

/** @param {SubmitEvent} event */
async function addComment(event) {
  event.preventDefault();
  const offset = Math.round(player.currentTime * 10) / 10;
  const text = byId("comment-text", HTMLTextAreaElement).value.trim();
  if (!text) return;
  try {
    await api(`/api/recordings/${currentId()}/comments`, {
      method: "POST",
      body: { offset, text },
    });
  } catch (err) {
    showError(codeOf(err));
    return;
  }
  byId("comment-text", HTMLTextAreaElement).value = "";
  announce("review_comment_added", { time: formatOffset(offset) });
  await loadComments();
}

function renderCommentButton() {
  byId("comment-button").textContent = t("review_add_comment", {
    time: formatOffset(player.currentTime || 0),
  });
}

function retranslate() {
  if (lastError) showError(lastError);
  renderCommentButton();
  if (current) renderRendition();
}

mountLanguageSwitch(byId("language-select", HTMLSelectElement));
translateDocument();
onLanguageChange(retranslate);
renderCommentButton();
player.addEventListener("timeupdate", renderCommentButton);
// A link that expired anyway (the computer slept past the refresh): fetch fresh ones now.
player.addEventListener("error", () => {
  const expiresAt = player.src ? linkExpiresAt(player.src) : null;
  if (expiresAt !== null && expiresAt <= Date.now()) refreshLinks();
});
byId("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadList();
});
byId("score-form").addEventListener("submit", saveScore);
byId("comment-form").addEventListener("submit", addComment);
if (token) {
  loadList();
} else {
  showError("token_missing");
}
