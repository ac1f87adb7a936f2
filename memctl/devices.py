"""Device models: one dataclass of physical parameters, presets from the
papers, and a file format (TOML or JSON) so users describe their own device.

The dynamics (implemented vectorized in crossbar.py), per pulse of amplitude V
and width t on a device with state w in [0, 1] and susceptibilities s_p, s_d:

    drive      x = rate * expm1(|V - v_th| / v0) * t * e^lambda,  lambda ~ N(0, c2c_sigma^2)
    set        (V > v_set):   w <- 1 - (1 - w) exp(-x s_p);  s_p hardens (below)
                              s_d <- s_d + (1 - s_d)(1 - exp(-recovery_d x))
    reset      (V < v_reset): w <- w exp(-x s_d);            s_d hardens (below)
                              s_p <- s_p + (1 - s_p)(1 - exp(-recovery_p x))
    hardening  s <- s (1 - hardening * kept) exp(-hardening_drive x), where kept
               is the share of the previous same-kind increment an opposite
               pulse did not pull back (fresh_mobility: an opposite pulse
               first pulls back 1 - exp(-fresh_mobility x) of it)
    G = g_min + w (g_max - g_min), scaled per device by e^(g_spread N(0,1))

Threshold switching with an exponential overdrive gives the voltage window
the FFP scheme of paper 001 relies on. The susceptibility s_p models the
saturation of identical pulse trains (paper 004 Fig. 3e: most of the change
in the first ~20 periods; paper 001 Fig. 2): each set pulse hardens the
device, each opposite pulse recovers it. Hence an increment linear in t_set
(Fig. 3g) with a t_set-independent shape, and a stronger anti-pulse both
removes part of each increment and recovers s_p, so the curve is smaller and
more linear (Fig. 3f, 3h). Depression is the mirror image.

Other effects: additive state noise (paper 000's non-monotonic segments),
stuck devices (paper 003: 1-2.5 % unformable, stuck in the working range),
forming of pristine devices, relaxation toward w_rest over simulated time,
and a sinh I-V (paper 003's Al2O3 barrier):
    I(V) = G v_ref sinh(b V) / sinh(b v_ref),   linear when b = 0.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np


class DeviceFileError(ValueError):
    """A device file or parameter is wrong; the message names the parameter."""


@dataclass(frozen=True)
class DeviceModel:
    """Physical parameters of one device family (SI units: S, V, s)."""

    name: str = "generic"
    source: str = ""
    reproduces: str = ""
    g_min: float = 10e-6
    g_max: float = 100e-6
    v_set: float = 0.85  # mean set threshold, V
    v_reset: float = -1.1  # mean reset threshold, V (negative)
    v0_set: float = 0.1  # voltage scale of the exponential switching rate
    v0_reset: float = 0.1
    rate_set: float = 25.0  # 1/s at an (e - 1) overdrive factor
    rate_reset: float = 25.0
    hardening: float = 0.0  # susceptibility a consolidated pulse consumes
    hardening_drive: float = 0.0  # susceptibility consumed per unit drive x
    fresh_mobility: float = 0.0  # how strongly an opposite pulse pulls back a fresh increment
    recovery_p: float = 0.0  # how fast reset pulses restore the set susceptibility s_p
    recovery_d: float = 0.0  # how fast set pulses restore the reset susceptibility s_d
    threshold_spread: float = 0.04  # device-to-device relative sigma of thresholds
    rate_spread: float = 0.3  # device-to-device log-normal sigma of rates
    g_spread: float = 0.0  # device-to-device log-normal sigma of the conductance scale
    c2c_sigma: float = 0.2  # cycle-to-cycle log-normal sigma (paper 000 eq. 4)
    c2c_additive: float = 0.0  # additive state noise per pulse (non-monotonic steps)
    read_noise_rel: float = 5e-5  # relative sigma of a device's read current
    read_noise_abs: float = 0.5e-9  # sigma of each column's TIA input noise, A
    stuck_fraction: float = 0.0  # devices stuck at a random conductance in range
    v_form: float = 0.0  # forming voltage for pristine devices; 0 = formed already
    g_pristine: float = 0.0  # conductance of an unformed device, S
    relax_tau: float = 0.0  # relaxation time constant toward w_rest, s; 0 = none
    w_rest: float = 0.0
    iv_b: float = 0.0  # I-V nonlinearity, 1/V; 0 = ohmic
    iv_vref: float = 0.2  # voltage at which G is defined, V
    v_read: float = 0.2  # the read voltage the device family is used with, V
    pulse_width: float = 100e-6  # typical programming pulse width, s
    v_max: float = 2.0  # largest |V| the family is driven with; the board's DACs span it
    notes: dict = field(default_factory=dict, compare=False)

    def validate(self) -> DeviceModel:
        def need(ok: bool, name: str, why: str) -> None:
            if not ok:
                raise DeviceFileError(f"device {self.name!r}: {name} = {getattr(self, name)!r} {why}")

        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", float):
                need(isinstance(v, int | float) and not isinstance(v, bool), f.name, "must be a number")
                need(math.isfinite(v), f.name, "must be finite")
        need(self.g_min > 0, "g_min", "must be > 0 S")
        need(self.g_max > self.g_min, "g_max", "must be > g_min")
        need(self.g_max < 1.0, "g_max", "must be < 1 S")
        need(0 < self.v_set <= 10, "v_set", "must be in (0, 10] V")
        need(-10 <= self.v_reset < 0, "v_reset", "must be in [-10, 0) V")
        for name in ("v0_set", "v0_reset", "rate_set", "rate_reset", "iv_vref", "v_read", "pulse_width", "v_max"):
            need(getattr(self, name) > 0, name, "must be > 0")
        for name in ("hardening", "stuck_fraction", "w_rest"):
            need(0 <= getattr(self, name) <= 1, name, "must be in [0, 1]")
        nonneg = (
            "hardening_drive",
            "fresh_mobility",
            "recovery_p",
            "recovery_d",
            "threshold_spread",
            "rate_spread",
            "g_spread",
            "c2c_sigma",
            "c2c_additive",
            "read_noise_rel",
            "read_noise_abs",
            "v_form",
            "g_pristine",
            "relax_tau",
            "iv_b",
        )
        for name in nonneg:
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.threshold_spread < 0.5, "threshold_spread", "must be < 0.5")
        need(self.v_form == 0 or self.v_form > self.v_set, "v_form", "must exceed v_set (or be 0)")
        need(self.g_pristine < self.g_max, "g_pristine", "must be below g_max")
        need(self.v_max <= 20, "v_max", "must be <= 20 V")
        need(self.v_max >= max(self.v_form, self.v_read), "v_max", "must cover v_form and v_read")
        return self


# -- presets -------------------------------------------------------------

PRESETS: dict[str, DeviceModel] = {}


def _preset(m: DeviceModel) -> DeviceModel:
    PRESETS[m.name] = m.validate()
    return m


_preset(
    DeviceModel(
        name="pt_al2o3_tio2_passive",
        source="Merrikh Bayat et al., paper 003: Pt/Al2O3/TiO2-x 20x20 passive crossbars",
        reproduces="paper 003 Fig. 2 (threshold spread), Fig. 3 / Supp. Fig. 11 (write-verify tuning)",
        g_min=10e-6,  # 10-100 uS working range used for the weights
        g_max=100e-6,
        v_set=1.0,  # effective set thresholds ~0.7-1.3 V
        v_reset=-1.45,  # effective reset thresholds ~-1 to -1.9 V
        v0_set=0.1,
        v0_reset=0.1,
        rate_set=25.0,
        rate_reset=25.0,
        threshold_spread=0.1,
        rate_spread=0.3,
        c2c_sigma=0.2,
        read_noise_rel=5e-5,  # reads average 10,000 samples over 50 us
        stuck_fraction=0.015,  # stuck in range; with the ~0.6 % a 2.5 V ramp cannot form: 1-2.5 % (paper 003)
        v_form=2.0,
        g_pristine=0.5e-6,
        iv_b=2.5,  # nonlinear I-V from the Al2O3 barrier
        iv_vref=0.2,
        v_read=0.2,  # 0.2 V, 100 us reads
        pulse_width=100e-6,
        v_max=2.5,  # forming ramps up to 2.5 V
    )
)


_preset(
    DeviceModel(
        name="hfo2_tio2_bilayer",
        source="Spetzler et al., paper 004: Au/HfO2 (2 nm)/TiO2 (30 nm)/TiN bilayer, 25x25 um2",
        reproduces="paper 004 Fig. 3e (saturating pulse trains), 3f/3h (anti-pulse), 3g (dI_max ~ t_set)",
        g_min=2e-6,  # read currents of a few uA at V_r = 0.5 V
        g_max=50e-6,
        v_set=1.0,  # set pulses of 2 V, 0.1-1.3 s (Table I)
        v0_set=0.25,
        rate_set=5.7e-4,
        v_reset=-0.2,  # anti-pulses of -0.1 to -1.2 V already act (Fig. 3f)
        v0_reset=0.25,
        rate_reset=1e-3,
        hardening=0.1,  # most of a train's change within ~20 periods
        fresh_mobility=500.0,  # a strong anti-pulse pulls back most of each increment
        recovery_p=0.3,  # anti-pulses barely soften the set direction ...
        recovery_d=100.0,  # ... while set pulses keep the reset direction soft
        threshold_spread=0.03,
        rate_spread=0.2,
        g_spread=0.35,  # maximum read currents differ ~2.5x between devices
        c2c_sigma=0.1,
        read_noise_rel=2e-4,
        iv_vref=0.5,
        v_read=0.5,  # V_r = 0.5 V, t_r = 0.5 ms
        pulse_width=0.1,
        v_max=3.0,  # I-V sweeps reach 3 V
    )
)

_preset(
    DeviceModel(
        name="tio2_4terminal",
        source="Diao et al., paper 001: planar TiO2-x four-terminal memristor",
        reproduces="paper 001 Fig. 2 (identical pulses saturate; |dR| vs V_w per state), Fig. 3 (FFP)",
        g_min=1 / 880,  # HRS 880 ohm
        g_max=1 / 740,  # LRS 740 ohm (ratio 1.19)
        v_set=0.2,  # write voltages 0.3-7 V already switch (Fig. 2)
        v0_set=0.8,
        rate_set=1.5e-3,
        v_reset=-0.2,
        v0_reset=0.8,
        rate_reset=1.3e-3,  # depression takes more events: 579 vs 494 (FFP)
        hardening_drive=1.0,  # identical pulses saturate, at a level rising with V_w (Fig. 2a)
        recovery_p=1.0,
        recovery_d=1.0,
        threshold_spread=0.02,
        rate_spread=0.05,
        c2c_sigma=0.05,  # excellent cycle-to-cycle endurance (Pearson ~1)
        read_noise_rel=1e-5,  # well below the 0.1 ohm lower window edge
        read_noise_abs=1e-9,
        iv_vref=0.1,
        v_read=0.1,  # 0.1 V reads
        pulse_width=0.8,  # FFP write pulses of 0.8 s
        v_max=7.0,  # V_w up to 7 V, initialization at +-6 V
    )
)

_preset(
    DeviceModel(
        name="perovskite_lognormal",
        source="Ye, Sun et al., paper 000: perovskite nanowire memristors",
        reproduces="paper 000 eq. 4 (log-normal cycle-to-cycle), non-monotonic conductance segments",
        g_min=1e-6,  # read currents of uA at 0.1 V under a 20 uA compliance
        g_max=20e-6,
        v_set=2.5,  # DC sweeps SET at ~3 V ...
        v0_set=0.3,
        rate_set=7.0,
        v_reset=-1.8,  # ... and RESET at ~-2.2 V
        v0_reset=0.3,
        rate_reset=7.0,
        threshold_spread=0.05,
        rate_spread=0.5,
        c2c_sigma=0.5,  # theta' = theta e^lambda, lambda ~ N(0, sigma^2); sigma is device-dependent
        c2c_additive=0.01,  # occasional steps against the pulse: non-monotonic segments
        read_noise_rel=1e-3,
        iv_vref=0.1,
        v_read=0.1,
        pulse_width=1e-3,
        v_max=6.0,  # sweeps reach +-6 V
    )
)

# -- generated devices ----------------------------------------------------


def random_device(seed: int) -> tuple[DeviceModel, str]:
    """A plausible device family nobody tuned for, and the cell it sits in
    ("1T1R" where V/2 half-select would disturb it): the honest test of an
    algorithm's generality. Keep the seeds a benchmark uses apart from any a
    model is trained or tuned on.

    Within the ranges the presets and papers span: 1-20 uS low state, 3-20x
    on/off, thresholds 0.5-1.5 V with 0.08-0.3 V exponential slopes, typical
    widths 10 us-10 ms whose rates let the longest pulse at the top amplitude
    cross the range and the shortest near threshold move a fraction of a
    percent; sometimes hardening; 5-40 % cycle-to-cycle, device-to-device
    spreads, read noise 1e-5..1e-3, up to 2 % stuck devices, mild I-V
    nonlinearity."""
    rng = np.random.default_rng(seed)
    u = rng.uniform
    g_min = 10 ** u(-6, -4.7)
    width = 10 ** u(-5, -2)
    v_set, v_reset = u(0.5, 1.5), -u(0.4, 1.5)
    v0_set, v0_reset = u(0.08, 0.3), u(0.08, 0.3)
    r_set, r_reset = 10 ** u(-2, -0.5), 10 ** u(-2, -0.5)  # x per typical width at overdrive factor e - 1
    spread = u(0.02, 0.1)
    # The top amplitude saturates a device within ten typical widths (drive >= 3), with a margin, even
    # where its thresholds sit three spreads above the family's.
    over_set, over_reset = np.log1p(0.3 / r_set) + 1.0, np.log1p(0.3 / r_reset) + 1.0
    top = (1 + 3 * spread) * max(v_set + v0_set * over_set, -v_reset + v0_reset * over_reset)
    v_max = float(min(6.0, top))
    v_read = float(min(0.2, 0.3 * min(v_set, -v_reset)))
    m = DeviceModel(
        name=f"generated-{seed}",
        source=f"memctl.devices.random_device({seed})",
        reproduces="nothing: a random plausible family",
        g_min=g_min,
        g_max=g_min * 10 ** u(0.5, 1.3),
        v_set=v_set,
        v_reset=v_reset,
        v0_set=v0_set,
        v0_reset=v0_reset,
        rate_set=r_set / width,
        rate_reset=r_reset / width,
        hardening=u(0.02, 0.1) if rng.random() < 0.3 else 0.0,
        threshold_spread=spread,
        rate_spread=u(0.05, 0.4),
        g_spread=u(0.0, 0.3),
        c2c_sigma=u(0.05, 0.4),
        c2c_additive=u(0.0, 0.003),
        read_noise_rel=10 ** u(-5, -3),
        stuck_fraction=u(0.0, 0.02),
        iv_b=u(0.0, 2.0),
        iv_vref=v_read,
        v_read=v_read,
        pulse_width=width,
        v_max=v_max,
    ).validate()
    cell = "1T1R" if v_max / 2 >= 0.8 * min(v_set, -v_reset) else "0T1R"
    return m, cell


# -- device files --------------------------------------------------------

_FIELDS = {f.name: f for f in fields(DeviceModel)}
_TEXT = {"name", "source", "reproduces"}
REQUIRED_WITHOUT_PRESET = ("g_min", "g_max", "v_set", "v_reset")


def device_from_dict(data: dict, origin: str = "device") -> DeviceModel:
    """Build a validated DeviceModel from a mapping (a parsed device file).

    The mapping may name a preset to start from (``preset = "..."``); every
    other key must be a DeviceModel field. Without a preset the core fields
    g_min, g_max, v_set and v_reset are required.
    """
    data = dict(data)
    base_name = data.pop("preset", None)
    if base_name is not None:
        if base_name not in PRESETS:
            raise DeviceFileError(f"{origin}: unknown preset {base_name!r}; choose one of {', '.join(PRESETS)}")
        base = PRESETS[base_name]
    else:
        missing = [k for k in REQUIRED_WITHOUT_PRESET if k not in data]
        if missing:
            raise DeviceFileError(f"{origin}: missing parameter {', '.join(missing)} (or name a preset to start from)")
        base = DeviceModel(name="custom", threshold_spread=0.0, rate_spread=0.0, c2c_sigma=0.0)
    values = {}
    for key, value in data.items():
        if key not in _FIELDS or key == "notes":
            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DeviceFileError(f"{origin}: unknown parameter {key!r}{hint}")
        if key in _TEXT:
            if not isinstance(value, str):
                raise DeviceFileError(f"{origin}: {key} must be text")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise DeviceFileError(f"{origin}: {key} = {value!r} must be a number")
        values[key] = value if key in _TEXT else float(value)
    values.setdefault("name", base.name if base_name else Path(origin).stem)
    return dataclasses.replace(base, **values).validate()


def load_device(spec: str | Path | DeviceModel | None) -> DeviceModel:
    """A preset name, "generated:SEED" (random_device), a .toml/.json device file, or a DeviceModel."""
    if spec is None:
        return DeviceModel().validate()
    if isinstance(spec, DeviceModel):
        return spec.validate()
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    if text.startswith("generated:"):
        try:
            return random_device(int(text.split(":", 1)[1]))[0]
        except ValueError:
            raise DeviceFileError(f"{text!r}: a generated device is generated:SEED with an integer seed") from None
    path = Path(text)
    if not path.exists():
        raise DeviceFileError(
            f"{text!r} is neither a preset ({', '.join(PRESETS)}), generated:SEED nor an existing device file"
        )
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            data = tomllib.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DeviceFileError(f"{path}: not a valid {path.suffix.lstrip('.') or 'TOML'} file: {e}") from e
    if not isinstance(data, dict):
        raise DeviceFileError(f"{path}: the top level must be a table of parameters")
    data = data.get("device", data)
    if not isinstance(data, dict):
        raise DeviceFileError(f"{path}: [device] must be a table of parameters")
    return device_from_dict(data, origin=str(path))
