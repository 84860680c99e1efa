"""Unit conversions at the user edge. SI inside; researchers speak mA/cm^2, mAh/cm^2, um, mV."""

MA_PER_CM2 = 10.0  # 1 mA/cm^2 = 10 A/m^2
# 1 mAh/cm^2 = 1e-3 A * 3600 s / 1e-4 m^2 = 36000 C/m^2
MAH_PER_CM2 = 36000.0  # C/m^2

_TIME = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "ms": 1e-3}


def time_to_si(value: float, unit: str) -> float:
    try:
        return value * _TIME[unit]
    except KeyError:
        raise ValueError(f"unknown time unit {unit!r}: use one of {sorted(_TIME)}") from None
