// Yiju duty board (issue 13): what stays on the board, in which order, which alarms form one incident,
// and the alerting loop (banner + sound that repeat until a person acknowledges). Pure functions plus
// one small loop object; app.js renders. Loaded before app.js; no build step, no inline script.
"use strict";

const YijuBoard = (() => {
  // Life safety first (issue 13 §1): a person may be in danger now. docs/api.md ("Console") lists the order.
  const LIFE_SAFETY = ["fire_alarm", "gas_high_alarm", "elevator_trapped", "linkage_failed", "auto_cutoff_failed"];
  const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };
  // Alarms that start a linkage (alerts/core/linkage.py): their linkage failures join their incident.
  const LINKAGE_CAUSES = ["fire_alarm", "gas_high_alarm"];
  // A linkage failure belongs to a cause in the same building that began at most this long before it.
  // Linkage deadlines are seconds to a minute (standards.md, AlertSettings); 15 min is ample.
  const GROUP_WINDOW_MS = 15 * 60e3;
  // Sound: repeat every REPEAT_S while an unacknowledged critical alarm is on the board (vendor
  // practice: fire panels sound continuously until silenced). Mute lasts MUTE_MIN minutes, never longer.
  const REPEAT_S_DEFAULT = 15;
  const MUTE_MIN = 5;

  /** On the board: active, or cleared but nobody has acknowledged it yet ("nothing vanishes"). */
  const onBoard = (a) => a.status === "active" || !a.acknowledged;
  const lifeSafety = (a) => LIFE_SAFETY.includes(a.type);
  const ms = (iso) => new Date(iso).getTime();

  /** The board's priority: life safety, then severity, then unacknowledged first, then oldest first. */
  function compare(x, y) {
    return (lifeSafety(x) ? 0 : 1) - (lifeSafety(y) ? 0 : 1) ||
      SEVERITY_RANK[x.severity] - SEVERITY_RANK[y.severity] ||
      (x.acknowledged ? 1 : 0) - (y.acknowledged ? 1 : 0) ||
      ms(x.first_at) - ms(y.first_at) || x.id - y.id;
  }

  // Derived alarms (issue 13 §4): an offline alarm follows its cause. The cause is an earlier alarm of the
  // same device still on the board (the incident it played, its own power loss), or a mains power loss
  // at the same place (a shed's post) that began at most GROUP_WINDOW_MS before it.
  const DERIVED = ["device_offline"];
  const powerLoss = (a) => a.type === "elevator_power_loss" || (a.type === "charger_fault" && a.details?.kind === "power_loss");
  function causeOf(a, alarms) {
    const at = ms(a.first_at);
    const before = (c) => c.id !== a.id && !DERIVED.includes(c.type) && ms(c.first_at) <= at;
    const latest = (xs) => xs.sort((x, y) => ms(y.first_at) - ms(x.first_at) || y.id - x.id)[0] || null;
    return latest(alarms.filter((c) => before(c) && c.device_id === a.device_id)) ||
      latest(alarms.filter((c) => before(c) && powerLoss(c) && a.location_id != null &&
        c.location_id === a.location_id && at - ms(c.first_at) <= GROUP_WINDOW_MS));
  }

  /** Alarms → incidents [{lead, members}], sorted by the lead's priority. A linkage failure joins the
   *  fire/gas alarm of its building that began within GROUP_WINDOW_MS before it; an offline alarm joins
   *  the incident of its cause (causeOf), marked `derived` (what it follows: `cause`). */
  function incidents(alarms) {
    const causes = alarms.filter((a) => LINKAGE_CAUSES.includes(a.type) && a.building_id != null)
      .sort((x, y) => ms(x.first_at) - ms(y.first_at));
    const byLead = new Map(alarms.map((a) => [a.id, []]));
    const joined = new Set();
    const leadOf = new Map(); // member id -> its incident's lead
    for (const a of alarms) {
      if (a.type !== "linkage_failed" || a.building_id == null) continue;
      const at = ms(a.first_at);
      let cause = null;
      for (const c of causes) {
        const dt = at - ms(c.first_at);
        if (c.building_id === a.building_id && dt >= 0 && dt <= GROUP_WINDOW_MS) cause = c; // the latest one
      }
      if (cause) { byLead.get(cause.id).push(a); joined.add(a.id); leadOf.set(a.id, cause.id); }
    }
    for (const a of alarms) {
      if (!DERIVED.includes(a.type)) continue;
      const cause = causeOf(a, alarms);
      if (!cause) continue;
      const lead = leadOf.get(cause.id) ?? cause.id;
      byLead.get(lead).push({ ...a, derived: true, cause: cause.id });
      joined.add(a.id);
    }
    return alarms.filter((a) => !joined.has(a.id)).map((lead) => ({ lead, members: byLead.get(lead.id).sort(compare) }))
      .sort((x, y) => compare(x.lead, y.lead));
  }

  // The key reading of an alarm from its details, with its unit (details keys from alerts/core/*).
  const READINGS = [
    ["lel_pct", "%LEL"], ["co_ppm", "ppm"], ["temperature_c", "°C"], ["current_a", "A"], ["power_w", "W"],
    ["residual_ma", "mA"], ["open_s", "s"], ["silent_s", "s"], ["speed_mps", "m/s"],
  ];
  function reading(a, lang) {
    const d = a.details || {};
    const parts = [];
    for (const [key, unit] of READINGS) {
      if (typeof d[key] === "number") parts.push(`${Math.round(d[key] * 10) / 10} ${unit}`);
    }
    if (typeof d.floor === "number") parts.push(lang === "zh" ? `${d.floor}层` : `floor ${d.floor}`);
    if (d.kind === "power_loss") parts.push(lang === "zh" ? "市电掉电" : "mains power lost"); // charger alarm push
    return parts.join(" · ");
  }

  // Where (issue 13 §1): building · unit · floor · room, or shed · post · port, from the alarm's
  // structured location (migration 0023); the building is named once. Without structured fields the
  // location's name, minus a leading building name ("1号楼 6层" → "6层").
  const KIND = {
    zh: { lobby: "大堂", stairwell: "楼梯间", basement: "地下室", plant_room: "设备房", parking: "车库" },
    en: { lobby: "lobby", stairwell: "stairwell", basement: "basement", plant_room: "plant room", parking: "car park" },
  };
  const floorLabel = (f, lang) => lang === "zh" ? (f < 0 ? `地下${-f}层` : `${f}层`) : (f < 0 ? `B${-f}` : `floor ${f}`);
  function place(a, lang) {
    const zh = lang === "zh";
    const port = typeof a.details?.port === "number" && a.details.port > 0 ? a.details.port : null;
    if (a.post != null || (a.location_kind === "shed" && a.family === "ebike_charger")) {
      return [a.building_name, a.location_name, a.post != null ? (zh ? `${a.post}号桩` : `post ${a.post}`) : null,
        port != null ? (zh ? `${port}号端口` : `port ${port}`) : null].filter(Boolean);
    }
    const structured = a.unit != null || a.floor != null || a.room != null;
    if (!a.building_name || !structured) {
      const name = a.building_name && a.location_name?.startsWith(a.building_name)
        ? a.location_name.slice(a.building_name.length).trim() : a.location_name;
      return [a.building_name, name, port != null ? (zh ? `${port}号端口` : `port ${port}`) : null].filter(Boolean);
    }
    return [a.building_name, a.unit != null ? (zh ? `${a.unit}单元` : `unit ${a.unit}`) : null,
      a.floor != null ? floorLabel(a.floor, lang) : (KIND[lang][a.location_kind] || null),
      a.room != null ? (zh ? `${a.room}室` : `room ${a.room}`) : null].filter(Boolean);
  }

  const ACTIONS = {
    zh: { door_release: "门禁释放", valve_close: "关闭燃气阀", elevator_recall: "电梯迫降", light_force_on: "应急照明强制开启" },
    en: { door_release: "door release", valve_close: "gas valve close", elevator_recall: "elevator recall", light_force_on: "lights forced on" },
  };
  /** For a linkage failure: which action failed, in the UI language ("" otherwise). */
  const failedAction = (a, lang) => (a.type === "linkage_failed" && a.details?.action)
    ? (ACTIONS[lang][a.details.action] || a.details.action) : "";

  /** Unacknowledged critical alarms: they drive the banner and the sound until acknowledged. */
  const alerting = (alarms) => alarms.filter((a) => onBoard(a) && a.severity === "critical" && !a.acknowledged)
    .sort(compare);

  /** The repeating alert. `play` makes one beep; the loop owns its timer, `stop()` cancels it. */
  function alertLoop(play) {
    const stored = Number(localStorage.getItem("yiju.alarmRepeatS"));
    const loop = {
      repeatMs: 1000 * (stored >= 1 && stored <= 60 ? stored : REPEAT_S_DEFAULT),
      timer: null, pending: 0, mutedUntil: 0, beeps: 0,
      muted: () => Date.now() < loop.mutedUntil,
      /** Mute for MUTE_MIN minutes from now; there is no "off". */
      mute: () => { loop.mutedUntil = Date.now() + MUTE_MIN * 60e3; },
      /** How many alarms need a person now; starts or stops the repeat. */
      update(count) {
        loop.pending = count;
        if (count > 0 && loop.timer === null) {
          loop.tick();
          loop.timer = setInterval(loop.tick, loop.repeatMs);
        } else if (count === 0) loop.stop();
      },
      tick() {
        if (loop.pending > 0 && !loop.muted() && play()) loop.beeps++;
        document.dispatchEvent(new CustomEvent("yiju:alert-tick"));
      },
      stop() { if (loop.timer !== null) clearInterval(loop.timer); loop.timer = null; loop.pending = 0; },
    };
    return loop;
  }

  /** Board filters (issue 13 §4): f = {severity, family, building, status, sinceH}; "" means any.
   *  status: unacked | active | cleared. The banner and the sound ignore filters (app.js). */
  function matches(a, f, nowMs) {
    return (!f.severity || a.severity === f.severity) && (!f.family || a.family === f.family) &&
      (!f.building || String(a.building_id) === f.building) &&
      (!f.status || (f.status === "unacked" ? !a.acknowledged : a.status === f.status)) &&
      (!f.sinceH || ms(a.last_at) >= nowMs - Number(f.sinceH) * 3600e3);
  }

  // The alarm chart (issue 13 §6) is app.js renderCharts, from GET /alarms/{id}/chart.

  return { causeOf, place, floorLabel, matches, LIFE_SAFETY, MUTE_MIN, onBoard, compare, incidents, reading, failedAction, alerting, alertLoop };
})();
