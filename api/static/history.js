// Alarm history in the duty-room console (issue 13 §7): ended alarms (cleared or closed) searched by
// time, type, device, building and handling result, and the same filtered list exported as CSV or
// XLSX (GET /alarm-history/export; the server caps the rows and says so).
// Loaded after app.js; uses its api(), t(), esc(), fmtTime(), state, communityQuery() and openDetail().
"use strict";

Object.assign(I18N.zh, {
  tabHistory: "告警历史", historyTitle: "已结束的告警", from: "开始", to: "结束", anyType: "全部告警类型",
  anyResult: "全部处置结果", noResult: "未处置", search: "查询", exportCsv: "导出 CSV", exportXlsx: "导出 Excel",
  noHistory: "没有符合条件的告警", clearedAt: "恢复时间", clearedBy: "恢复人", resultCol: "处置结果",
  typeCol: "告警类型", severityCol: "级别", firstAt: "发生时间", exported: "已导出 {n} 条",
});
Object.assign(I18N.en, {
  tabHistory: "History", historyTitle: "Ended alarms", from: "From", to: "To", anyType: "Any alarm type",
  anyResult: "Any result", noResult: "Not handled", search: "Search", exportCsv: "Export CSV", exportXlsx: "Export Excel",
  noHistory: "No alarms match", clearedAt: "Cleared", clearedBy: "Cleared by", resultCol: "Result",
  typeCol: "Alarm type", severityCol: "Severity", firstAt: "Began", exported: "{n} rows exported",
});

const historyState = { cursor: null, types: null, buildingsFor: null };
const HISTORY_DEFAULT_DAYS = 7;

// <input type="datetime-local"> holds the browser's wall clock without an offset; the API needs one.
const localInput = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
const isoOf = (value) => (value ? new Date(value).toISOString() : "");

async function historyOptions() {
  if (!historyState.types) historyState.types = await api("/alarm-types");
  const typeSel = $("#h-type");
  const current = typeSel.value;
  typeSel.innerHTML = [`<option value="">${esc(t("anyType"))}</option>`].concat(historyState.types
    .map((a) => `<option value="${esc(a.type)}">${esc(state.lang === "zh" ? a.zh : a.en)}</option>`)).join("");
  typeSel.value = current;
  const resultSel = $("#h-result");
  const currentResult = resultSel.value;
  resultSel.innerHTML = [`<option value="">${esc(t("anyResult"))}</option>`].concat(Object.entries(t("results"))
    .map(([k, v]) => `<option value="${k}">${esc(v)}</option>`)).join("");
  resultSel.value = currentResult;
  if (historyState.buildingsFor !== state.community) {
    const page = await api(`/buildings?limit=500${state.community ? "&" + communityQuery() : ""}`);
    historyState.buildingsFor = state.community;
    $("#h-building").innerHTML = [`<option value="">${esc(t("anyBuilding"))}</option>`].concat(page.items
      .map((b) => `<option value="${b.id}">${esc(b.name)}</option>`)).join("");
  }
  if (!$("#h-since").value) $("#h-since").value = localInput(new Date(Date.now() - HISTORY_DEFAULT_DAYS * 86400e3));
}

function historyQuery() {
  const q = new URLSearchParams();
  if (state.community) q.set("community_id", state.community);
  const since = isoOf($("#h-since").value), until = isoOf($("#h-until").value);
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  for (const [key, sel] of [["type", "#h-type"], ["result", "#h-result"], ["building_id", "#h-building"]]) {
    if ($(sel).value) q.set(key, $(sel).value);
  }
  const device = $("#h-device").value.trim();
  if (device) q.set("device", device);
  return q;
}

function historyMessage(text, isError = false) {
  const el = $("#h-message");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function loadHistory(append = false) {
  await historyOptions();
  const q = historyQuery();
  q.set("limit", "100");
  if (append && historyState.cursor) q.set("cursor", historyState.cursor);
  let page;
  try { page = await api(`/alarm-history?${q}`); } catch (e) { historyMessage(e.message, true); return; }
  historyMessage("");
  historyState.cursor = page.next_cursor;
  $("#h-more").hidden = !page.next_cursor;
  const rows = page.items.map((a) => `<tr data-alarm="${a.id}" data-result="${esc(a.result || "")}">
      <td>${esc(fmtTime(a.first_at))}</td>
      <td>${esc(state.lang === "zh" ? a.type_zh : a.type_en)} <span class="pill sev-${a.severity}">${esc(t("sev")[a.severity])}</span></td>
      <td>${esc([a.building_name, a.location_name, a.device_uid].filter(Boolean).join(" · "))}</td>
      <td>${esc(fmtTime(a.cleared_at))}</td>
      <td>${esc(a.cleared_by_name || (a.cleared_by ? (t("actors")[a.cleared_by] || a.cleared_by) : ""))}</td>
      <td>${a.result ? esc(t("results")[a.result]) : `<span class="muted">${esc(t("noResult"))}</span>`}${a.result_comment ? ` <span class="muted">${esc(a.result_comment)}</span>` : ""}</td>
      <td><button type="button" data-history-open="${a.id}">${esc(t("detail"))}</button></td></tr>`).join("");
  if (append) $("#h-rows").insertAdjacentHTML("beforeend", rows); else $("#h-rows").innerHTML = rows;
  $("#h-empty").hidden = append || page.items.length > 0;
}

async function exportHistory(format) {
  const q = historyQuery();
  q.set("format", format);
  const res = await fetch(`${API}/alarm-history/export?${q}`, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    historyMessage(body?.message || res.statusText, true);
    return;
  }
  const blob = await res.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `告警历史.${format}`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60e3);
  historyMessage(t("exported").replace("{n}", res.headers.get("X-Yiju-Rows") || "?"));
}

document.addEventListener("DOMContentLoaded", () => {
  $("#history-filters").addEventListener("submit", (e) => { e.preventDefault(); loadHistory(); });
  $("#h-more").addEventListener("click", () => loadHistory(true));
  $("#h-export-csv").addEventListener("click", () => exportHistory("csv"));
  $("#h-export-xlsx").addEventListener("click", () => exportHistory("xlsx"));
  $("#h-rows").addEventListener("click", (e) => {
    const open = e.target.closest("button[data-history-open]");
    if (open) openDetail(Number(open.dataset.historyOpen));
  });
});
