/**
 * Translations (Simplified Chinese and English) and the language switch.
 *
 * Both dictionaries have the same keys. `{name}`-style placeholders are filled by `t()`.
 * Static markup is translated through `data-i18n="key"` (text) and
 * `data-i18n-attr="attribute:key;attribute:key"` (attributes).
 */

const STORAGE_KEY = "teleconsult.language";

/** @type {Record<string, Record<string, string>>} */
export const DICTIONARIES = {
  en: {
    page_title: "teleconsult — video consultation",
    skip_link: "Skip to main content",
    language_label: "Language",

    landing_tagline: "Video consultations with your hospital",
    landing_body:
      "Patients and doctors join a consult by opening the link the hospital sent them by text message or e-mail. No app and no account are needed: a recent browser with a camera and a microphone is enough.",
    landing_privacy: "Keep your link to yourself: it lets its holder join your consult.",

    join_heading: "Check your camera and microphone",
    join_greeting: "Hello, {name}.",
    join_intro: "Check that you can be seen and heard, then join the consult.",
    preview_label: "Your camera preview",
    camera_label: "Camera",
    microphone_label: "Microphone",
    device_default: "{kind} {index}",
    device_none: "None found",
    mic_level_label: "Microphone level",
    join_button: "Join consult",
    joining: "Joining the consult…",

    lobby_heading: "Lobby",
    lobby_waiting: "Waiting for the doctor to admit you",
    lobby_hint: "Keep this page open. The consult starts as soon as the doctor admits you.",

    consult_heading: "Consult",
    videos_label: "Videos",
    controls_label: "Consult controls",
    mute: "Mute",
    unmute: "Unmute",
    camera_off: "Camera off",
    camera_on: "Camera on",
    leave: "Leave",
    end_consult: "End consult",
    waiting_room_heading: "Waiting room",
    waiting_none: "Nobody is waiting.",
    admit: "Admit {name}",
    tile_you: "{name} (you)",
    tile_screen: "{name} (screen)",
    tile_muted: "Muted",
    tile_camera_off: "Camera is off",

    announce_joined: "{name} joined the consult.",
    announce_left: "{name} left the consult.",
    announce_waiting: "{name} is waiting to be admitted.",
    announce_admitted: "The doctor admitted you. The consult has started.",
    announce_mic_muted: "Your microphone is muted.",
    announce_mic_on: "Your microphone is on.",
    announce_camera_off: "Your camera is off.",
    announce_camera_on: "Your camera is on.",

    ended_heading: "The consult has ended",
    left_heading: "You left the consult",
    lost_heading: "The connection was lost",
    ended_body: "Your camera and microphone are off. You can close this page.",
    lost_body: "Your camera and microphone are off. Reload the page to join again.",

    "error.invalid_payload": "The server did not understand the request. Please reload the page.",
    "error.token_missing": "This link has no access key. Open the link you were sent again.",
    "error.token_invalid": "This link is not valid. Ask the hospital for a new link.",
    "error.token_expired": "This link has expired. Ask the hospital for a new link.",
    "error.token_not_yet_valid": "This link is not valid yet. Please try again at the time of your appointment.",
    "error.consult_not_found": "This consult could not be found. Check the link you were sent.",
    "error.not_invited": "You are not invited to this consult.",
    "error.participant_removed": "You were removed from this consult and cannot join it again.",
    "error.consult_ended": "This consult has ended.",
    "error.already_joined": "You have already joined this consult from this page.",
    "error.not_joined": "You are not in the consult. Please join again.",
    "error.in_lobby": "Please wait until the doctor admits you.",
    "error.not_in_lobby": "This person is no longer waiting to be admitted.",
    "error.forbidden": "You are not allowed to do this.",
    "error.invalid_sdp": "The video connection could not be set up. Please reload the page.",
    "error.invalid_candidate": "A network address for the video connection was refused.",
    "error.no_pending_offer": "The video connection got out of step. Please reload the page.",
    "error.internal_error": "The server had a problem. Please try again.",
    "error.timeout": "The server did not answer in time. Please try again.",
    "error.connection_failed": "The server cannot be reached. Check your network connection and try again.",
    "error.connection_lost": "The connection to the server was lost.",
    "error.media_failed": "The video connection to the server failed. Check your network connection.",
    "error.media_denied":
      "The browser blocked the camera and microphone. Allow them in the browser settings and reload the page, or join without them.",
    "error.media_unavailable": "No camera or microphone was found. You can still join to see and hear the others.",
    "error.unknown": "Something went wrong (code: {code}).",
  },

  "zh-CN": {
    page_title: "teleconsult — 视频问诊",
    skip_link: "跳到主要内容",
    language_label: "语言",

    landing_tagline: "与医院进行视频问诊",
    landing_body:
      "患者和医生打开医院通过短信或电子邮件发送的链接即可加入问诊。无需安装应用，也无需注册账号：使用带摄像头和麦克风的新版浏览器即可。",
    landing_privacy: "请勿将链接转发他人：持有链接的人可以加入您的问诊。",

    join_heading: "检查摄像头和麦克风",
    join_greeting: "{name}，您好。",
    join_intro: "请确认对方能看到和听到您，然后加入问诊。",
    preview_label: "您的摄像头预览",
    camera_label: "摄像头",
    microphone_label: "麦克风",
    device_default: "{kind} {index}",
    device_none: "未找到设备",
    mic_level_label: "麦克风音量",
    join_button: "加入问诊",
    joining: "正在加入问诊…",

    lobby_heading: "候诊室",
    lobby_waiting: "正在等待医生准许您进入",
    lobby_hint: "请保持此页面打开。医生准许后，问诊将立即开始。",

    consult_heading: "问诊",
    videos_label: "视频",
    controls_label: "问诊控制",
    mute: "静音",
    unmute: "取消静音",
    camera_off: "关闭摄像头",
    camera_on: "打开摄像头",
    leave: "离开",
    end_consult: "结束问诊",
    waiting_room_heading: "候诊名单",
    waiting_none: "目前没有人在等候。",
    admit: "准许 {name} 进入",
    tile_you: "{name}（我）",
    tile_screen: "{name}（屏幕共享）",
    tile_muted: "已静音",
    tile_camera_off: "摄像头已关闭",

    announce_joined: "{name} 已加入问诊。",
    announce_left: "{name} 已离开问诊。",
    announce_waiting: "{name} 正在等候准许进入。",
    announce_admitted: "医生已准许您进入，问诊开始。",
    announce_mic_muted: "您的麦克风已静音。",
    announce_mic_on: "您的麦克风已打开。",
    announce_camera_off: "您的摄像头已关闭。",
    announce_camera_on: "您的摄像头已打开。",

    ended_heading: "问诊已结束",
    left_heading: "您已离开问诊",
    lost_heading: "连接已断开",
    ended_body: "您的摄像头和麦克风已关闭。您可以关闭此页面。",
    lost_body: "您的摄像头和麦克风已关闭。刷新页面即可重新加入。",

    "error.invalid_payload": "服务器无法识别该请求，请刷新页面。",
    "error.token_missing": "此链接缺少访问凭证，请重新打开您收到的链接。",
    "error.token_invalid": "此链接无效，请向医院索取新链接。",
    "error.token_expired": "此链接已过期，请向医院索取新链接。",
    "error.token_not_yet_valid": "此链接尚未生效，请在预约时间再试。",
    "error.consult_not_found": "找不到此问诊，请核对您收到的链接。",
    "error.not_invited": "您未受邀参加此问诊。",
    "error.participant_removed": "您已被移出此问诊，无法再次加入。",
    "error.consult_ended": "此问诊已结束。",
    "error.already_joined": "您已在此页面加入问诊。",
    "error.not_joined": "您不在问诊中，请重新加入。",
    "error.in_lobby": "请等待医生准许您进入。",
    "error.not_in_lobby": "此人已不在候诊名单中。",
    "error.forbidden": "您没有执行此操作的权限。",
    "error.invalid_sdp": "无法建立视频连接，请刷新页面。",
    "error.invalid_candidate": "视频连接的网络地址被拒绝。",
    "error.no_pending_offer": "视频连接不同步，请刷新页面。",
    "error.internal_error": "服务器出现问题，请重试。",
    "error.timeout": "服务器未及时响应，请重试。",
    "error.connection_failed": "无法连接服务器，请检查网络后重试。",
    "error.connection_lost": "与服务器的连接已断开。",
    "error.media_failed": "与服务器的视频连接失败，请检查网络。",
    "error.media_denied": "浏览器阻止了摄像头和麦克风。请在浏览器设置中允许后刷新页面，或不使用摄像头和麦克风直接加入。",
    "error.media_unavailable": "未找到摄像头或麦克风。您仍可加入，观看和收听其他参会者。",
    "error.unknown": "出现问题（代码：{code}）。",
  },
};

/** Languages offered by the switch, with their names written in themselves. */
const LANGUAGES = [
  { code: "en", label: "English" },
  { code: "zh-CN", label: "中文" },
];

let current = initialLanguage();
const listeners = new Set();

/**
 * The language to start with: the remembered choice, else the browser's languages
 * (any `zh*` → Simplified Chinese), else English.
 * @returns {string}
 */
function initialLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage may be blocked (private mode, policies): fall back to the browser's languages.
  }
  if (stored && stored in DICTIONARIES) return stored;
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const lang of preferred) {
    const lower = (lang || "").toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

/**
 * Translate a key in the current language, filling `{placeholders}` from `params`.
 * An unknown key falls back to English, then to the key itself.
 * @param {string} key
 * @param {Record<string, string|number>} [params]
 * @returns {string}
 */
export function t(key, params = {}) {
  const template = DICTIONARIES[current][key] ?? DICTIONARIES.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}

/**
 * Switch the language, remember it, retranslate the document and notify listeners.
 * @param {string} lang "en" or "zh-CN"
 */
export function setLanguage(lang) {
  if (!(lang in DICTIONARIES)) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not remembered, but the page still switches.
  }
  translateDocument();
  for (const listener of listeners) listener(lang);
}

/**
 * Call `listener(lang)` after every language change.
 * @param {(lang: string) => void} listener
 */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/**
 * Translate the static markup: `lang` on <html>, the title, `data-i18n` text and
 * `data-i18n-attr` attributes.
 * @param {ParentNode} [root]
 */
export function translateDocument(root = document) {
  document.documentElement.lang = current;
  document.title = t(document.body?.dataset.titleKey || "page_title");
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((part) => part.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

/**
 * Fill a <select> with the offered languages and switch language when it changes.
 * Each option carries its own `lang` so screen readers pronounce it correctly.
 * @param {HTMLSelectElement} select
 */
export function mountLanguageSwitch(select) {
  select.replaceChildren(
    ...LANGUAGES.map(({ code, label }) => {
      const option = new Option(label, code, false, code === current);
      option.lang = code;
      return option;
    }),
  );
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguageChange((lang) => {
    select.value = lang;
  });
}
