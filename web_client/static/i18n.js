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
    tile_speaking: "speaking",
    share_screen: "Share screen",
    stop_sharing: "Stop sharing",
    announce_screen_started: "You are sharing your screen.",
    announce_screen_stopped: "You stopped sharing your screen.",
    chat_heading: "Chat",
    chat_message_label: "Message",
    chat_send: "Send",
    chat_empty: "No messages yet.",
    chat_you: "{name} (you)",
    mute_participant: "Mute {name}",
    remove_participant: "Remove {name}",
    host_controls_label: "Host controls for {name}",
    remove_dialog_heading: "Remove {name} from the consult?",
    remove_dialog_body: "They leave at once and cannot join this consult again with their link.",
    remove_confirm: "Remove from consult",
    cancel: "Cancel",
    announce_participant_removed: "{name} was removed from the consult.",
    "announce_muted_by_host.microphone": "{by} muted your microphone.",
    "announce_muted_by_host.camera": "{by} turned off your camera.",
    "announce_muted_by_host.screen": "{by} stopped your screen share.",

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
    removed_heading: "You were removed from the consult by {by}",
    removed_body: "Your camera and microphone are off. You cannot join this consult again with your link.",

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
    "error.participant_not_found": "This person is no longer in the consult.",
    "error.screen_denied": "Screen sharing was blocked or cancelled.",
    "error.screen_unavailable": "This browser cannot share the screen.",
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

    // Recording with consent, and the quality team's review.
    rec_indicator: "Recording",
    rec_indicator_detail: "This consult is being recorded.",
    rec_indicator_by: "Started by {name}.",
    rec_start: "Start recording",
    rec_stop: "Stop recording",
    rec_consent: "I agree to this consult being recorded",
    rec_consent_given: "You agreed to this consult being recorded.",
    rec_consent_withdraw: "Withdraw my agreement",
    rec_consent_of_patient: "The patient agreed to the recording.",
    rec_attest_heading: "Verbal consent",
    rec_attest_intro: "The patient has not agreed in their page. Record that they agreed aloud, and why.",
    rec_attest_reason: "Reason",
    rec_attest_confirm: "Confirm verbal consent and start recording",
    rec_attest_cancel: "Cancel",
    announce_rec_started: "The recording has started.",
    announce_rec_stopped: "The recording has stopped.",
    "error.consent_required": "The patient has not agreed to the recording yet.",
    "error.already_recording": "The consult is already being recorded.",
    "error.not_recording": "The consult is not being recorded.",
    "error.recording_forbidden": "You may not see this recording.",
    "error.recording_not_found": "This recording could not be found.",
    "error.recording_deleted": "This recording was deleted under the hospital's retention policy.",
    "error.review_forbidden": "Only the hospital's quality reviewers may score recordings.",
    "error.admin_required": "Only an administrator of this hospital may see this.",
    review_title: "teleconsult — recording review",
    review_heading: "Recording review",
    review_filters: "Filters",
    review_consult: "Consult",
    review_doctor: "Doctor",
    review_kind: "Kind",
    review_kind_any: "Any",
    kind_visit: "Visit",
    kind_referral: "Referral",
    kind_conference: "Case conference",
    review_from: "From",
    review_to: "To",
    review_search: "Search",
    review_list: "Recordings",
    review_none: "No recordings match.",
    review_open: "Open {title}, {date}, {doctor}",
    review_player: "Player",
    review_rendition: "Review file: {status} ({progress} %)",
    rendition_pending: "waiting",
    rendition_running: "being made",
    rendition_ready: "ready",
    rendition_failed: "failed",
    rendition_none: "none",
    review_originals: "Original tracks",
    review_timeline: "Consult timeline",
    review_seek: "{time} {event} — {actor}",
    review_rubric: "Scoring",
    review_score_of: "{criterion}",
    review_comment: "Comment",
    review_save_score: "Save score",
    review_saved: "Score saved.",
    review_scores_none: "Not scored yet.",
    review_comments: "Comments",
    review_comment_text: "Comment at the current time",
    review_add_comment: "Add comment at {time}",
    review_comment_added: "Comment added at {time}.",
    review_go_to: "Go to {time}",
    review_status: "{status}",
    audit_title: "teleconsult — audit log",
    audit_heading: "Audit log",
    audit_when: "When",
    audit_who: "Who",
    audit_action: "Action",
    audit_what: "What",
    audit_outcome: "Outcome",
    audit_from: "From",
    audit_refresh: "Refresh",
    audit_none: "No entries.",

    // Clinical record: note, e-prescription, pharmacy, patient's prescription.
    clinical_heading: "Clinical record",
    note_heading: "Consultation note",
    note_subjective: "Subjective",
    note_objective: "Objective",
    note_assessment: "Assessment",
    note_plan: "Plan",
    diagnoses_legend: "Diagnoses (ICD-10)",
    diagnosis_code: "ICD-10 code",
    diagnosis_text: "Diagnosis",
    add_diagnosis: "Add diagnosis",
    remove: "Remove",
    save_draft: "Save draft",
    draft_saved: "Draft saved",
    sign_note: "Sign",
    rx_heading: "E-prescription",
    rx_item_legend: "Item {n}",
    rx_drug_code: "Drug code",
    rx_drug_name: "Drug",
    rx_strength: "Strength",
    rx_dose: "Dose",
    rx_dose_unit: "Dose unit",
    rx_route: "Route",
    rx_frequency: "Frequency",
    rx_duration: "Duration (days)",
    rx_quantity: "Quantity",
    rx_refills: "Refills",
    rx_instructions: "Instructions",
    rx_add_item: "Add item",
    sign_prescription: "Sign prescription",
    rx_safety_heading: "Safety check: signing is blocked.",
    rx_override_label: "Override reason",
    rx_override_sign: "Sign with override",
    rx_blocked: "Change the prescription, or give a reason to override the warnings.",
    safety_allergy: "Allergy (item {n}):",
    safety_duplicate: "Duplicate drug (item {n}):",
    fix_fields: "Please correct the {count} marked fields.",
    clinical_error: "The clinical record could not be saved (code: {code}).",
    status_draft: "Draft",
    status_signed: "Signed",
    status_approved: "Approved",
    status_rejected: "Rejected",
    review_approved: "Approved by {name}",
    review_rejected: "Rejected by {name}: {reason}",
    delivery_pending: "Sending to the hospital record…",
    delivery_delivered: "Saved in the hospital record",
    delivery_failed: "Not yet in the hospital record: the records team has been alerted",
    rx_item_line: "{drug} {strength}: {dose} {unit}, {route}, {frequency}, {days} days (quantity {quantity}, refills {refills})",
    route_oral: "by mouth",
    route_sublingual: "under the tongue",
    route_topical: "on the skin",
    route_inhaled: "inhaled",
    route_intravenous: "intravenous",
    route_intramuscular: "intramuscular",
    route_subcutaneous: "subcutaneous",
    route_rectal: "rectal",
    route_ophthalmic: "in the eye",
    route_nasal: "in the nose",
    route_transdermal: "skin patch",
    frequency_QD: "once a day",
    frequency_BID: "twice a day",
    frequency_TID: "three times a day",
    frequency_QID: "four times a day",
    frequency_Q4H: "every 4 hours",
    frequency_Q6H: "every 6 hours",
    frequency_Q8H: "every 8 hours",
    frequency_Q12H: "every 12 hours",
    frequency_QHS: "at bedtime",
    frequency_QW: "once a week",
    frequency_PRN: "when needed",
    patient_rx_heading: "Your prescription",
    patient_rx_none: "No approved prescription yet.",
    patient_rx_by: "Prescribed by {name}, approved by the pharmacy",
    pharmacy_title: "teleconsult — prescription review",
    pharmacy_heading: "Prescriptions to review",
    pharmacy_empty: "No prescriptions are waiting for review.",
    pharmacy_for: "{patient}, prescribed by {doctor}",
    pharmacy_override: "The doctor overrode {count} safety warnings: {reason}",
    pharmacy_reason_label: "Reason",
    pharmacy_approve: "Approve",
    pharmacy_reject: "Reject",
    pharmacy_reason_required: "A rejection needs a reason.",
    pharmacy_approved: "Prescription for {name} approved.",
    pharmacy_rejected: "Prescription for {name} rejected.",
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
    tile_speaking: "正在讲话",
    share_screen: "共享屏幕",
    stop_sharing: "停止共享",
    announce_screen_started: "您正在共享屏幕。",
    announce_screen_stopped: "您已停止共享屏幕。",
    chat_heading: "聊天",
    chat_message_label: "消息",
    chat_send: "发送",
    chat_empty: "暂无消息。",
    chat_you: "{name}（我）",
    mute_participant: "将 {name} 静音",
    remove_participant: "移出 {name}",
    host_controls_label: "{name} 的主持人控制",
    remove_dialog_heading: "要将 {name} 移出问诊吗？",
    remove_dialog_body: "对方将立即离开，且无法再用其链接加入本问诊。",
    remove_confirm: "移出问诊",
    cancel: "取消",
    announce_participant_removed: "{name} 已被移出问诊。",
    "announce_muted_by_host.microphone": "{by} 将您的麦克风静音了。",
    "announce_muted_by_host.camera": "{by} 关闭了您的摄像头。",
    "announce_muted_by_host.screen": "{by} 停止了您的屏幕共享。",

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
    removed_heading: "{by} 已将您移出问诊",
    removed_body: "您的摄像头和麦克风已关闭。您无法再用此链接加入本问诊。",

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
    "error.participant_not_found": "此人已不在问诊中。",
    "error.screen_denied": "屏幕共享被阻止或已取消。",
    "error.screen_unavailable": "此浏览器无法共享屏幕。",
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

    // 知情同意录制与质控评审。
    rec_indicator: "录制中",
    rec_indicator_detail: "本次问诊正在录制。",
    rec_indicator_by: "由{name}开始录制。",
    rec_start: "开始录制",
    rec_stop: "停止录制",
    rec_consent: "我同意录制本次问诊",
    rec_consent_given: "您已同意录制本次问诊。",
    rec_consent_withdraw: "撤回同意",
    rec_consent_of_patient: "患者已同意录制。",
    rec_attest_heading: "口头同意",
    rec_attest_intro: "患者尚未在页面上同意。请确认患者已口头同意，并填写原因。",
    rec_attest_reason: "原因",
    rec_attest_confirm: "确认口头同意并开始录制",
    rec_attest_cancel: "取消",
    announce_rec_started: "录制已开始。",
    announce_rec_stopped: "录制已停止。",
    "error.consent_required": "患者尚未同意录制。",
    "error.already_recording": "本次问诊已在录制中。",
    "error.not_recording": "本次问诊未在录制。",
    "error.recording_forbidden": "您无权查看此录像。",
    "error.recording_not_found": "找不到此录像。",
    "error.recording_deleted": "此录像已按医院的保存期限规定删除。",
    "error.review_forbidden": "只有本院质控评审人员可以为录像评分。",
    "error.admin_required": "只有本院管理员可以查看。",
    review_title: "teleconsult — 录像评审",
    review_heading: "录像评审",
    review_filters: "筛选",
    review_consult: "问诊",
    review_doctor: "医生",
    review_kind: "类型",
    review_kind_any: "全部",
    kind_visit: "复诊",
    kind_referral: "会诊转诊",
    kind_conference: "多学科会诊",
    review_from: "开始日期",
    review_to: "结束日期",
    review_search: "搜索",
    review_list: "录像列表",
    review_none: "没有符合条件的录像。",
    review_open: "打开 {title}，{date}，{doctor}",
    review_player: "播放器",
    review_rendition: "评审文件：{status}（{progress}%）",
    rendition_pending: "等待生成",
    rendition_running: "正在生成",
    rendition_ready: "已就绪",
    rendition_failed: "生成失败",
    rendition_none: "无",
    review_originals: "原始音视频轨道",
    review_timeline: "问诊时间线",
    review_seek: "{time} {event} — {actor}",
    review_rubric: "评分",
    review_score_of: "{criterion}",
    review_comment: "评语",
    review_save_score: "保存评分",
    review_saved: "评分已保存。",
    review_scores_none: "尚未评分。",
    review_comments: "批注",
    review_comment_text: "当前时间点的批注",
    review_add_comment: "在 {time} 添加批注",
    review_comment_added: "已在 {time} 添加批注。",
    review_go_to: "跳转到 {time}",
    review_status: "{status}",
    audit_title: "teleconsult — 审计日志",
    audit_heading: "审计日志",
    audit_when: "时间",
    audit_who: "操作人",
    audit_action: "操作",
    audit_what: "对象",
    audit_outcome: "结果",
    audit_from: "来源地址",
    audit_refresh: "刷新",
    audit_none: "暂无记录。",

    // Clinical record: note, e-prescription, pharmacy, patient's prescription.
    clinical_heading: "病历",
    note_heading: "会诊记录",
    note_subjective: "主诉（S）",
    note_objective: "客观检查（O）",
    note_assessment: "评估（A）",
    note_plan: "计划（P）",
    diagnoses_legend: "诊断（ICD-10）",
    diagnosis_code: "ICD-10 编码",
    diagnosis_text: "诊断",
    add_diagnosis: "添加诊断",
    remove: "删除",
    save_draft: "保存草稿",
    draft_saved: "草稿已保存",
    sign_note: "签名",
    rx_heading: "电子处方",
    rx_item_legend: "第 {n} 项",
    rx_drug_code: "药品编码",
    rx_drug_name: "药品",
    rx_strength: "规格",
    rx_dose: "剂量",
    rx_dose_unit: "剂量单位",
    rx_route: "给药途径",
    rx_frequency: "频次",
    rx_duration: "疗程（天）",
    rx_quantity: "数量",
    rx_refills: "可续配次数",
    rx_instructions: "用药说明",
    rx_add_item: "添加药品",
    sign_prescription: "签署处方",
    rx_safety_heading: "安全检查：暂不能签署。",
    rx_override_label: "强制签署理由",
    rx_override_sign: "说明理由后签署",
    rx_blocked: "请修改处方，或填写理由后强制签署。",
    safety_allergy: "过敏（第 {n} 项）：",
    safety_duplicate: "重复用药（第 {n} 项）：",
    fix_fields: "请更正标出的 {count} 个字段。",
    clinical_error: "病历未能保存（代码：{code}）。",
    status_draft: "草稿",
    status_signed: "已签名",
    status_approved: "已审核通过",
    status_rejected: "已驳回",
    review_approved: "药师 {name} 审核通过",
    review_rejected: "药师 {name} 驳回：{reason}",
    delivery_pending: "正在写入医院病历…",
    delivery_delivered: "已写入医院病历",
    delivery_failed: "尚未写入医院病历，已通知病案管理人员",
    rx_item_line: "{drug} {strength}：每次 {dose} {unit}，{route}，{frequency}，共 {days} 天（数量 {quantity}，续配 {refills} 次）",
    route_oral: "口服",
    route_sublingual: "舌下含服",
    route_topical: "外用",
    route_inhaled: "吸入",
    route_intravenous: "静脉注射",
    route_intramuscular: "肌内注射",
    route_subcutaneous: "皮下注射",
    route_rectal: "直肠给药",
    route_ophthalmic: "滴眼",
    route_nasal: "鼻用",
    route_transdermal: "透皮贴剂",
    frequency_QD: "每日一次",
    frequency_BID: "每日两次",
    frequency_TID: "每日三次",
    frequency_QID: "每日四次",
    frequency_Q4H: "每 4 小时一次",
    frequency_Q6H: "每 6 小时一次",
    frequency_Q8H: "每 8 小时一次",
    frequency_Q12H: "每 12 小时一次",
    frequency_QHS: "睡前",
    frequency_QW: "每周一次",
    frequency_PRN: "必要时",
    patient_rx_heading: "您的处方",
    patient_rx_none: "暂无已审核通过的处方。",
    patient_rx_by: "{name} 开具，药房已审核通过",
    pharmacy_title: "teleconsult — 处方审核",
    pharmacy_heading: "待审核处方",
    pharmacy_empty: "没有待审核的处方。",
    pharmacy_for: "{patient}，{doctor} 开具",
    pharmacy_override: "医生已强制跳过 {count} 条安全警告：{reason}",
    pharmacy_reason_label: "理由",
    pharmacy_approve: "通过",
    pharmacy_reject: "驳回",
    pharmacy_reason_required: "驳回需要填写理由。",
    pharmacy_approved: "已通过 {name} 的处方。",
    pharmacy_rejected: "已驳回 {name} 的处方。",
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
