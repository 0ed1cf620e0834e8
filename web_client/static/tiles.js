// @ts-check
/**
 * The video grid: one tile per participant (camera and microphone), one per screen share,
 * and the local tile; each labelled with the name, the mute state and whether they speak.
 * The grid's `data-layout` (1, 2, 4, 9, 16 or 25: the smallest square-ish grid that holds
 * every tile) chooses its columns in the style sheet; in a one-to-one call (`data-arrangement`
 * "pip") the other party fills the grid and one's own picture is a small inset.
 * Remote tiles play their sound; where the browser blocks that, they play muted until
 * `enableSound` is called from a tap. Each participant's tile says how good their connection
 * is, and a tile whose video is paused (a weak link, audio only) says so instead of freezing.
 */
import { t } from "./i18n.js";
import { FULL_RECEIVE, videoPauseOf, voicePausedOf } from "./link-quality.js";

/**
 * @typedef {{participant_id: string, name: string, status?: string,
 *            muted?: {microphone: boolean, camera: boolean}}} Participant
 * @typedef {{kind: "local"|"camera"|"screen", participantId: string|null, figure: HTMLElement,
 *            video: HTMLVideoElement, name: HTMLElement, micBadge: HTMLElement,
 *            cameraBadge: HTMLElement, reconnectingBadge: HTMLElement, qualityBadge: HTMLElement,
 *            pausedBadge: HTMLElement, voicePausedBadge: HTMLElement, speakingCue: HTMLElement, initials: HTMLElement,
 *            tracks: Set<MediaStreamTrack>}} Tile
 * @typedef {{quality: Map<string, import("./link-quality.js").Quality>,
 *            receiveMode: import("./link-quality.js").ReceiveMode, audioOnly: boolean,
 *            ownId: string|null}} Links
 *   the server's ratings of everyone's connection, what this participant receives, whether it
 *   chose audio only, and its own participant id (the local tile's rating)
 */

const LOCAL_KEY = "local";
/** Grid sizes the style sheet lays out; a grid takes the smallest that holds its tiles. */
const LAYOUTS = [1, 2, 4, 9, 16, 25];

/**
 * How the tiles are arranged: "pip" when they are one's own and one other participant's camera
 * (a one-to-one call: the other large, oneself inset), else "grid".
 * @param {Iterable<string>} keys the tiles' keys ("local", "<id>:camera", "<id>:screen")
 * @returns {"pip"|"grid"}
 */
export function arrangementFor(keys) {
  const list = [...keys];
  return list.length === 2 && list.includes(LOCAL_KEY) && list.some((key) => key.endsWith(":camera"))
    ? "pip"
    : "grid";
}

/**
 * The grid size for `count` tiles: the smallest laid-out size that holds them (the largest
 * when none does).
 * @param {number} count
 * @returns {number}
 */
export function layoutFor(count) {
  return LAYOUTS.find((size) => size >= count) ?? LAYOUTS[LAYOUTS.length - 1];
}

/** The tiles of the consult view, keyed by participant and source. */
export class VideoGrid {
  /**
   * @param {HTMLElement} container the grid element
   * @param {(participantId: string) => Participant|undefined} lookup the participant's latest data
   * @param {(figure: HTMLElement, participant: Participant|undefined) => void} [decorate]
   *   called after each (re)label of a remote camera tile, e.g. to add host controls
   * @param {() => void} [onSoundBlocked] called when the browser refused to play a remote
   *   tile's sound without a tap (the tile then plays muted): offer "Enable sound"
   */
  constructor(container, lookup, decorate = () => {}, onSoundBlocked = () => {}) {
    this.container = container;
    this.lookup = lookup;
    this.decorate = decorate;
    this.onSoundBlocked = onSoundBlocked;
    /** @type {Map<string, Tile>} by "local", "<participant_id>:camera" or "<participant_id>:screen" */
    this.tiles = new Map();
    /** @type {{stream: MediaStream, participant: Participant,
     *           muted: {microphone: boolean, camera: boolean}}|null} */
    this.local = null;
    /** @type {Links} */
    this.links = { quality: new Map(), receiveMode: FULL_RECEIVE, audioOnly: false, ownId: null };
  }

  /**
   * Take the latest connection ratings and receive mode, and relabel every tile.
   * @param {Links} links
   */
  setLinks(links) {
    this.links = links;
    this.refresh();
  }

  /**
   * Show (or update) the local tile: muted and mirrored video of `stream`.
   * @param {MediaStream} stream
   * @param {Participant} participant this participant
   * @param {{microphone: boolean, camera: boolean}} muted
   */
  setLocal(stream, participant, muted) {
    this.local = { stream, participant, muted };
    let tile = this.tiles.get(LOCAL_KEY);
    if (!tile) {
      tile = this.#createTile(LOCAL_KEY, "local", null);
      tile.video.muted = true;
      tile.video.id = "local-video";
      tile.video.srcObject = stream;
      this.container.prepend(tile.figure);
    }
    this.#label(tile);
  }

  /**
   * Make sure a participant who joined has a tile, even before any of their media arrives.
   * @param {string} participantId
   */
  showParticipant(participantId) {
    this.#label(this.#ensureTile(participantId, "camera"));
  }

  /**
   * Remove every tile of a participant.
   * @param {string} participantId
   */
  removeParticipant(participantId) {
    for (const kind of ["camera", "screen"]) this.#removeTile(`${participantId}:${kind}`);
  }

  /**
   * Put a received track into its participant's tile: camera and microphone share the
   * main tile (its video element plays the sound), a screen share gets its own tile.
   * @param {{participantId: string, source: string, track: MediaStreamTrack}} placement
   */
  addTrack({ participantId, source, track }) {
    const tile = this.#ensureTile(participantId, source === "screen" ? "screen" : "camera");
    tile.tracks.add(track);
    this.#attach(tile);
    this.#label(tile);
  }

  /**
   * Take a track out of its tile; a screen tile left without tracks goes away.
   * @param {{participantId: string, source: string, track: MediaStreamTrack}} placement
   */
  removeTrack({ participantId, source, track }) {
    const key = `${participantId}:${source === "screen" ? "screen" : "camera"}`;
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.tracks.delete(track);
    if (tile.kind === "screen" && tile.tracks.size === 0) {
      this.#removeTile(key);
    } else {
      this.#attach(tile);
      this.#label(tile);
    }
  }

  /**
   * Mark whether a participant is speaking: `data-speaking` on their camera tile (drawn
   * as an outline) and a visually hidden word in its caption, read when a screen reader
   * reaches the tile but never announced on its own.
   * @param {string} participantId
   * @param {boolean} speaking
   */
  setSpeaking(participantId, speaking) {
    const tile = this.tiles.get(`${participantId}:camera`);
    if (!tile) return;
    tile.figure.dataset.speaking = String(speaking);
    tile.speakingCue.hidden = !speaking;
  }

  /**
   * Unmute and play every remote tile. Call it from a tap's handler: browsers allow sound
   * only after the user touched the page.
   */
  enableSound() {
    for (const tile of this.tiles.values()) {
      if (tile.kind === "local") continue;
      tile.video.muted = false;
      this.#play(tile.video);
    }
  }

  /** Relabel every tile (names, mute state, language). */
  refresh() {
    for (const tile of this.tiles.values()) this.#label(tile);
  }

  /** Remove all tiles and release their video elements. */
  clear() {
    for (const key of [...this.tiles.keys()]) this.#removeTile(key);
    this.local = null;
  }

  /**
   * @param {string} participantId
   * @param {"camera"|"screen"} kind
   * @returns {Tile}
   */
  #ensureTile(participantId, kind) {
    const key = `${participantId}:${kind}`;
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = this.#createTile(key, kind, participantId);
      tile.video.dataset.participantId = participantId;
      tile.video.dataset.source = kind;
      this.container.append(tile.figure);
    }
    return tile;
  }

  /**
   * @param {string} key
   * @param {Tile["kind"]} kind
   * @param {string|null} participantId
   * @returns {Tile}
   */
  #createTile(key, kind, participantId) {
    const figure = document.createElement("figure");
    figure.className = `tile tile-${kind}`;
    figure.dataset.tile = kind;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const initials = document.createElement("div");
    initials.className = "tile-initials";
    initials.setAttribute("aria-hidden", "true");
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "tile-name";
    const micBadge = document.createElement("span");
    micBadge.className = "badge badge-muted";
    const cameraBadge = document.createElement("span");
    cameraBadge.className = "badge badge-camera-off";
    const reconnectingBadge = document.createElement("span");
    reconnectingBadge.className = "badge badge-reconnecting";
    reconnectingBadge.setAttribute("role", "status");
    // Words, not a colour: "Connection: poor" reads the same to everyone.
    const qualityBadge = document.createElement("span");
    qualityBadge.className = "badge badge-quality";
    qualityBadge.hidden = true;
    // No live region: the page announces a pause once, not once per tile.
    const pausedBadge = document.createElement("span");
    pausedBadge.className = "badge badge-video-paused";
    pausedBadge.hidden = true;
    const voicePausedBadge = document.createElement("span");
    voicePausedBadge.className = "badge badge-voice-paused";
    voicePausedBadge.hidden = true;
    const speakingCue = document.createElement("span");
    speakingCue.className = "visually-hidden tile-speaking";
    speakingCue.hidden = true;
    figure.dataset.speaking = "false";
    caption.append(
      name, " ", micBadge, " ", cameraBadge, " ", reconnectingBadge, " ", pausedBadge, " ", voicePausedBadge, " ", qualityBadge, speakingCue,
    );
    figure.append(video, initials, caption);
    /** @type {Tile} */
    const tile = {
      kind,
      participantId,
      figure,
      video,
      name,
      micBadge,
      cameraBadge,
      reconnectingBadge,
      qualityBadge,
      pausedBadge,
      voicePausedBadge,
      speakingCue,
      initials,
      tracks: new Set(),
    };
    this.tiles.set(key, tile);
    this.#updateCount();
    return tile;
  }

  /** @param {string} key */
  #removeTile(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.figure.remove();
    this.tiles.delete(key);
    this.#updateCount();
  }

  /**
   * A fresh MediaStream per change: simpler and more reliable than mutating a playing one.
   * @param {Tile} tile
   */
  #attach(tile) {
    tile.video.srcObject = tile.tracks.size ? new MediaStream([...tile.tracks]) : null;
    if (tile.tracks.size) this.#play(tile.video);
  }

  /**
   * Play a remote tile; when the browser refuses its sound (no tap yet), play it muted so the
   * picture shows, and say so.
   * @param {HTMLVideoElement} video
   */
  #play(video) {
    video.play().catch((err) => {
      if (err?.name !== "NotAllowedError" || video.muted) return;
      video.muted = true;
      this.onSoundBlocked();
      video.play().catch(() => {});
    });
  }

  /** @param {Tile} tile */
  #label(tile) {
    const local = tile.kind === "local" ? this.local : null;
    const participant = local ? local.participant : this.lookup(tile.participantId ?? "");
    const name = participant?.name ?? "";
    const muted = local ? local.muted : participant?.muted ?? { microphone: false, camera: false };
    const label =
      tile.kind === "local"
        ? t("tile_you", { name })
        : tile.kind === "screen"
          ? t("tile_screen", { name })
          : name;
    tile.name.textContent = label;
    tile.video.setAttribute("aria-label", label);
    tile.initials.textContent = initialsOf(name);
    // One's own front camera shows as a mirror; the back camera (showing a wound) as it is.
    if (local) {
      const facing = local.stream.getVideoTracks()[0]?.getSettings().facingMode;
      tile.video.classList.toggle("mirrored", facing !== "environment");
    }

    // A screen share has no microphone or camera of its own.
    const micMuted = tile.kind !== "screen" && Boolean(muted.microphone);
    const cameraOff = tile.kind !== "screen" && Boolean(muted.camera);
    const videoTracks = local
      ? local.stream.getVideoTracks()
      : [...tile.tracks].filter((tr) => tr.kind === "video");
    const paused = videoPauseOf(tile.kind, this.links, tile.participantId);
    tile.figure.dataset.micMuted = String(micMuted);
    tile.figure.dataset.cameraMuted = String(cameraOff);
    // Initials stand in for the picture when there is none to show (not a frozen last frame).
    tile.figure.dataset.hasVideo = String(videoTracks.length > 0 && !cameraOff && !paused);
    tile.figure.dataset.videoPaused = paused ?? "";
    tile.pausedBadge.textContent = paused ? t(`tile_video_paused.${paused}`) : "";
    tile.pausedBadge.hidden = !paused;
    const voicePaused = voicePausedOf(tile.kind, this.links, tile.participantId);
    tile.figure.dataset.voicePaused = voicePaused ? "weak_connection" : "";
    tile.voicePausedBadge.textContent = voicePaused ? t("tile_voice_paused.weak_connection") : "";
    tile.voicePausedBadge.hidden = !voicePaused;
    // A screen share travels the same link as its sharer's camera: one rating, on the camera tile.
    const quality =
      tile.kind === "screen" ? undefined : this.links.quality.get((local ? this.links.ownId : tile.participantId) ?? "");
    tile.figure.dataset.quality = quality ?? "";
    tile.qualityBadge.textContent = quality ? t(`tile_quality.${quality}`) : "";
    tile.qualityBadge.hidden = !quality;
    tile.micBadge.textContent = t("tile_muted");
    tile.micBadge.hidden = !micMuted;
    tile.cameraBadge.textContent = t("tile_camera_off");
    tile.cameraBadge.hidden = !cameraOff;
    // Their connection dropped: the server keeps their seat while they come back.
    const reconnecting = tile.kind === "camera" && participant?.status === "reconnecting";
    tile.figure.dataset.reconnecting = String(reconnecting);
    tile.reconnectingBadge.textContent = t("tile_reconnecting");
    tile.reconnectingBadge.hidden = !reconnecting;
    tile.speakingCue.textContent = `, ${t("tile_speaking")}`;
    if (tile.kind === "camera") this.decorate(tile.figure, participant);
  }

  #updateCount() {
    const count = this.tiles.size;
    this.container.dataset.count = String(count);
    this.container.dataset.layout = String(layoutFor(count));
    this.container.dataset.arrangement = arrangementFor(this.tiles.keys());
  }
}

/**
 * Up to two initials (or the first character, for names written without spaces, as in Chinese).
 * @param {string} name
 * @returns {string}
 */
export function initialsOf(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length >= 2) return (words[0][0] + words[1][0]).toUpperCase();
  return (words[0]?.[0] ?? "").toUpperCase();
}
