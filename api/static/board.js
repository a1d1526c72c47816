// Yiju duty board (issue 13): what stays on the board, in which order, which alarms form one incident,
// and the alerting loop (banner + sound that repeat until a person acknowledges). Pure functions plus
// one small loop object; app.js renders. Loaded before app.js; no build step, no inline script.
"use strict";

const YijuBoard = (() => {
  // Life safety first (issue 13 §1): a person may be in danger now. docs/console.md lists the order.
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

  /** Alarms → incidents [{lead, members}], sorted by the lead's priority. A linkage failure joins the
   *  fire/gas alarm of its building that began within GROUP_WINDOW_MS before it. */
  function incidents(alarms) {
    const causes = alarms.filter((a) => LINKAGE_CAUSES.includes(a.type) && a.building_id != null)
      .sort((x, y) => ms(x.first_at) - ms(y.first_at));
    const byLead = new Map(alarms.map((a) => [a.id, []]));
    const joined = new Set();
    for (const a of alarms) {
      if (a.type !== "linkage_failed" || a.building_id == null) continue;
      const at = ms(a.first_at);
      let cause = null;
      for (const c of causes) {
        const dt = at - ms(c.first_at);
        if (c.building_id === a.building_id && dt >= 0 && dt <= GROUP_WINDOW_MS) cause = c; // the latest one
      }
      if (cause) { byLead.get(cause.id).push(a); joined.add(a.id); }
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
    if (typeof d.port === "number") parts.push(lang === "zh" ? `${d.port}号端口` : `port ${d.port}`);
    return parts.join(" · ");
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

  // Charts that explain (issue 13 §6): the metric that triggered the alarm first (metric names from
  // devices/families/*.py `points`), labelled in the UI language with the unit read from the suffix.
  const TRIGGER_METRIC = {
    charger_over_temperature: "port_temp_c", charger_overload: "power_w", charger_leakage: "leakage_ma",
    charger_short_circuit: "current_a", charger_smoke: "smoke", gas_high_alarm: "lel_pct", gas_low_alarm: "lel_pct",
    fire_alarm: "alarm", electrical_fire_residual_current: "residual_current_ma",
    electrical_fire_cable_temperature: "cable_temp_c", low_battery: "battery_pct", lamp_failure: "current_a",
    elevator_overspeed: "speed_mps", elevator_trapped: "floor",
  };
  const METRIC_NAMES = {
    zh: { port_temp_c: "端口温度", ambient_temp_c: "环境温度", power_w: "功率", total_power_w: "总功率",
          current_a: "电流", voltage_v: "电压", leakage_ma: "漏电流", session_energy_kwh: "本次电量",
          session_s: "充电时长", smoke: "烟雾", relay_on: "继电器", breaker_closed: "断路器合闸",
          lel_pct: "可燃气体浓度", co_ppm: "一氧化碳", valve_closed: "阀门关闭", alarm: "报警状态",
          battery_pct: "电池电量", cable_temp_c: "线缆温度", residual_current_ma: "剩余电流", floor: "楼层",
          speed_mps: "速度", load_kg: "载重", door_open: "轿门开", moving: "运行中", dim_pct: "亮度", on: "开灯" },
    en: { port_temp_c: "Port temperature", ambient_temp_c: "Ambient temperature", power_w: "Power",
          total_power_w: "Total power", current_a: "Current", voltage_v: "Voltage", leakage_ma: "Leakage current",
          session_energy_kwh: "Session energy", session_s: "Session time", smoke: "Smoke", relay_on: "Relay on",
          breaker_closed: "Breaker closed", lel_pct: "Combustible gas", co_ppm: "Carbon monoxide",
          valve_closed: "Valve closed", alarm: "Alarm state", battery_pct: "Battery", cable_temp_c: "Cable temperature",
          residual_current_ma: "Residual current", floor: "Floor", speed_mps: "Speed", load_kg: "Load",
          door_open: "Door open", moving: "Moving", dim_pct: "Dimming", on: "On" },
  };
  const UNITS = [["lel_pct", "%LEL"], ["_pct", "%"], ["_temp_c", "°C"], ["_ppm", "ppm"], ["_ma", "mA"], ["_kwh", "kWh"],
    ["_mps", "m/s"], ["_kg", "kg"], ["_a", "A"], ["_w", "W"], ["_v", "V"], ["_s", "s"]];
  const unitOf = (metric) => (UNITS.find(([suffix]) => metric.endsWith(suffix)) || [, ""])[1];
  const metricLabel = (metric, lang) => {
    const unit = unitOf(metric);
    return `${METRIC_NAMES[lang][metric] || metric}${unit ? ` (${unit})` : ""}`;
  };
  /** The device's metrics with the triggering one (on the alarm's port, when it has one) first. */
  function chartOrder(alarm, metrics) {
    const trigger = alarm.type.startsWith("gas_") && typeof alarm.details?.co_ppm === "number" ? "co_ppm" : TRIGGER_METRIC[alarm.type];
    const port = alarm.details?.port;
    const rank = (m) => (m.metric === trigger ? (port == null || m.channel === port ? 0 : 1) : 2);
    return [...metrics].sort((x, y) => rank(x) - rank(y));
  }
  // The chart window: CHART_MARGIN_MS before the alarm to CHART_MARGIN_MS after it cleared (or now).
  const CHART_MARGIN_MS = 15 * 60e3;
  function chartWindow(alarm, nowMs) {
    const start = ms(alarm.first_at) - CHART_MARGIN_MS;
    const endAt = alarm.status === "cleared" && alarm.cleared_at ? ms(alarm.cleared_at) : nowMs;
    return [new Date(start), new Date(Math.min(nowMs, Math.max(endAt, ms(alarm.last_at)) + CHART_MARGIN_MS))];
  }

  return { chartOrder, chartWindow, metricLabel, matches, LIFE_SAFETY, MUTE_MIN, onBoard, compare, incidents, reading, failedAction, alerting, alertLoop };
})();
