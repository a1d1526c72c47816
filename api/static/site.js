// Yiju site view (现场, issue 13 §5): per community the buildings as tiles in their real order with their
// worst state, then the outdoor places (sheds, roads, entrances); per building a plan of floors × units
// drawn as SVG from the registry's locations (GET /buildings/{id}/plan), devices placed by unit, floor and
// room and coloured by state; click a device for its state and alarms. Loaded after app.js (uses its
// state, api, esc, t, fmtTime, openDetail); no build step, no inline script.
"use strict";

Object.assign(I18N.zh, {
  tabSite: "现场", siteTitle: "小区现场", outdoor: "室外场所", backToSite: "← 返回小区总览", refresh: "刷新",
  wholeBuilding: "全楼", ground: "大堂", place: "设备", worstState: "最严重状态", noPlaces: "该小区没有登记楼栋或场所",
  openAlarm: "查看告警", deviceState: "状态", noBoardAlarms: "没有未处理的告警", model: "型号", room: "房号", post: "桩号",
  states: { critical: "紧急告警", major: "重要告警", minor: "次要告警", warning: "提示", offline: "离线",
            never_reported: "从未上报", online: "在线", disabled: "已停用" },
  glyphs: { ebike_charger: "充", smoke_alarm: "烟", gas_alarm: "气", light: "灯", elevator: "梯", access_door: "门", cctv_recorder: "录" },
  unitLabel: "{u}单元", floorLabel: "{f}层", basementLabel: "地下{f}层", postLabel: "{p}号桩",
});
Object.assign(I18N.en, {
  tabSite: "Site", siteTitle: "Site", outdoor: "Outdoor places", backToSite: "← Back to the site", refresh: "Refresh",
  wholeBuilding: "Whole building", ground: "Lobby", place: "Devices", worstState: "Worst state",
  noPlaces: "No buildings or places registered", openAlarm: "Open alarm", deviceState: "State",
  noBoardAlarms: "No open alarms", model: "Model", room: "Room", post: "Post",
  states: { critical: "Critical alarm", major: "Major alarm", minor: "Minor alarm", warning: "Warning", offline: "Offline",
            never_reported: "Never reported", online: "Online", disabled: "Disabled" },
  glyphs: { ebike_charger: "C", smoke_alarm: "S", gas_alarm: "G", light: "L", elevator: "E", access_door: "D", cctv_recorder: "R" },
  unitLabel: "Unit {u}", floorLabel: "F{f}", basementLabel: "B{f}", postLabel: "Post {p}",
});

const YijuSite = (() => {
  const STATES = ["critical", "major", "minor", "warning", "offline", "never_reported", "online", "disabled"];
  const worst = (states) => STATES.find((s) => states.includes(s)) || null;
  const DOT = 18, LABEL_W = 40, PAD = 8, AXIS_W = 64, HEAD_H = 26, LINE_H = 22;

  /** A plan's rows and columns: every floor (top first) × every unit, plus a lobby row for devices of a
   *  unit without a floor and a whole-building column/row for devices without a unit or floor. */
  function grid(plan) {
    const units = [...plan.units];
    if (plan.devices.some((d) => d.unit == null)) units.push("");
    const rows = plan.floors.map((f) => ({ key: `f${f}`, floor: f }));
    if (plan.devices.some((d) => d.floor == null)) rows.push({ key: "ground", floor: null });
    if (!units.length) units.push("");
    if (!rows.length) rows.push({ key: "ground", floor: null });
    const cells = new Map(); // `${row}|${unit}` -> devices
    for (const d of plan.devices) {
      const key = `${d.floor == null ? "ground" : `f${d.floor}`}|${d.unit ?? ""}`;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(d);
    }
    return { units, rows, cells };
  }

  /** A cell's devices in lines: one line per room (or post), devices without either on the first. */
  function lines(devices) {
    const byLabel = new Map();
    for (const d of devices) {
      const label = d.room ?? d.post ?? "";
      if (!byLabel.has(label)) byLabel.set(label, []);
      byLabel.get(label).push(d);
    }
    return [...byLabel.entries()].map(([label, ds]) => ({ label, post: ds[0].post != null && ds[0].room == null, devices: ds }));
  }

  /** The plan as one SVG string; `L` = { t, esc, lang } for labels. Devices carry data-device. */
  function svg(plan, L) {
    const { units, rows, cells } = grid(plan);
    const cellLines = (r, u) => lines(cells.get(`${r.key}|${u}`) || []);
    const maxDots = Math.max(1, ...[...cells.values()].flatMap((ds) => lines(ds).map((l) => l.devices.length)));
    const colW = PAD * 2 + LABEL_W + Math.min(maxDots, 8) * (DOT + 2);
    const rowH = rows.map((r) => PAD + Math.max(1, ...units.map((u) => cellLines(r, u).length)) * LINE_H);
    const W = AXIS_W + units.length * colW, H = HEAD_H + rowH.reduce((a, b) => a + b, 0) + 2;
    const floorText = (f) => f == null ? L.t("ground") : (f < 0 ? L.t("basementLabel").replace("{f}", -f) : L.t("floorLabel").replace("{f}", f));
    const unitText = (u) => u === "" ? L.t("wholeBuilding") : L.t("unitLabel").replace("{u}", u);
    const out = [`<svg class="site-plan" viewBox="0 0 ${W} ${H}" width="${Math.round(W * 1.4)}" role="img" aria-label="${L.esc(plan.name)}" data-plan="${plan.kind}:${plan.id}">`];
    if (plan.kind === "building") {
      units.forEach((u, i) => out.push(`<text class="unit-head" x="${AXIS_W + i * colW + colW / 2}" y="17" text-anchor="middle">${L.esc(unitText(u))}</text>`));
    }
    let y = HEAD_H;
    rows.forEach((r, ri) => {
      if (plan.kind === "building") out.push(`<text class="floor-label" x="${AXIS_W - 8}" y="${y + rowH[ri] / 2 + 4}" text-anchor="end">${L.esc(floorText(r.floor))}</text>`);
      units.forEach((u, ui) => {
        const x = AXIS_W + ui * colW;
        const ls = cellLines(r, u);
        const state = worst(ls.flatMap((l) => l.devices.map((d) => d.state)));
        out.push(`<rect class="cell${state ? ` state-${state}` : " empty"}" x="${x + 2}" y="${y + 2}" width="${colW - 4}" height="${rowH[ri] - 4}" rx="4" data-cell="${L.esc(r.key)}|${L.esc(u)}"/>`);
        ls.forEach((l, li) => {
          const ly = y + PAD / 2 + li * LINE_H + LINE_H / 2 + 2;
          const label = l.label === "" ? "" : l.post ? L.t("postLabel").replace("{p}", l.label) : l.label;
          if (label) out.push(`<text class="room" x="${x + PAD}" y="${ly + 4}">${L.esc(label)}</text>`);
          l.devices.forEach((d, di) => {
            const cx = x + PAD + LABEL_W + (di % 8) * (DOT + 2) + DOT / 2;
            const title = [d.uid, L.t("families")[d.family] || d.family, d.room ? `${L.t("room")} ${d.room}` : "",
              d.post ? `${L.t("post")} ${d.post}` : "", L.t("states")[d.state]].filter(Boolean).join(" · ");
            out.push(`<g class="dev state-${d.state}" data-device="${d.id}" data-state="${d.state}" tabindex="0" role="button">` +
              `<circle cx="${cx}" cy="${ly}" r="${DOT / 2 - 1}"/>` +
              `<text x="${cx}" y="${ly + 4}" text-anchor="middle">${L.esc(L.t("glyphs")[d.family] || "?")}</text>` +
              `<title>${L.esc(title)}</title></g>`);
          });
        });
      });
      y += rowH[ri];
    });
    out.push("</svg>");
    return out.join("");
  }

  return { STATES, worst, grid, lines, svg };
})();

// ------------------------------------------------------------------------------------------------
// The tab

const countsLine = (c) => `${c.devices} ${esc(t("devicesUnit"))} · ${c.online} ${esc(t("onlineUnit"))} · ` +
  `${c.offline} ${esc(t("offlineState"))} · <span class="never-count">${c.never_reported} ${esc(t("never"))}</span>`;
const sevPills = (c) => ["critical", "major", "minor", "warning"].filter((s) => c[s])
  .map((s) => `<span class="pill sev-${s}">${esc(t("sev")[s])} ${c[s]}</span>`).join(" ");

function siteTile(tile, place) {
  const w = tile.counts.worst;
  return `<button type="button" class="site-tile card state-${w || "none"}" data-place="${place}" data-id="${tile.id}" data-worst="${w || ""}">
    <strong>${esc(tile.name)}</strong>
    <span class="worst">${w ? esc(t("states")[w]) : ""}</span>
    <span class="counts">${countsLine(tile.counts)}</span>
    <span class="sev">${sevPills(tile.counts)}</span></button>`;
}

async function loadSite() {
  const target = $("#site");
  const at = state.site || (state.site = { plan: null });
  if (at.plan) return loadPlan(at.plan.place, at.plan.id);
  const ids = state.community ? [state.community] : (state.communities || []).map((c) => String(c.id));
  const parts = [];
  for (const id of ids) {
    let s;
    try { s = await api(`/communities/${id}/site`); } catch { continue; }
    const none = !s.buildings.length && !s.areas.length;
    parts.push(`<section class="site-community" data-community="${s.community_id}">
      <h2>${esc(s.name)} <span class="muted site-totals">${countsLine(s.counts)}</span></h2>
      ${none ? `<p class="muted">${esc(t("noPlaces"))}</p>` : ""}
      <div class="site-tiles">${s.buildings.map((b) => siteTile(b, "building")).join("")}</div>
      ${s.areas.length ? `<h3>${esc(t("outdoor"))}</h3><div class="site-tiles">${s.areas.map((a) => siteTile(a, "location")).join("")}</div>` : ""}
    </section>`);
  }
  target.innerHTML = parts.join("");
}

function legend() {
  return `<div class="site-legend">${YijuSite.STATES.map((s) => `<span class="legend state-${s}"><svg width="14" height="14"><circle cx="7" cy="7" r="6"/></svg>${esc(t("states")[s])}</span>`).join("")}</div>`;
}

async function loadPlan(place, id) {
  state.site.plan = { place, id };
  const plan = await api(place === "building" ? `/buildings/${id}/plan` : `/locations/${id}/plan`);
  $("#site").innerHTML = `<div class="site-head"><button type="button" class="link" data-site-back>${esc(t("backToSite"))}</button>
      <button type="button" data-site-refresh>${esc(t("refresh"))}</button></div>
    <h2>${esc(plan.name)} <span class="muted site-totals">${countsLine(plan.counts)}</span> ${sevPills(plan.counts)}</h2>
    ${legend()}
    <div class="site-plan-wrap">${YijuSite.svg(plan, { t, esc, lang: state.lang })}</div>`;
}

async function openDevice(deviceId) {
  state.detailId = null; // the drawer shows a device now, not an alarm (live alarm updates leave it alone)
  const [d, alarms] = await Promise.all([
    api(`/devices/${deviceId}`),
    api(`/alarms?device_id=${deviceId}&board=true&order=worst&limit=50`).catch(() => ({ items: [] })),
  ]);
  const presence = d.online ? "online" : d.online === false ? "offline" : "never_reported";
  const rows = alarms.items.map((a) => `<li data-alarm-row="${a.id}"><span class="pill sev-${a.severity}">${esc(t("sev")[a.severity])}</span>
      ${esc(alarmLabel(a))} · ${esc(fmtTime(a.first_at))} <button type="button" data-open-alarm="${a.id}">${esc(t("openAlarm"))}</button></li>`).join("");
  $("#detail-content").innerHTML = `<h2 data-device-detail="${d.id}">${esc(d.uid)}</h2>
    <p>${esc(t("families")[d.family] || d.family)} · ${esc([d.building_name, d.location_name].filter(Boolean).join(" · "))}</p>
    <p>${esc(t("deviceState"))}: <strong class="state-text state-${presence}">${esc(t("states")[presence])}</strong>
      · ${esc(t("lastSeen"))} ${esc(fmtTime(d.last_seen))}${d.model ? ` · ${esc(t("model"))} ${esc(d.model)}` : ""}</p>
    <h3>${esc(t("openAlarms"))}</h3>${rows ? `<ul class="history">${rows}</ul>` : `<p class="muted">${esc(t("noBoardAlarms"))}</p>`}`;
  $("#detail").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#site").addEventListener("click", (e) => {
    const tile = e.target.closest("[data-place]");
    if (tile) { loadPlan(tile.dataset.place, Number(tile.dataset.id)); return; }
    if (e.target.closest("[data-site-back]")) { state.site.plan = null; loadSite(); return; }
    if (e.target.closest("[data-site-refresh]")) { loadSite(); return; }
    const dev = e.target.closest("[data-device]");
    if (dev) openDevice(Number(dev.dataset.device));
  });
  $("#site").addEventListener("keydown", (e) => {
    const dev = e.target.closest?.("[data-device]");
    if (dev && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); openDevice(Number(dev.dataset.device)); }
  });
  $("#detail-content").addEventListener("click", (e) => {
    const b = e.target.closest("[data-open-alarm]");
    if (b) openDetail(Number(b.dataset.openAlarm));
  });
  // a new community choice starts from its overview
  // (capture: before app.js's listener reloads the tab)
  $("#community").addEventListener("change", () => { if (state.site) state.site.plan = null; }, true);
});
