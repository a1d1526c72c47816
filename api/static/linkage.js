// Emergency linkage in the duty-room console: incidents (who was notified, when, by which channel,
// the outcome, the next step and its countdown), acknowledgement, and the on-duty roster.
// Loaded after app.js; uses its api(), t(), esc(), fmtTime(), state and communityQuery().
"use strict";

Object.assign(I18N.zh, {
  tabLinkage: "联动", incidents: "联动事件", roster: "值班表", onDuty: "在岗", offDuty: "不在岗",
  drill: "演练", nextStep: "下一步", noIncidents: "暂无联动事件", noPeople: "尚未配置值班人员",
  notifiedWho: "通知对象", channel: "方式", outcomeCol: "结果", attemptsCol: "次数", at: "时间",
  ackIncident: "确认（停止升级）", timeline: "过程记录", phone: "电话", group: "班组", shifts: "班次",
  reached: "已联系到", nobodyReached: "尚无人接到通知", noEscalation: "此告警未触发联动升级",
  auditKinds: { started: "开始升级", step: "进入下一步", attempt: "发起通知", outcome: "回执", retry: "重试",
                rate_limited: "限流等待", dtmf: "按键确认", acknowledged: "已确认", cleared: "告警解除", cancelled: "已取消",
                exhausted: "全部无人响应", linked: "关联告警", skipped: "跳过" },
  incidentStates: { open: "升级中", acknowledged: "已确认", cleared: "已解除", exhausted: "无人响应", cancelled: "已取消" },
  channels: { console: "值班台", sip: "电话", sms: "短信", voice: "语音通知", webhook: "平台推送", gbt26875: "消防远程监控" },
  outcomes: { pending: "待发送", sending: "发送中", delivered: "已送达", answered: "已接听", acknowledged: "已确认",
              busy: "占线", no_answer: "无人接听", failed: "失败", interrupted: "中断", cancelled: "已取消" },
});
Object.assign(I18N.en, {
  tabLinkage: "Linkage", incidents: "Incidents", roster: "On-duty roster", onDuty: "On duty", offDuty: "Off duty",
  drill: "DRILL", nextStep: "Next step", noIncidents: "No incidents", noPeople: "No people configured",
  notifiedWho: "Who", channel: "Channel", outcomeCol: "Outcome", attemptsCol: "Attempts", at: "When",
  ackIncident: "Acknowledge (stop escalation)", timeline: "Timeline", phone: "Phone", group: "Group", shifts: "Shifts",
  reached: "Reached", nobodyReached: "Nobody reached yet", noEscalation: "This alarm started no escalation",
  auditKinds: { started: "started", step: "next step", attempt: "attempt", outcome: "receipt", retry: "retry",
                rate_limited: "rate limited", dtmf: "key pressed", acknowledged: "acknowledged", cleared: "alarm cleared",
                cancelled: "cancelled", exhausted: "nobody answered", linked: "alarm linked", skipped: "skipped" },
  incidentStates: { open: "escalating", acknowledged: "acknowledged", cleared: "cleared", exhausted: "nobody answered",
                    cancelled: "cancelled" },
  channels: { console: "Console", sip: "Phone call", sms: "SMS", voice: "Voice notice", webhook: "Webhook",
              gbt26875: "Fire monitoring centre" },
  outcomes: { pending: "pending", sending: "sending", delivered: "delivered", answered: "answered",
              acknowledged: "acknowledged", busy: "busy", no_answer: "no answer", failed: "failed",
              interrupted: "interrupted", cancelled: "cancelled" },
});

const lk = (group, key) => (I18N[state.lang][group] || {})[key] || key;
const weekdayNames = { zh: "一二三四五六日", en: "MTWTFSS" };
const hm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

function countdown(iso) {
  if (!iso) return "—";
  const s = Math.round((new Date(iso) - Date.now()) / 1000);
  if (s <= 0) return state.lang === "zh" ? "即将开始" : "now";
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

async function loadLinkage() {
  const q = communityQuery();
  const [page, roster] = await Promise.all([
    api(`/linkage/incidents?limit=50${q ? "&" + q : ""}`), api(`/linkage/roster${q ? "?" + q : ""}`),
  ]);
  $("#incidents").innerHTML = page.items.length ? page.items.map((i) => `
    <div class="incident card state-${esc(i.state)}" data-incident="${i.id}">
      ${i.drill ? `<span class="drill-badge">${esc(t("drill"))}</span>` : ""}
      <strong>#${i.id} ${esc(i.alarm_type === "drill" ? t("drill") : (lk("families", i.alarm_type) !== i.alarm_type ? lk("families", i.alarm_type) : i.alarm_type))}</strong>
      <span class="muted">${esc(i.summary)}</span>
      <span class="pill">${esc(lk("incidentStates", i.state))}</span>
      <span class="muted">${esc(fmtTime(i.started_at))}</span>
      ${i.state === "open" ? `<span>${esc(t("nextStep"))}: <b data-countdown="${esc(i.next_step_at || "")}">${esc(countdown(i.next_step_at))}</b></span>` : ""}
      <button type="button" data-incident-open="${i.id}">${esc(t("detail"))}</button>
    </div>`).join("") : `<p class="muted">${esc(t("noIncidents"))}</p>`;
  $("#roster").innerHTML = roster.length ? `<table class="devices"><thead><tr>
      <th>${esc(t("username"))}</th><th>${esc(t("phone"))}</th><th>${esc(t("group"))}</th><th>${esc(t("shifts"))}</th><th></th>
    </tr></thead><tbody>${roster.map((p) => `<tr>
      <td>${esc(p.name)}</td><td>${esc(p.phone)}</td><td>${esc(p.duty_group)}</td>
      <td>${p.shifts.map((s) => `${s.weekdays.map((d) => weekdayNames[state.lang][d - 1]).join("")} ${hm(s.start_min)}–${hm(s.end_min)}`).map(esc).join("<br>")}</td>
      <td class="${p.on_duty ? "on-duty" : "muted"}">${esc(p.on_duty ? t("onDuty") : t("offDuty"))}</td></tr>`).join("")}</tbody></table>`
    : `<p class="muted">${esc(t("noPeople"))}</p>`;
}

// Who was reached: the people whose delivery was answered, acknowledged or delivered.
const REACHED = ["answered", "acknowledged", "delivered"];
const linkageActor = (a) => (a.startsWith("user:") ? a.slice(5)
  : a.startsWith("dtmf:") ? `${t("auditKinds").dtmf} ${a.slice(5)}` : (t("actors")[a] || a));

/** An incident's escalation: state, next step, reached people, every attempt with its receipt, and
 *  the timeline — the linkage tab's incident view and the alarm detail's 联动升级 section. */
function incidentBody(i) {
  const reached = [...new Set(i.deliveries.filter((d) => REACHED.includes(d.status)).map((d) => d.target_name))];
  return `
    ${i.state === "open" ? `<p>${esc(t("nextStep"))} ${i.next_step + 1}: <b data-countdown="${esc(i.next_step_at || "")}">${esc(countdown(i.next_step_at))}</b>
      <button type="button" class="primary" data-incident-ack="${i.id}">${esc(t("ackIncident"))}</button></p>` : `<p class="muted">${esc(i.ended_by ? linkageActor(i.ended_by) : "")} ${esc(fmtTime(i.ended_at))}</p>`}
    <p class="reached">${esc(t("reached"))}: ${reached.length ? reached.map(esc).join("、") : `<b class="error">${esc(t("nobodyReached"))}</b>`}</p>
    <table class="devices deliveries"><thead><tr><th>${esc(t("at"))}</th><th>${esc(t("notifiedWho"))}</th><th>${esc(t("channel"))}</th>
      <th>${esc(t("outcomeCol"))}</th><th>${esc(t("attemptsCol"))}</th></tr></thead><tbody>
      ${i.deliveries.map((d) => `<tr class="outcome-${esc(d.status)}" data-channel="${esc(d.channel)}" data-status="${esc(d.status)}"><td>${esc(fmtTime(d.claimed_at || d.next_at))}</td>
        <td>${esc(d.target_name)} <span class="muted">${esc(d.address)}</span></td><td>${esc(lk("channels", d.channel))}</td>
        <td>${esc(lk("outcomes", d.status))} <span class="muted">${esc(d.outcome || "")}</span></td><td>${d.attempts}</td></tr>`).join("")}
    </tbody></table>
    <h4>${esc(t("timeline"))}</h4>
    <ul class="history">${i.timeline.map((e) => `<li data-kind="${esc(e.kind)}">${esc(fmtTime(e.at))} <b>${esc(lk("auditKinds", e.kind))}</b> ${esc(linkageActor(e.actor))}
      <span class="muted">${esc(Object.entries(e.detail).filter(([k, v]) => v !== null && v !== "" && k !== "key").map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" "))}</span></li>`).join("")}</ul>`;
}

async function openIncident(id) {
  const i = await api(`/linkage/incidents/${id}`);
  state.detailId = null;
  $("#detail-content").innerHTML = `
    <h3>${i.drill ? `<span class="drill-badge">${esc(t("drill"))}</span> ` : ""}#${i.id} ${esc(i.summary)}
      <span class="pill incident-state">${esc(lk("incidentStates", i.state))}</span></h3>${incidentBody(i)}`;
  $("#detail").hidden = false;
}

/** The alarm detail's escalation section (GET /alarms/{id}/escalation): each incident it started or joined. */
async function renderEscalation(alarmId) {
  let incidents = [];
  try { incidents = await api(`/alarms/${alarmId}/escalation`); } catch { /* shown as none */ }
  const el = $("#escalation");
  if (!el || state.detailId !== alarmId) return;
  el.innerHTML = incidents.length ? incidents.map((i) => `<div class="incident-detail" data-incident="${i.id}">
      <p><b>#${i.id}</b> ${esc(i.summary)} <span class="pill incident-state">${esc(lk("incidentStates", i.state))}</span></p>${incidentBody(i)}</div>`).join("")
    : `<p class="muted">${esc(t("noEscalation"))}</p>`;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#tab-linkage").addEventListener("click", async (e) => {
    const open = e.target.closest("button[data-incident-open]");
    if (open) await openIncident(Number(open.dataset.incidentOpen));
  });
  $("#detail").addEventListener("click", async (e) => {
    const ack = e.target.closest("button[data-incident-ack]");
    if (!ack) return;
    const id = Number(ack.dataset.incidentAck);
    await api(`/linkage/incidents/${id}/ack`, { method: "POST", json: { via: "console" } });
    if (state.detailId) await openDetail(state.detailId); // acknowledged from the alarm detail: stay there
    else await openIncident(id);
    loadLinkage();
  });
  setInterval(() => {
    document.querySelectorAll("[data-countdown]").forEach((el) => { el.textContent = countdown(el.dataset.countdown); });
    if (state.tab === "linkage" && state.user && Date.now() % 5000 < 1000) loadLinkage().catch(() => {});
  }, 1000);
});
