// Indicator verification in the console (docs/indicators.md): the score sheet of the chosen community
// (view the HTML, download the PDF or JSON) and the inspection / test / maintenance form that a
// maintenance worker fills in on a phone. Loaded after app.js and uses its api(), state, $ and esc.
"use strict";

const IND_I18N = {
  zh: {
    tab: "指标核验", title: "智慧社区指标核验", community: "小区", from: "起", to: "止", unit: "一处故障计法",
    unitFacility: "每处设施计一次（默认，按原文“有一处不符合”）", unitDay: "每处设施每个故障日", unitEnd: "仅期末未修复",
    view: "查看报告", pdf: "下载 PDF", json: "下载 JSON", pick: "请先选择一个小区", busy: "正在生成…",
    total: "设备数据可证明项得分", records: "巡检 / 检测 / 维保记录", device: "设备编号（整个系统可不填）",
    system: "系统", kind: "类型", when: "时间", by: "执行人", result: "结果", notes: "备注", photo: "照片/扫描件",
    save: "保存记录", saved: "已保存", kinds: { inspection: "巡检", test: "检测", maintenance: "维保" },
    results: { pass: "合格", fail: "不合格", fixed: "已修复" }, recent: "最近记录", none: "暂无记录",
  },
  en: {
    tab: "Indicators", title: "Indicator verification", community: "Community", from: "From", to: "To",
    unit: "One fault counts", unitFacility: "each facility once (default, as the seed says)",
    unitDay: "each facility-day", unitEnd: "only what is still faulty at the end", view: "View report",
    pdf: "Download PDF", json: "Download JSON", pick: "Choose one community first", busy: "Generating…",
    total: "Device-evidenced items", records: "Inspection / test / maintenance records",
    device: "Device id (empty for a whole system)", system: "System", kind: "Kind", when: "When", by: "Done by",
    result: "Result", notes: "Notes", photo: "Photo / scan", save: "Save record", saved: "Saved",
    kinds: { inspection: "Inspection", test: "Test", maintenance: "Maintenance" },
    results: { pass: "Pass", fail: "Fail", fixed: "Fixed" }, recent: "Recent records", none: "No records yet",
  },
};
const it = (key) => IND_I18N[state.lang][key] ?? key;

function localDate(d) {
  const z = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return z.toISOString().slice(0, 10);
}

function renderIndicatorsForm() {
  const today = new Date();
  const from = new Date(today.getTime() - 29 * 86400000);
  const families = I18N[state.lang].families;
  const kinds = it("kinds");
  const results = it("results");
  $("#tab-indicators").innerHTML = `
    <h2>${esc(it("title"))}</h2>
    <form id="ind-form" class="filters ind-form">
      <label>${esc(it("from"))} <input type="date" name="from" value="${localDate(from)}" required></label>
      <label>${esc(it("to"))} <input type="date" name="to" value="${localDate(today)}" required></label>
      <label>${esc(it("unit"))} <select name="unit">
        <option value="">${esc(it("unitFacility"))}</option>
        <option value="facility_day">${esc(it("unitDay"))}</option>
        <option value="open_at_end">${esc(it("unitEnd"))}</option></select></label>
      <button type="button" data-ind="html" class="primary">${esc(it("view"))}</button>
      <button type="button" data-ind="pdf">${esc(it("pdf"))}</button>
      <button type="button" data-ind="json">${esc(it("json"))}</button>
    </form>
    <p id="ind-status" class="muted" role="status"></p>
    <iframe id="ind-frame" class="ind-frame" title="report" hidden></iframe>
    <h2>${esc(it("records"))}</h2>
    <form id="rec-form" class="card rec-form">
      <label>${esc(it("device"))}<input name="device_uid" pattern="[A-Za-z0-9_-]{1,64}"></label>
      <label>${esc(it("system"))}<select name="family">${Object.entries(families).map(([k, v]) => `<option value="${k}">${esc(v)}</option>`).join("")}</select></label>
      <label>${esc(it("kind"))}<select name="kind">${Object.entries(kinds).map(([k, v]) => `<option value="${k}">${esc(v)}</option>`).join("")}</select></label>
      <label>${esc(it("when"))}<input type="datetime-local" name="when" required value="${localDate(today)}T${today.toTimeString().slice(0, 5)}"></label>
      <label>${esc(it("by"))}<input name="by" required maxlength="100"></label>
      <label>${esc(it("result"))}<select name="result">${Object.entries(results).map(([k, v]) => `<option value="${k}">${esc(v)}</option>`).join("")}</select></label>
      <label>${esc(it("notes"))}<textarea name="notes" maxlength="2000" rows="2"></textarea></label>
      <label>${esc(it("photo"))}<input type="file" name="photo" accept="image/*,application/pdf" capture="environment"></label>
      <button type="submit" class="primary">${esc(it("save"))}</button>
      <p id="rec-status" class="muted" role="status"></p>
    </form>
    <h3>${esc(it("recent"))}</h3>
    <ul id="rec-list" class="rec-list"></ul>`;
}

function indCommunity() {
  if (state.community) return state.community;
  const list = state.communities || [];
  return list.length === 1 ? String(list[0].id) : "";
}

async function fetchReport(format) {
  const id = indCommunity();
  if (!id) { $("#ind-status").textContent = it("pick"); return; }
  const f = new FormData($("#ind-form"));
  const q = new URLSearchParams({ format, lang: state.lang, period: `${f.get("from")}..${f.get("to")}` });
  if (f.get("unit")) q.set("fault_unit", f.get("unit"));
  $("#ind-status").textContent = it("busy");
  const res = await fetch(`${API}/communities/${id}/indicator-report?${q}`, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) { const b = await res.json().catch(() => ({})); $("#ind-status").textContent = b.message || res.statusText; return; }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  if (format === "html") {
    const frame = $("#ind-frame");
    frame.hidden = false;
    frame.src = url;
    $("#ind-status").textContent = "";
    return;
  }
  const a = document.createElement("a");
  a.href = url;
  a.download = `indicators-${id}-${f.get("from")}.${format}`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  $("#ind-status").textContent = "";
}

async function loadRecords() {
  const id = indCommunity();
  const list = $("#rec-list");
  if (!id) { list.innerHTML = `<li class="muted">${esc(it("pick"))}</li>`; return; }
  const rows = await api(`/communities/${id}/maintenance-records?limit=20`);
  list.innerHTML = rows.length ? rows.map((r) => `<li>${esc(fmtTime(r.performed_at))} · ${esc(it("kinds")[r.kind] || r.kind)} ·
    ${esc(r.device_uid || I18N[state.lang].families[r.family] || r.family)} · ${esc(it("results")[r.result] || r.result)} · ${esc(r.performed_by)}</li>`).join("")
    : `<li class="muted">${esc(it("none"))}</li>`;
}

async function saveRecord(ev) {
  ev.preventDefault();
  const id = indCommunity();
  const status = $("#rec-status");
  if (!id) { status.textContent = it("pick"); return; }
  const f = new FormData(ev.target);
  try {
    const attachments = [];
    const photo = f.get("photo");
    if (photo && photo.size) {
      const res = await fetch(`${API}/communities/${id}/attachments?filename=${encodeURIComponent(photo.name)}`, {
        method: "POST", body: photo, headers: { Authorization: `Bearer ${state.token}`, "Content-Type": photo.type || "application/octet-stream" },
      });
      const body = await res.json();
      if (!res.ok) throw new Error(body.message || res.statusText);
      attachments.push(body.id);
    }
    const uid = String(f.get("device_uid") || "").trim();
    await api(`/communities/${id}/maintenance-records`, { method: "POST", json: {
      device_uid: uid || null, family: uid ? null : f.get("family"), kind: f.get("kind"),
      performed_at: new Date(f.get("when")).toISOString(), performed_by: f.get("by"), result: f.get("result"),
      notes: f.get("notes") || "", attachments,
    } });
    status.textContent = it("saved");
    ev.target.reset();
    loadRecords();
  } catch (err) {
    status.textContent = err.message;
  }
}

function showIndicators() {
  renderIndicatorsForm();
  $("#ind-form").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-ind]");
    if (b) fetchReport(b.dataset.ind);
  });
  $("#rec-form").addEventListener("submit", saveRecord);
  loadRecords();
}

document.addEventListener("DOMContentLoaded", () => {
  const tab = document.querySelector('.tabs button[data-tab="indicators"]');
  tab.addEventListener("click", showIndicators);
  $("#community").addEventListener("change", () => { if (state.tab === "indicators") showIndicators(); });
  const toggle = () => { tab.textContent = it("tab"); if (state.tab === "indicators") showIndicators(); };
  document.querySelectorAll(".lang-toggle").forEach((b) => b.addEventListener("click", toggle));
  tab.textContent = it("tab");
});
