/**
 * Entry of the quality review page (/review?token=JWT): list recordings with filters, play
 * one beside its consult's timeline (click to seek), score it against the hospital's rubric
 * and pin comments to the player's current time. Every request is audited by the server.
 */
import { mountLanguageSwitch, onLanguageChange, t, translateDocument } from "./i18n.js";
import { api as rest } from "./rest.js";
import { takeToken } from "./session.js";

const byId = (id) => document.getElementById(id);

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
const player = byId("player");

/** @type {object|null} the recording open in the player */
let current = null;
let progressTimer = null;
let lastError = null;

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

function announce(key, params) {
  const announcer = byId("announcer");
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = t(key, params);
  }, 50);
}

const api = (path, options = {}) => rest(token, options.method ?? "GET", path, options.body);

async function loadList() {
  const form = new FormData(byId("filters"));
  const query = new URLSearchParams();
  for (const [name, value] of form.entries()) {
    if (!value) continue;
    query.set(name, name === "from" || name === "to" ? new Date(`${value}T00:00:00`).toISOString() : value);
  }
  try {
    const { recordings } = await api(`/api/recordings?${query}`);
    renderList(recordings);
    showError(null);
  } catch (err) {
    showError(err.code);
  }
}

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

async function openRecording(id) {
  try {
    current = await api(`/api/recordings/${encodeURIComponent(id)}`);
  } catch (err) {
    showError(err.code);
    return;
  }
  showError(null);
  byId("recording").hidden = false;
  byId("player-heading").textContent = current.title;
  byId("recording").dataset.recordingId = current.id;
  setPlayerSource();
  renderTracks();
  renderRendition();
  watchRendition();
  byId("score-form").hidden = !current.may_review;
  byId("comment-form").hidden = !current.may_review;
  await Promise.all([loadTimeline(), loadScores(), loadComments()]);
  byId("player-heading").focus();
}

/** The review file once it is ready; until then the first camera track (no sound). */
function setPlayerSource() {
  const rendition = current.rendition.status === "ready" ? current.rendition.file : null;
  const camera = current.manifest.tracks.find((track) => track.kind === "video" && track.frames);
  const name = rendition ?? camera?.name ?? current.manifest.tracks[0]?.name;
  if (!name) return;
  const time = player.currentTime;
  player.src = current.links[name];
  player.dataset.file = name;
  if (time) player.currentTime = time;
}

function renderTracks() {
  byId("tracks").replaceChildren(
    ...current.manifest.tracks.map((track) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `${current.links[track.name]}&download=1`;
      link.textContent = `${track.source} (${track.codec}, ${track.duration ?? "?"} s)`;
      item.append(link, ` SHA-256 ${track.sha256 ?? "—"}`);
      return item;
    }),
  );
}

function renderRendition() {
  const { status, progress } = current.rendition;
  byId("rendition-status").textContent = t("review_rendition", {
    status: t(`rendition_${status}`),
    progress,
  });
  byId("rendition-progress").value = progress;
  byId("rendition-progress").dataset.status = status;
}

function watchRendition() {
  clearInterval(progressTimer);
  if (!["pending", "running"].includes(current.rendition.status)) return;
  const id = current.id;
  progressTimer = setInterval(async () => {
    if (current?.id !== id) return clearInterval(progressTimer);
    try {
      current = await api(`/api/recordings/${encodeURIComponent(id)}`);
    } catch (err) {
      clearInterval(progressTimer);
      showError(err.code);
      return;
    }
    renderRendition();
    if (current.rendition.status === "ready") {
      setPlayerSource();
      clearInterval(progressTimer);
    } else if (current.rendition.status === "failed") {
      clearInterval(progressTimer);
    }
  }, 1000);
}

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

async function loadTimeline() {
  const { events } = await api(`/api/recordings/${encodeURIComponent(current.id)}/timeline`);
  byId("timeline").replaceChildren(
    ...events.map((event) => {
      const item = document.createElement("li");
      item.dataset.kind = event.kind;
      item.append(
        seekButton(
          event.offset,
          t("review_seek", {
            time: formatOffset(event.offset),
            event: event.kind.replaceAll("_", " "),
            actor: event.actor.name,
          }),
        ),
      );
      return item;
    }),
  );
}

async function loadScores() {
  const { rubric, reviews } = await api(`/api/recordings/${encodeURIComponent(current.id)}/scores`);
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

async function saveScore(event) {
  event.preventDefault();
  const scores = {};
  for (const fieldset of byId("rubric").querySelectorAll("fieldset")) {
    const checked = fieldset.querySelector("input:checked");
    if (checked) scores[fieldset.dataset.criterion] = Number(checked.value);
  }
  try {
    await api(`/api/recordings/${encodeURIComponent(current.id)}/scores`, {
      method: "POST",
      body: { scores, comment: byId("score-comment").value },
    });
  } catch (err) {
    showError(err.code);
    return;
  }
  showError(null);
  announce("review_saved");
  byId("score-comment").value = "";
  await loadScores();
}

async function loadComments() {
  const { comments } = await api(`/api/recordings/${encodeURIComponent(current.id)}/comments`);
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

async function addComment(event) {
  event.preventDefault();
  const offset = Math.round(player.currentTime * 10) / 10;
  const text = byId("comment-text").value.trim();
  if (!text) return;
  try {
    await api(`/api/recordings/${encodeURIComponent(current.id)}/comments`, {
      method: "POST",
      body: { offset, text },
    });
  } catch (err) {
    showError(err.code);
    return;
  }
  byId("comment-text").value = "";
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

mountLanguageSwitch(byId("language-select"));
translateDocument();
onLanguageChange(retranslate);
renderCommentButton();
player.addEventListener("timeupdate", renderCommentButton);
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
