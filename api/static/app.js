// Yiju duty-room console. Plain JavaScript, no build step, no external files (the duty-room network
// may have no internet). Talks to /api/v1 with the bearer token from the login.
"use strict";

const API = "/api/v1";

const I18N = {
  zh: {
    appName: "宜居 · 值班台", username: "用户名", password: "密码", login: "登录", logout: "退出",
    switchLang: "English", tabBoard: "告警", tabDevices: "设备", tabCompliance: "合规",
    live: "实时", offline: "未连接", noAlarms: "当前没有未关闭的告警", buildings: "楼栋状态", devices: "设备",
    searchDevice: "搜索设备编号或位置", all: "全部", online: "在线", offlineState: "离线", never: "从未上报",
    deviceUid: "设备编号", family: "类型", location: "位置", presence: "状态", lastSeen: "最后上报",
    openAlarms: "告警", more: "更多", complianceTitle: "合规检查（近30天）",
    acknowledge: "确认", comment: "备注", clear: "解除", detail: "详情", acknowledged: "已确认",
    unacknowledged: "未确认", cleared: "已关闭", active: "未关闭", first: "首次", last: "最近", times: "次",
    newCritical: "新的紧急告警", history: "处理记录", telemetry: "设备近期数据", noTelemetry: "暂无数据",
    send: "提交", commentPlaceholder: "填写处理说明", loginFailed: "用户名或密码错误",
    allCommunities: "全部小区", check: "检查项", share: "合格率", failed: "不合格", total: "次数",
    failingDevices: "不合格设备", noFindings: "该时段没有检查记录",
    sev: { critical: "紧急", major: "重要", minor: "次要", warning: "提示" },
    actions: { raised: "产生", updated: "再次发生", acknowledged: "确认", commented: "备注", cleared: "解除",
               escalated: "升级", notified: "通知", dispatched: "派遣", on_site: "到场", resolved: "处置结果",
               closed: "结案" },
    actors: { engine: "系统", linkage: "联动", compliance: "合规检查", device: "设备", operator: "值班员" },
    roles: { admin: "管理员", manager: "物业经理", operator: "值班员", viewer: "只读" },
    results: { real: "真实警情", false_alarm: "误报", test: "测试", device_fault: "设备故障" },
    handling: { dispatched: "已派遣", on_site: "已到场", resolved: "已处置", closed: "已结案" },
    workflow: "处置流程", dispatch: "派遣", dispatchTo: "派给谁（人员或班组）", onSite: "已到场",
    resolve: "提交处置结果", resultComment: "处置说明（必填）", close: "结案", closeReason: "结案说明（必填）",
    clearReason: "解除原因（必填）",
    families: { ebike_charger: "电动车充电桩", smoke_alarm: "烟感", gas_alarm: "燃气报警器", light: "照明",
                elevator: "电梯", access_door: "门禁", cctv_recorder: "录像机" },
    checks: { auto_cutoff: "自动断电", protection_config: "保护设置", fault_alarm: "故障报警",
              cctv_retention: "录像保存≥30天", linkage: "联动", rescue: "困人救援", self_test: "探测器自检记录" },
    late: "超时断电", notCut: "未断电", worst: "最长断电耗时",
    devicesUnit: "台设备", onlineUnit: "在线",
    tabDeadLetters: "异常消息", deadLettersTitle: "被拒收的设备消息",
    deadLettersHelp: "设备发来但未被接收的消息及原因（调试接入时查看）。", searchDeviceUid: "设备编号",
    receivedAt: "接收时间", reason: "原因", topic: "主题", detailText: "说明", noDeadLetters: "没有被拒收的消息",
    allReasons: "全部原因",
    reasons: { malformed_json: "不是有效JSON", schema_violation: "字段不符合协议", unknown_device: "未登记设备",
               topic_mismatch: "主题与设备不符", family_mismatch: "设备类型不符", timestamp_out_of_window: "时间戳超出范围",
               oversize: "消息过大", bad_topic: "主题格式错误", unsupported_version: "协议版本不支持",
               device_disabled: "设备已停用", engine_output_refused: "告警结果写入被拒" },
    clearedUnacked: "已恢复 · 待确认", mute: "静音5分钟", mutedUntil: "已静音至", enableSound: "点击此处开启提示音",
    unackedCritical: "未确认的紧急告警", failedAction: "失败动作", related: "关联告警",
    derivedFrom: "随后离线，起因", derivedCount: "其中随后离线",
    pickAll: "全选未确认", batchComment: "批量确认说明（可选）", batchAck: "批量确认", anySeverity: "全部级别",
    anyFamily: "全部类型", anyBuilding: "全部楼栋", anyStatus: "全部状态", anyTime: "任意时间",
    statuses: { unacked: "未确认", active: "未关闭", cleared: "已恢复待确认" }, lastHours: "最近{n}小时",
    threshold: "报警阈值", thresholdNow: "按小区当前设置", escalation: "联动升级",
  },
  en: {
    appName: "Yiju · Duty room", username: "Username", password: "Password", login: "Log in", logout: "Log out",
    switchLang: "中文", tabBoard: "Alarms", tabDevices: "Devices", tabCompliance: "Compliance",
    live: "Live", offline: "Offline", noAlarms: "No open alarms", buildings: "Buildings", devices: "Devices",
    searchDevice: "Search device id or location", all: "All", online: "Online", offlineState: "Offline",
    never: "Never reported", deviceUid: "Device", family: "Family", location: "Location", presence: "Status",
    lastSeen: "Last seen", openAlarms: "Alarms", more: "More", complianceTitle: "Compliance (last 30 days)",
    acknowledge: "Acknowledge", comment: "Comment", clear: "Clear", detail: "Details", acknowledged: "Acknowledged",
    unacknowledged: "Unacknowledged", cleared: "Cleared", active: "Active", first: "First", last: "Last",
    times: "×", newCritical: "New critical alarm", history: "History", telemetry: "Recent device data",
    noTelemetry: "No data", send: "Send", commentPlaceholder: "What was done", loginFailed: "Wrong username or password",
    allCommunities: "All communities", check: "Check", share: "Met", failed: "Failed", total: "Count",
    failingDevices: "Failing devices", noFindings: "No findings in this period",
    sev: { critical: "Critical", major: "Major", minor: "Minor", warning: "Warning" },
    actions: { raised: "raised", updated: "occurred again", acknowledged: "acknowledged", commented: "comment",
               cleared: "cleared", escalated: "escalated", notified: "notified", dispatched: "dispatched",
               on_site: "on site", resolved: "result", closed: "closed" },
    actors: { engine: "system", linkage: "linkage", compliance: "compliance check", device: "device", operator: "operator" },
    roles: { admin: "administrator", manager: "manager", operator: "operator", viewer: "viewer" },
    results: { real: "Real alarm", false_alarm: "False alarm", test: "Test", device_fault: "Device fault" },
    handling: { dispatched: "Dispatched", on_site: "On site", resolved: "Resolved", closed: "Closed" },
    workflow: "Handling", dispatch: "Dispatch", dispatchTo: "To whom (person or team)", onSite: "On site",
    resolve: "Record result", resultComment: "What was found (required)", close: "Close",
    closeReason: "Reason for closing (required)", clearReason: "Reason for clearing (required)",
    families: { ebike_charger: "E-bike charger", smoke_alarm: "Smoke alarm", gas_alarm: "Gas alarm", light: "Light",
                elevator: "Elevator", access_door: "Access door", cctv_recorder: "CCTV recorder" },
    checks: { auto_cutoff: "Auto power-off", protection_config: "Protection settings", fault_alarm: "Fault alarm",
              cctv_retention: "CCTV retention ≥ 30 d", linkage: "Linkage", rescue: "Rescue timing",
              self_test: "Detector self-test records" },
    late: "Cut late", notCut: "Not cut", worst: "Slowest cut",
    devicesUnit: "devices", onlineUnit: "online",
    tabDeadLetters: "Dead letters", deadLettersTitle: "Refused device messages",
    deadLettersHelp: "Messages devices sent that were not accepted, with the reason (for commissioning).",
    searchDeviceUid: "Device id", receivedAt: "Received", reason: "Reason", topic: "Topic", detailText: "Detail",
    noDeadLetters: "No refused messages", allReasons: "All reasons",
    reasons: { malformed_json: "Not valid JSON", schema_violation: "Schema violation", unknown_device: "Unknown device",
               topic_mismatch: "Topic mismatch", family_mismatch: "Family mismatch",
               timestamp_out_of_window: "Timestamp out of window", oversize: "Too large", bad_topic: "Bad topic",
               unsupported_version: "Unsupported version", device_disabled: "Device disabled",
               engine_output_refused: "Engine output refused" },
    clearedUnacked: "Cleared · awaiting acknowledgement", mute: "Mute 5 min", mutedUntil: "Muted until",
    enableSound: "Click here to enable the alarm sound", unackedCritical: "Unacknowledged critical alarms",
    failedAction: "Failed action", related: "Related alarms",
    derivedFrom: "Offline after", derivedCount: "offline after the cause",
    pickAll: "Select all unacknowledged", batchComment: "Comment for all (optional)", batchAck: "Acknowledge selected",
    anySeverity: "Any severity", anyFamily: "Any family", anyBuilding: "Any building", anyStatus: "Any status",
    anyTime: "Any time", statuses: { unacked: "Unacknowledged", active: "Active", cleared: "Cleared, unacknowledged" },
    lastHours: "Last {n} h", threshold: "Alarm threshold", thresholdNow: "the community's current setting",
    escalation: "Escalation",
  },
};

const state = {
  lang: localStorage.getItem("yiju.lang") || "zh",
  token: localStorage.getItem("yiju.token"),
  user: null,
  community: localStorage.getItem("yiju.community") || "",
  alarms: new Map(),        // id -> alarm (open ones, plus recently changed)
  lastEventId: null,        // stream high watermark, for resuming after a drop
  stream: null,             // AbortController of the running stream
  tab: "board",
  devicesCursor: null,
  deadLettersCursor: null,
  audio: null,
  alertLoop: null,
  filters: {},              // board filters (YijuBoard.matches)
  picked: new Set(),        // alarm ids ticked for batch acknowledge          // YijuBoard.alertLoop: banner + sound until acknowledged; stopped at logout
};

const $ = (sel) => document.querySelector(sel);
const t = (key) => I18N[state.lang][key] ?? key;
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : "—";

// ------------------------------------------------------------------------------------------------
// API

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.json !== undefined) { headers["Content-Type"] = "application/json"; options.body = JSON.stringify(options.json); }
  const res = await fetch(API + path, { ...options, headers });
  if (res.status === 401 && !path.startsWith("/auth/login")) { logout(); throw new Error("unauthorized"); }
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) { const err = new Error(body?.message || res.statusText); err.status = res.status; throw err; }
  return body;
}

const communityQuery = () => (state.community ? `community_id=${state.community}` : "");

// ------------------------------------------------------------------------------------------------
// Language

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.title = t("appName");
  setLive(state.stream !== null && $("#live").classList.contains("on"));
  if (state.user) { renderWho(); renderBoard(); renderCommunities(); if (state.tab !== "board") showTab(state.tab); }
}

// ------------------------------------------------------------------------------------------------
// Login

async function login(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  $("#login-error").textContent = "";
  ensureAudio(); // a user gesture: browsers only allow sound after one
  try {
    const res = await api("/auth/login", { method: "POST", json: { username: form.get("username"), password: form.get("password") } });
    state.token = res.token;
    localStorage.setItem("yiju.token", res.token);
    await start();
  } catch (e) {
    $("#login-error").textContent = e.status === 401 || e.status === 422 ? t("loginFailed") : e.message;
  }
}

function logout() {
  if (state.token) fetch(API + "/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${state.token}` } }).catch(() => {});
  state.token = null; state.user = null;
  localStorage.removeItem("yiju.token");
  stopStream();
  if (state.alertLoop) state.alertLoop.stop();
  state.alertLoop = null;
  state.alarms = new Map();
  $("#critical-banner").hidden = true;
  $("#app-view").hidden = true;
  $("#login-view").hidden = false;
}

async function start() {
  try { state.user = await api("/auth/me"); } catch { logout(); return; }
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  renderWho();
  const comms = await api("/communities?limit=500");
  state.communities = comms.items;
  if (state.community && !comms.items.some((c) => String(c.id) === state.community)) state.community = "";
  renderCommunities();
  if (!state.alertLoop) state.alertLoop = YijuBoard.alertLoop(beep);
  applyLang();
  startStream();
}

function renderWho() {
  if (state.user) $("#who").textContent = `${state.user.display_name || state.user.username} · ${t("roles")[state.user.role] || state.user.role}`;
}

function renderCommunities() {
  const sel = $("#community");
  const opts = [`<option value="">${esc(t("allCommunities"))}</option>`].concat(
    (state.communities || []).map((c) => `<option value="${c.id}">${esc(c.name)}</option>`));
  sel.innerHTML = opts.join("");
  sel.value = state.community;
}

// ------------------------------------------------------------------------------------------------
// Live stream (SSE over fetch, so the bearer token goes in a header); resumes from the last id

function setLive(on) {
  const el = $("#live");
  el.classList.toggle("on", on); el.classList.toggle("off", !on);
  el.textContent = on ? t("live") : t("offline");
}

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
  setLive(false);
}

async function loadOpenAlarms() {
  // board=true: active alarms and cleared ones nobody acknowledged yet (nothing vanishes, issue 13)
  const q = ["board=true", "order=worst", "limit=500", communityQuery()].filter(Boolean).join("&");
  const page = await api(`/alarms?${q}`);
  state.alarms = new Map(page.items.map((a) => [a.id, a]));
  renderBoard();
}

async function startStream() {
  stopStream();
  const controller = new AbortController();
  state.stream = controller;
  let delay = 500;
  while (state.stream === controller) {
    try {
      const params = [communityQuery(), state.lastEventId !== null ? `since=${state.lastEventId}` : ""].filter(Boolean).join("&");
      const res = await fetch(`${API}/alarms/stream${params ? "?" + params : ""}`, {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" }, signal: controller.signal,
      });
      if (res.status === 401) { logout(); return; }
      if (!res.ok) throw new Error(`stream ${res.status}`);
      delay = 500;
      await readEvents(res.body, controller);
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 5000);
  }
}

async function readEvents(body, controller) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!controller.signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      const msg = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        if (i > 0) msg[line.slice(0, i)] = line.slice(i + 1).trimStart();
      }
      if (msg.id) state.lastEventId = Number(msg.id);
      if (msg.event === "ready") { setLive(true); await loadOpenAlarms(); }
      else if (msg.event === "alarm") onAlarmEvent(JSON.parse(msg.data));
    }
  }
}

function onAlarmEvent(ev) {
  const alarm = ev.alarm;
  const known = state.alarms.has(alarm.id);
  state.alarms.set(alarm.id, alarm);
  if (ev.action === "raised" && alarm.severity === "critical" && !known) alarm._newCritical = true;
  renderBoard(); // the banner and the sound follow the board (updateAlerting)
  if (state.detailId === alarm.id) openDetail(alarm.id);
}

// ------------------------------------------------------------------------------------------------
// Sound and the critical banner

function ensureAudio() {
  if (!state.audio && window.AudioContext) state.audio = new AudioContext();
  if (state.audio && state.audio.state === "suspended") state.audio.resume();
}

// One beep; true when the page could actually play it (browsers suspend audio until a user gesture).
function beep() {
  ensureAudio();
  const ctx = state.audio;
  if (!ctx || ctx.state !== "running") return false;
  // three short two-tone beeps: recognisable over a noisy duty room
  for (let i = 0; i < 3; i++) {
    for (const [offset, freq] of [[0, 880], [0.18, 660]]) {
      const osc = ctx.createOscillator(); const gain = ctx.createGain();
      const at = ctx.currentTime + i * 0.5 + offset;
      osc.frequency.value = freq; osc.type = "square";
      gain.gain.setValueAtTime(0.0001, at); gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.16);
      osc.connect(gain).connect(ctx.destination); osc.start(at); osc.stop(at + 0.17);
    }
  }
  return true;
}

// The banner and the repeating sound follow the unacknowledged critical alarms on the board, also those
// raised before login; the state is mirrored on the banner's data-* attributes (read by the tests).
function updateAlerting() {
  const banner = $("#critical-banner");
  const pending = YijuBoard.alerting([...state.alarms.values()].filter(inScope));
  if (state.alertLoop) state.alertLoop.update(pending.length);
  banner.hidden = pending.length === 0;
  if (!pending.length) { banner.dataset.sounding = "false"; return; }
  const top = pending[0];
  const loop = state.alertLoop;
  const muted = loop && loop.muted();
  const more = pending.length > 1 ? ` (+${pending.length - 1})` : "";
  $("#critical-text").textContent = `⚠ ${t("unackedCritical")}: ${alarmLabel(top)} · ${where(top)}${more}` +
    (muted ? ` · ${t("mutedUntil")} ${fmtTime(new Date(loop.mutedUntil).toISOString())}` : "") +
    (!muted && state.audio?.state !== "running" ? ` · ${t("enableSound")}` : "");
  $("#mute-sound").textContent = t("mute");
  banner.dataset.alarm = top.id;
  banner.dataset.sounding = String(!muted);
  banner.dataset.beeps = String(loop ? loop.beeps : 0);
  banner.dataset.audio = state.audio ? state.audio.state : "none";
}

// ------------------------------------------------------------------------------------------------
// The board

const alarmLabel = (a) => (state.lang === "zh" ? a.type_zh : a.type_en) || a.type;
// building · unit · floor · room (or shed · post · port) · device (YijuBoard.place)
const where = (a) => [...YijuBoard.place(a, state.lang), a.device_uid].filter(Boolean).join(" · ");
const inScope = (a) => !state.community || String(a.community_id) === state.community;

// One alarm card; members of an incident are nested cards of the same shape.
function alarmCard(a, canAct, members = []) {
  const reading = YijuBoard.reading(a, state.lang);
  const failed = YijuBoard.failedAction(a, state.lang);
  return `
    <article class="alarm card ${a.severity}${a._newCritical && !a.acknowledged ? " new-critical" : ""}${a.derived ? " derived" : ""}" data-alarm="${a.id}" data-status="${a.status}" data-acknowledged="${a.acknowledged}" data-members="${members.length}"${a.derived ? ` data-cause="${a.cause}"` : ""}>
      <div class="title">${canAct && !a.acknowledged ? `<input type="checkbox" class="pick" data-pick="${a.id}" aria-label="select"${state.picked.has(a.id) ? " checked" : ""}>` : ""}<strong>${esc(alarmLabel(a))}</strong><span class="pill sev-${a.severity}">${esc(t("sev")[a.severity])}</span></div>
      <div class="where">${esc(where(a))}</div>
      ${a.derived ? `<div class="derived-mark">${esc(t("derivedFrom"))}: ${esc(alarmLabel(state.alarms.get(a.cause) || { type: "" }))}</div>` : ""}
      ${failed ? `<div class="failed-action">${esc(t("failedAction"))}: ${esc(failed)}</div>` : ""}
      ${reading ? `<div class="reading">${esc(reading)}</div>` : ""}
      <div class="state">
        ${a.status === "cleared" ? `<span class="cleared-mark">${esc(t("clearedUnacked"))}</span> ·` : ""}
        ${a.handling ? `<span class="handling">${esc(t("handling")[a.handling])}</span> ·` : ""}
        <span class="${a.acknowledged ? "acked" : "unacked"}">${esc(a.acknowledged ? t("acknowledged") : t("unacknowledged"))}</span>
        · ${esc(t("first"))} ${esc(fmtTime(a.first_at))} · ${a.occurrences} ${esc(t("times"))}
      </div>
      <div class="actions">
        ${canAct && !a.acknowledged ? `<button class="primary" data-act="acknowledge">${esc(t("acknowledge"))}</button>` : ""}
        <button data-act="detail">${esc(t("detail"))}</button>
        ${canAct && a.status === "active" ? `<button class="danger" data-act="clear">${esc(t("clear"))}</button>` : ""}
      </div>
      ${members.length ? `<details class="members" open><summary>${esc(t("related"))} ${members.length}${members.some((m) => m.derived) ? ` · ${esc(t("derivedCount"))} ${members.filter((m) => m.derived).length}` : ""}</summary>${members.map((m) => alarmCard(m, canAct)).join("")}</details>` : ""}
    </article>`;
}

// Filter options come from the alarms on the board, so every choice matches something.
function renderFilters(all) {
  const opts = (key, anyLabel, pairs) => {
    const sel = $(`#board-filters [data-filter=${key}]`);
    const current = state.filters[key] || "";
    sel.innerHTML = [`<option value="">${esc(t(anyLabel))}</option>`]
      .concat(pairs.map(([v, label]) => `<option value="${esc(v)}">${esc(label)}</option>`)).join("");
    sel.value = pairs.some(([v]) => String(v) === current) ? current : "";
  };
  const uniq = (pairs) => [...new Map(pairs).entries()];
  opts("severity", "anySeverity", ["critical", "major", "minor", "warning"].map((s) => [s, t("sev")[s]]));
  opts("family", "anyFamily", uniq(all.map((a) => [a.family, t("families")[a.family] || a.family])));
  opts("building", "anyBuilding", uniq(all.filter((a) => a.building_id != null).map((a) => [String(a.building_id), a.building_name])));
  opts("status", "anyStatus", Object.entries(t("statuses")));
  opts("sinceH", "anyTime", [1, 8, 24].map((n) => [String(n), t("lastHours").replace("{n}", n)]));
}

function renderBoard() {
  const all = [...state.alarms.values()].filter((a) => YijuBoard.onBoard(a) && inScope(a));
  renderFilters(all);
  const now = Date.now();
  const visible = all.filter((a) => YijuBoard.matches(a, state.filters, now));
  const pickable = new Set(visible.filter((a) => !a.acknowledged).map((a) => a.id));
  state.picked = new Set([...state.picked].filter((id) => pickable.has(id)));
  const counts = { critical: 0, major: 0, minor: 0, warning: 0 };
  visible.forEach((a) => counts[a.severity]++);
  $("#board-summary").innerHTML = Object.entries(counts)
    .map(([s, n]) => `<span class="pill sev-${s}">${esc(t("sev")[s])} ${n}</span>`).join("");
  $("#board-empty").hidden = visible.length > 0;
  const canAct = state.user && state.user.role !== "viewer";
  $("#board").innerHTML = YijuBoard.incidents(visible).map((i) => alarmCard(i.lead, canAct, i.members)).join("");
  $("#batch-bar").hidden = !canAct;
  $("#batch-count").textContent = String(state.picked.size);
  $("#batch-ack").disabled = state.picked.size === 0;
  $("#pick-all").checked = pickable.size > 0 && state.picked.size === pickable.size;
  updateAlerting();
}

async function act(alarmId, action, comment) {
  const path = `/alarms/${alarmId}/${action}`;
  // comment: the text of a comment, or the body of a workflow step ({to}, {result, comment}, {comment})
  const json = typeof comment === "object" ? comment : action === "comment" ? { text: comment } : (comment ? { comment } : {});
  const res = await api(path, { method: "POST", json });
  state.alarms.set(res.alarm.id, res.alarm);
  renderBoard(); // the banner and the sound stop once no unacknowledged critical alarm is left
  if (state.detailId === alarmId) openDetail(alarmId);
}

// ------------------------------------------------------------------------------------------------
// Alarm detail with the device's recent telemetry

let detailRequests = 0; // openDetail calls so far: only the latest one may render
async function openDetail(alarmId) {
  const reopen = state.detailId === alarmId && !$("#detail").hidden;
  state.detailId = alarmId;
  const asked = ++detailRequests;
  const alarm = await api(`/alarms/${alarmId}`);
  // a live event and an action both re-open the detail; their answers can arrive out of order, and
  // an older one rendered last would show a history without the step just taken
  if (asked !== detailRequests) return;
  // a live update re-renders the detail: keep what the operator was typing in its forms
  const typed = reopen
    ? [...document.querySelectorAll("#detail-content form [name]")].filter((el) => el.value)
      .map((el) => [`form${el.form.dataset.flow ? `[data-flow="${el.form.dataset.flow}"]` : ""} [name="${el.name}"]`, el.value])
    : [];
  const canAct = state.user.role !== "viewer";

  const history = alarm.history.map((h) => `<li data-action="${esc(h.action)}"><b>${esc(fmtTime(h.at))}</b> ${esc(t("actions")[h.action] || h.action)}${historyDetail(h)} · ${esc(actorName(h))}${h.comment ? ` — ${esc(h.comment)}` : ""}</li>`).join("");
  $("#detail-content").innerHTML = `
    <h2>${esc(alarmLabel(alarm))} <span class="pill sev-${alarm.severity}">${esc(t("sev")[alarm.severity])}</span></h2>
    <p>${esc(where(alarm))}</p>
    <p class="muted">${esc(alarm.status === "active" ? t("active") : t("cleared"))} · ${esc(alarm.acknowledged ? t("acknowledged") : t("unacknowledged"))}
      · ${esc(t("first"))} ${esc(fmtTime(alarm.first_at))} · ${esc(t("last"))} ${esc(fmtTime(alarm.last_at))}</p>
    <div class="actions">
      ${canAct && !alarm.acknowledged ? `<button class="primary" data-detail-act="acknowledge">${esc(t("acknowledge"))}</button>` : ""}
    </div>
    ${canAct ? workflowForms(alarm) : ""}
    <h3>${esc(t("telemetry"))}</h3><div id="charts">…</div>
    <h3>${esc(t("escalation"))}</h3><div id="escalation" class="escalation">…</div>
    <h3>${esc(t("history"))}</h3><ul class="history">${history}</ul>
    ${canAct ? `<form class="comment-form" id="comment-form"><input name="text" required maxlength="2000" placeholder="${esc(t("commentPlaceholder"))}"><button type="submit">${esc(t("send"))}</button></form>` : ""}`;
  for (const [sel, value] of typed) { const el = $(`#detail-content ${sel}`); if (el) el.value = value; }
  $("#detail").hidden = false;
  renderCharts(alarm);
  renderEscalation(alarm.id);  // api/static/linkage.js
}

// The person's display name, or the system actor in the UI language (never "engine" in the Chinese UI).
const actorName = (h) => h.actor_name || t("actors")[h.actor] || h.actor;
function historyDetail(h) {
  if (h.action === "dispatched" && h.details?.to) return ` → ${esc(h.details.to)}`;
  if (h.action === "resolved" && h.details?.result) return `: ${esc(t("results")[h.details.result] || h.details.result)}`;
  return "";
}

// The handling workflow (处置流程): only the steps that may follow the current one (storage/alarms.py
// `handle` enforces the same order). Clear and close need a reason.
function workflowForms(a) {
  if (a.handling === "closed") return "";
  const forms = [];
  const resultForm = `<form class="flow" data-flow="resolve"><select name="result" required>
      ${Object.entries(t("results")).map(([k, v]) => `<option value="${k}">${esc(v)}</option>`).join("")}</select>
      <input name="comment" required maxlength="2000" placeholder="${esc(t("resultComment"))}">
      <button type="submit">${esc(t("resolve"))}</button></form>`;
  if (a.acknowledged && !a.handling) {
    forms.push(`<form class="flow" data-flow="dispatch"><input name="to" required maxlength="200" placeholder="${esc(t("dispatchTo"))}"><button type="submit">${esc(t("dispatch"))}</button></form>`);
  }
  if (a.handling === "dispatched") forms.push(`<form class="flow" data-flow="on-site"><button type="submit">${esc(t("onSite"))}</button></form>`);
  if (a.acknowledged && a.handling !== "resolved") forms.push(resultForm);
  if (a.handling === "resolved") {
    forms.push(`<form class="flow" data-flow="close"><input name="comment" required maxlength="2000" placeholder="${esc(t("closeReason"))}"><button type="submit" class="primary">${esc(t("close"))}</button></form>`);
  }
  if (a.status === "active") {
    forms.push(`<form class="flow" data-flow="clear"><input name="comment" required maxlength="2000" placeholder="${esc(t("clearReason"))}"><button type="submit" class="danger">${esc(t("clear"))}</button></form>`);
  }
  return `<h3>${esc(t("workflow"))}</h3><div class="workflow">${forms.join("")}</div>`;
}

// Charts that explain (issue 13 §6): GET /alarms/{id}/chart says the window (minutes before the alarm
// to minutes after it cleared, or now), the metrics with the triggering one first, their names and units
// (devices/metrics.py) and the threshold that raised the alarm; each series comes from the telemetry
// endpoint, which answers long windows from the hourly rollup.
async function renderCharts(alarm) {
  let chart;
  try { chart = await api(`/alarms/${alarm.id}/chart`); } catch { chart = { series: [] }; }
  if (!chart.series.length) { $("#charts").innerHTML = `<p class="muted">${esc(t("noTelemetry"))}</p>`; return; }
  const range = `since=${encodeURIComponent(chart.since)}&until=${encodeURIComponent(chart.until)}`;
  const datas = await Promise.all(chart.series.map((m) =>
    api(`/devices/${alarm.device_id}/telemetry?metric=${encodeURIComponent(m.metric)}&channel=${m.channel}&${range}`)));
  $("#charts").innerHTML = chart.series.map((m, i) => {
    const label = state.lang === "zh" ? m.label_zh : m.label_en;
    const th = m.threshold;
    const thText = th ? ` · ${t("threshold")} ${th.direction === "below" ? "≤" : "≥"} ${th.value}${m.unit ? ` ${m.unit}` : ""}` : "";
    return `<p class="muted chart-title" data-metric="${esc(m.metric)}" data-trigger="${m.trigger}">${esc(label)}${m.unit ? ` (${esc(m.unit)})` : ""}${m.channel ? ` #${m.channel}` : ""}</p>`
      + (th ? `<p class="muted chart-threshold" title="${esc(th.setting || "")}">${esc(thText.slice(3))}${th.source === "settings" ? ` <span class="muted">(${esc(t("thresholdNow"))})</span>` : ""}</p>` : "")
      + chartSvg(datas[i], new Date(alarm.first_at), th);
  }).join("");
}

function chartSvg(data, markAt, threshold = null) {
  const W = 640, H = 200, L = 44, R = 10, T = 10, B = 24;
  const pts = data.resolution === "raw"
    ? data.points.map((p) => ({ x: new Date(p.ts).getTime(), y: p.value }))
    : data.buckets.map((b) => ({ x: new Date(b.bucket).getTime(), y: b.avg_value, lo: b.min_value, hi: b.max_value }));
  if (!pts.length) return `<p class="muted">${esc(t("noTelemetry"))}</p>`;
  const x0 = new Date(data.since).getTime(), x1 = new Date(data.until).getTime();
  const ys = pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]).concat(threshold ? [threshold.value] : []);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const line = pts.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
  const band = data.resolution === "hour"
    ? `<path class="band" d="${pts.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.hi).toFixed(1)}`).join("")}${pts.slice().reverse().map((p) => `L${sx(p.x).toFixed(1)},${sy(p.lo).toFixed(1)}`).join("")}Z"/>` : "";
  const mx = sx(markAt.getTime());
  const ty = threshold ? sy(threshold.value).toFixed(1) : null;
  const hhmm = (ms) => new Date(ms).toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit", hour12: false });
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(data.metric)}" data-resolution="${esc(data.resolution)}">
    <line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>
    <text x="4" y="${T + 10}">${y1.toFixed(1)}</text><text x="4" y="${H - B}">${y0.toFixed(1)}</text>
    <text x="${L}" y="${H - 6}">${hhmm(x0)}</text><text x="${W - R - 34}" y="${H - 6}">${hhmm(x1)}</text>
    ${band}<path class="line" d="${line}"/>
    ${ty !== null ? `<line class="threshold" data-threshold="${threshold.value}" x1="${L}" y1="${ty}" x2="${W - R}" y2="${ty}"/><text class="threshold-label" x="${W - R - 4}" y="${Number(ty) - 3}" text-anchor="end">${threshold.value}</text>` : ""}
    ${mx >= L && mx <= W - R ? `<line class="mark" x1="${mx}" y1="${T}" x2="${mx}" y2="${H - B}"/>` : ""}
  </svg>`;
}

// ------------------------------------------------------------------------------------------------
// Devices and buildings

async function loadDevices(append = false) {
  const search = $("#device-search").value.trim();
  const online = $("#device-online").value;
  const q = [communityQuery(), search ? `q=${encodeURIComponent(search)}` : "", online ? `online=${online}` : "",
    append && state.devicesCursor ? `cursor=${state.devicesCursor}` : "", "limit=100"].filter(Boolean).join("&");
  const page = await api(`/devices?${q}`);
  state.devicesCursor = page.next_cursor;
  $("#devices-more").hidden = !page.next_cursor;
  const rows = page.items.map((d) => `<tr>
      <td>${esc(d.uid)}</td><td>${esc(t("families")[d.family] || d.family)}</td>
      <td>${esc([d.building_name, d.location_name].filter(Boolean).join(" · "))}</td>
      <td><span class="dot ${d.online ? "on" : d.online === false ? "off" : ""}"></span>${esc(d.online ? t("online") : d.online === false ? t("offlineState") : t("never"))}</td>
      <td>${esc(fmtTime(d.last_seen))}</td><td>${d.open_alarms || ""}</td></tr>`).join("");
  if (append) $("#device-rows").insertAdjacentHTML("beforeend", rows); else $("#device-rows").innerHTML = rows;
}

async function loadBuildings() {
  const page = await api(`/buildings?limit=500${state.community ? "&" + communityQuery() : ""}`);
  $("#buildings").innerHTML = page.items.map((b) => {
    const cls = b.critical ? "bad" : (b.major || b.offline) ? "warn" : "";
    const sev = ["critical", "major", "minor", "warning"].filter((s) => b[s])
      .map((s) => `<span class="pill sev-${s}">${esc(t("sev")[s])} ${b[s]}</span>`).join(" ");
    return `<div class="building card ${cls}"><strong>${esc(b.name)}</strong>
      <div class="counts">${b.devices} ${esc(t("devicesUnit"))} · ${b.online} ${esc(t("onlineUnit"))} · ${b.offline} ${esc(t("offlineState"))} · <span class="never-count">${b.unknown} ${esc(t("never"))}</span></div>
      <div>${sev}</div></div>`;
  }).join("");
}

// ------------------------------------------------------------------------------------------------
// Compliance

async function loadCompliance() {
  const target = $("#compliance");
  const ids = state.community ? [state.community] : (state.communities || []).map((c) => String(c.id));
  const parts = [];
  for (const id of ids) {
    const name = (state.communities || []).find((c) => String(c.id) === id)?.name || id;
    const s = await api(`/compliance/summary?community_id=${id}`);
    if (!s.by_check.length) { parts.push(`<h3>${esc(name)}</h3><p class="muted">${esc(t("noFindings"))}</p>`); continue; }
    // an auto-cutoff failure is either late (cut after the deadline, with the delay) or not cut at all
    const cutoff = (c) => (c.check_name === "auto_cutoff" && c.failed
      ? ` <span class="muted">(${esc(t("late"))} ${c.late} · ${esc(t("notCut"))} ${c.not_cut}${c.worst_measured_s == null ? "" : ` · ${esc(t("worst"))} ${Math.round(c.worst_measured_s)} s`})</span>`
      : "");
    const rows = s.by_check.map((c) => {
      const pct = Math.round(c.share * 1000) / 10;
      return `<tr><td>${esc(t("checks")[c.check_name] || c.check_name)}</td><td>${c.total}</td><td>${c.failed}${cutoff(c)}</td>
        <td><div class="bar ${pct < 95 ? "low" : ""}"><span style="width:${pct}%"></span></div> ${pct}%</td></tr>`;
    }).join("");
    const failing = s.failing_devices.slice(0, 20).map((d) => `<li>${esc(d.device_uid)} · ${esc(t("checks")[d.check_name] || d.check_name)} · ${d.failed}/${d.total}${cutoff(d)}</li>`).join("");
    parts.push(`<h3>${esc(name)}</h3><table class="compliance-table"><thead><tr><th>${esc(t("check"))}</th><th>${esc(t("total"))}</th><th>${esc(t("failed"))}</th><th>${esc(t("share"))}</th></tr></thead><tbody>${rows}</tbody></table>
      ${failing ? `<h4>${esc(t("failingDevices"))}</h4><ul>${failing}</ul>` : ""}`);
  }
  target.innerHTML = parts.join("");
}

// ------------------------------------------------------------------------------------------------
// Dead letters: what devices sent that ingest refused, with the reason (GET /dead-letters)

function renderReasonFilter() {
  const sel = $("#dl-reason");
  const current = sel.value;
  sel.innerHTML = [`<option value="">${esc(t("allReasons"))}</option>`].concat(
    Object.entries(t("reasons")).map(([k, v]) => `<option value="${k}">${esc(v)}</option>`)).join("");
  sel.value = current;
}

async function loadDeadLetters(append = false) {
  const reason = $("#dl-reason").value;
  const uid = $("#dl-device").value.trim();
  const q = [communityQuery(), reason ? `reason=${reason}` : "", uid ? `device_uid=${encodeURIComponent(uid)}` : "",
    append && state.deadLettersCursor ? `cursor=${state.deadLettersCursor}` : "", "limit=100"].filter(Boolean).join("&");
  let page;
  try { page = await api(`/dead-letters?${q}`); } catch (e) { if (e.status === 422) page = { items: [], next_cursor: null }; else throw e; }
  state.deadLettersCursor = page.next_cursor;
  $("#dl-more").hidden = !page.next_cursor;
  const rows = page.items.map((d) => `<tr data-reason="${esc(d.reason)}">
      <td>${esc(fmtTime(d.received_at))}</td><td>${esc(t("reasons")[d.reason] || d.reason)}</td>
      <td>${esc(d.device_uid || "—")}</td><td class="mono">${esc(d.topic)}</td>
      <td>${esc(d.detail)}${d.payload_text ? `<details><summary>payload</summary><pre>${esc(d.payload_text)}</pre></details>` : ""}</td></tr>`).join("");
  if (append) $("#dl-rows").insertAdjacentHTML("beforeend", rows); else $("#dl-rows").innerHTML = rows;
  $("#dl-empty").hidden = append || page.items.length > 0;
}

// ------------------------------------------------------------------------------------------------
// Wiring

function showTab(tab) {
  state.tab = tab;
  document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== `tab-${tab}`; });
  if (tab === "devices") { loadBuildings(); loadDevices(); }
  if (tab === "compliance") loadCompliance();
  if (tab === "deadletters") { renderReasonFilter(); loadDeadLetters(); }
  if (tab === "linkage") loadLinkage();  // api/static/linkage.js
  if (tab === "site") loadSite();  // api/static/site.js
  if (tab === "history") loadHistory();  // api/static/history.js
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  document.querySelectorAll(".lang-toggle").forEach((b) => b.addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("yiju.lang", state.lang);
    applyLang();
  }));
  $("#logout").addEventListener("click", logout);
  document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#community").addEventListener("change", (e) => {
    state.community = e.target.value;
    localStorage.setItem("yiju.community", state.community);
    state.lastEventId = null;
    startStream();
    if (state.tab !== "board") showTab(state.tab);
  });
  $("#board-filters").addEventListener("change", (e) => {
    state.filters[e.target.dataset.filter] = e.target.value;
    renderBoard();
  });
  $("#board").addEventListener("change", (e) => {
    if (!e.target.matches("input.pick")) return;
    const id = Number(e.target.dataset.pick);
    if (e.target.checked) state.picked.add(id); else state.picked.delete(id);
    renderBoard();
  });
  $("#pick-all").addEventListener("change", (e) => {
    const now = Date.now();
    state.picked = new Set(e.target.checked ? [...state.alarms.values()]
      .filter((a) => YijuBoard.onBoard(a) && inScope(a) && !a.acknowledged && YijuBoard.matches(a, state.filters, now))
      .map((a) => a.id) : []);
    renderBoard();
  });
  $("#batch-ack").addEventListener("click", async () => {
    ensureAudio();
    const ids = [...state.picked];
    const comment = $("#batch-comment").value.trim();
    await api("/alarms/batch-acknowledge", { method: "POST", json: comment ? { ids, comment } : { ids } });
    state.picked.clear();
    $("#batch-comment").value = "";
    await loadOpenAlarms();
  });
  $("#board").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-act]");
    if (!button) return;
    ensureAudio();
    const id = Number(button.closest("[data-alarm]").dataset.alarm);
    if (button.dataset.act === "detail") openDetail(id);
    else if (button.dataset.act === "clear") { await openDetail(id); $("#detail form[data-flow=clear] input").focus(); } // a reason first
    else await act(id, button.dataset.act);
  });
  $("#detail").addEventListener("click", async (e) => {
    if (e.target.id === "detail" || e.target.id === "detail-close") { $("#detail").hidden = true; state.detailId = null; return; }
    const button = e.target.closest("button[data-detail-act]");
    if (button) await act(state.detailId, button.dataset.detailAct);
  });
  $("#detail").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (e.target.dataset.flow) {
      try { await act(state.detailId, e.target.dataset.flow, Object.fromEntries(new FormData(e.target))); }
      catch (err) { e.target.insertAdjacentHTML("beforeend", `<p class="error" role="alert">${esc(err.message)}</p>`); }
      return;
    }
    const text = new FormData(e.target).get("text");
    if (String(text).trim()) await act(state.detailId, "comment", text);
  });
  $("#critical-banner").addEventListener("click", (e) => {
    ensureAudio(); // a gesture: sound for alarms that were already open at page load
    if (e.target.id === "mute-sound") { state.alertLoop?.mute(); updateAlerting(); return; }
    openDetail(Number(e.currentTarget.dataset.alarm));
  });
  document.addEventListener("yiju:alert-tick", updateAlerting);
  let searchTimer = null;
  $("#device-search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadDevices(), 300); });
  $("#device-online").addEventListener("change", () => loadDevices());
  $("#devices-more").addEventListener("click", () => loadDevices(true));
  $("#dl-reason").addEventListener("change", () => loadDeadLetters());
  let dlTimer = null;
  $("#dl-device").addEventListener("input", () => { clearTimeout(dlTimer); dlTimer = setTimeout(() => loadDeadLetters(), 300); });
  $("#dl-more").addEventListener("click", () => loadDeadLetters(true));
  applyLang();
  if (state.token) start(); else $("#login-view").hidden = false;
});
