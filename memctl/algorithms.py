"""Algorithm settings: what the board's PROGRAM request carries for each
programming algorithm, as dataclasses whose fields are the names wire.PARAMS
declares (the firmware reads the same names)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memctl_shared import wire


@dataclass(frozen=True)
class ISPP:
    """Write-verify with a fixed amplitude step (incremental step pulse
    programming), the baseline. Identical pulses when the steps are 0; the
    amplitude restarts on polarity reversal (overshoot). Paper 003 tuned with
    write-verify at 30 % / 7.5 % / 2.5 % tolerance and at most 300 pulses."""

    v_set_start: float = 0.9
    v_set_step: float = 0.02
    v_reset_start: float = -1.1
    v_reset_step: float = 0.02
    width: float = 100e-6

    code = wire.A_ISPP

    def params(self) -> list[float]:
        return _params(self, wire.PARAMS[self.code])


WriteVerify = ISPP


@dataclass(frozen=True)
class Adaptive:
    """Write-verify that adapts amplitude and width from the last observed
    change (after Alibart, Strukov et al., the tuning behind paper 003): a
    pulse that closed less than gain_lo of the error is followed by a stronger
    one, an overshoot beyond gain_hi by a weaker one."""

    v_set_start: float = 0.9
    v_reset_start: float = -1.1
    v_step: float = 0.05
    width: float = 100e-6
    width_max: float = 1e-3
    gain_lo: float = 0.3
    gain_hi: float = 1.5

    code = wire.A_ADAPTIVE

    def params(self) -> list[float]:
        return _params(self, wire.PARAMS[self.code])


@dataclass(frozen=True)
class FFP:
    """Feedforward pulses (paper 001): the board reads G and applies the write
    voltage its V_w(G) table gives for a step inside [window_lo, window_hi]
    (S); with learn on, each observed step refines the table. Needs a table:
    see memctl.ffp.calibrate. Paper 001: 0.1 ohm < |dR| < 0.3 ohm, 0.8 s pulses."""

    window_lo: float
    window_hi: float
    v_set_start: float = 0.5
    v_reset_start: float = -0.5
    v_step: float = 0.05
    width: float = 0.8
    learn: bool = True

    code = wire.A_FFP

    def params(self) -> list[float]:
        return _params(self, wire.PARAMS[self.code])


@dataclass
class FFPTable:
    """V_w(G) per direction over conductance bins; 0 = not learned."""

    g_lo: float
    g_hi: float
    v_set: np.ndarray
    v_reset: np.ndarray

    @classmethod
    def empty(cls, g_lo: float, g_hi: float, bins: int = 32) -> FFPTable:
        return cls(g_lo, g_hi, np.zeros(bins), np.zeros(bins))


@dataclass(frozen=True)
class Predicted:
    """Predictor-guided (paper 004). Needs a loaded predictor; what the board
    does depends on its kind.

    Inverse (single-pulse characterization): the model proposes the amplitude
    for the step to the target at `t_lo` (at `t_hi` past the amplitude limit),
    corrected by a per-device threshold shift learned from every step. A model
    with a spread output aims at the tolerance band; `overshoot` (>= 0) is how
    much worse landing beyond the band counts than landing inside it is worth:
    0 aims at the middle of the band, more backs off by the predicted spread.

    Forward (paper 004's trains): for each of `widths` log-spaced widths the
    board bisects the amplitude (`amplitudes` halvings between the lo/hi
    voltages of the needed polarity) and applies the landing nearest the target."""

    v_set_lo: float = 1.0
    v_set_hi: float = 3.0
    v_reset_lo: float = -0.5
    v_reset_hi: float = -2.5
    t_lo: float = 0.02
    t_hi: float = 0.5
    amplitudes: int = 8
    widths: int = 3
    adapt: bool = True  # online per-device adaptation from observed increments
    overshoot: float = 0.0

    @property
    def code(self) -> int:
        return wire.A_PREDICT | (0 if self.adapt else wire.A_STATIC)

    def params(self, inverse: bool = False) -> list[float]:
        """The board's 8 parameters; the last two depend on the kind of model loaded."""
        return _params(self, wire.PARAMS_INVERSE if inverse else wire.PARAMS[wire.A_PREDICT])


Algorithm = ISPP | Adaptive | FFP | Predicted


def _params(algo: object, names: tuple[str, ...]) -> list[float]:
    """The board's parameter vector: the fields wire.PARAMS names, in its order, 0 after."""
    values = [float(getattr(algo, n)) for n in names]
    return values + [0.0] * (wire.N_PARAMS - len(values))
