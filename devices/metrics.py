"""What the stored metrics are, in Chinese and English, with their unit: the names the families'
`points()` functions (devices/families/*.py) write into `points.metric`, for charts a person reads.

tests/test_alarm_chart.py checks that every metric a family's sample telemetry produces is here, so a
new point in a family model cannot reach the console unnamed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricInfo:
    zh: str
    en: str
    unit: str = ""  # "" for states (0/1) and counts


METRICS: dict[str, MetricInfo] = {
    # ebike_charger (per port: voltage … session_s; the post: the rest)
    "port_temp_c": MetricInfo("端口温度", "Port temperature", "°C"),
    "ambient_temp_c": MetricInfo("环境温度", "Ambient temperature", "°C"),
    "cabinet_temp_c": MetricInfo("充电柜内温度", "Cabinet temperature", "°C"),
    "power_w": MetricInfo("功率", "Power", "W"),
    "total_power_w": MetricInfo("总功率", "Total power", "W"),
    "current_a": MetricInfo("电流", "Current", "A"),
    "voltage_v": MetricInfo("电压", "Voltage", "V"),
    "leakage_ma": MetricInfo("漏电流", "Leakage current", "mA"),
    "session_energy_kwh": MetricInfo("本次充电电量", "Session energy", "kWh"),
    "session_s": MetricInfo("本次充电时长", "Session time", "s"),
    "smoke": MetricInfo("烟雾报警", "Smoke alarm"),
    "relay_on": MetricInfo("输出继电器闭合", "Relay closed"),
    "breaker_closed": MetricInfo("漏电断路器合闸", "Breaker closed"),
    # smoke_alarm (with the electrical-fire detectors)
    "alarm": MetricInfo("火警状态", "Fire alarm state"),
    "battery_pct": MetricInfo("电池电量", "Battery", "%"),
    "cable_temp_c": MetricInfo("线缆温度", "Cable temperature", "°C"),
    "residual_current_ma": MetricInfo("剩余电流", "Residual current", "mA"),
    # gas_alarm
    "lel_pct": MetricInfo("可燃气体浓度", "Combustible gas", "%LEL"),
    "co_ppm": MetricInfo("一氧化碳浓度", "Carbon monoxide", "ppm"),
    "valve_closed": MetricInfo("燃气阀关闭", "Valve closed"),
    # light
    "on": MetricInfo("开灯", "On"),
    "dim_pct": MetricInfo("亮度", "Dimming", "%"),
    # elevator
    "floor": MetricInfo("所在楼层", "Floor"),
    "speed_mps": MetricInfo("运行速度", "Speed", "m/s"),
    "load_kg": MetricInfo("载重", "Load", "kg"),
    "door_open": MetricInfo("门开", "Door open"),
    "moving": MetricInfo("运行中", "Moving"),
    "faults": MetricInfo("故障数", "Faults"),
    # access_door
    "locked": MetricInfo("已上锁", "Locked"),
    # cctv_recorder
    "disk_free_gb": MetricInfo("硬盘剩余空间", "Disk free", "GB"),
    "disk_total_gb": MetricInfo("硬盘总容量", "Disk size", "GB"),
    "disk_healthy": MetricInfo("硬盘正常", "Disk healthy"),
    "recorded_days": MetricInfo("录像保存天数", "Recorded days", "d"),
    "recording": MetricInfo("正在录像", "Recording"),
    "online": MetricInfo("通道在线", "Channel online"),
}


def info(metric: str) -> MetricInfo:
    """The metric's names and unit; an unknown metric keeps its stored name in both languages."""
    return METRICS.get(metric) or MetricInfo(metric, metric)
