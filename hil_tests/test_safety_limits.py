"""Safety at the limit, for every command that pulses or reads.

One DAC step (or one timer tick) beyond a limit is refused with nothing
applied; at the limit and one step inside it the request is applied, and
what reached the array (the front end's own record of the largest voltage
across any device in a pulse or a conversion, and of the longest pulse) is
never beyond the limit. The limits sit between two DAC codes, nearer the
upper one, so rounding to the nearest code would pass them by 0.3 of a step.
`.ci/mutants.py` loosens the firmware's checks by one step and confirms
these tests fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from limits_probe import (
    DOWN,
    NET_V_IN,
    TICK,
    UP,
    Limits,
    Probe,
    config,
    ffp_trace,
    program,
    pulse,
    read,
    run_network,
    train,
    vmm,
)

from memctl_shared import wire

RV32 = True  # also on the 32-bit RISC-V target
RP2 = True  # and on the rp2 board (machine.SPI, Pin and the PIO gate)

Requests = Callable[[Limits], list]


@dataclass(frozen=True)
class Case:
    name: str
    requests: Requests
    # None: refused, nothing reaches the array. Else (peak, lowest, highest) it must show.
    expect: Callable[[Limits], tuple[str, float, float]] | None

    def __str__(self) -> str:
        return self.name


def amplitude(lim: Limits) -> tuple[str, float, float]:
    return "peak_pulse_v", lim.v_pulse - lim.lsb, lim.v_pulse


def read_v(lim: Limits) -> tuple[str, float, float]:
    return "peak_read_v", lim.v_read - lim.lsb, lim.v_read


def width(ticks_inside: int) -> Callable[[Limits], tuple[str, float, float]]:
    def expect(lim: Limits) -> tuple[str, float, float]:
        w = (lim.width_ticks - ticks_inside) * TICK
        return "peak_width", w - lim.gate - 1e-15, w + 1e-15  # never longer; a gate of coarser steps rounds down

    return expect


def over(v: float, lim: Limits) -> float:
    return v + lim.lsb if v > 0 else v - lim.lsb


ISPP, ADAPTIVE, FFP, PREDICT = wire.A_ISPP, wire.A_ADAPTIVE, wire.A_FFP, wire.A_PREDICT


def cases() -> list[Case]:
    c: list[Case] = []
    for s in (1, -1):
        sign = "+" if s > 0 else "-"
        c += [
            Case(f"PULSE {sign}V+1LSB", lambda L, s=s: [pulse(over(s * L.v_pulse, L), L.width / 2)], None),
            Case(f"PULSE {sign}V", lambda L, s=s: [pulse(s * L.v_pulse, L.width / 2)], amplitude),
            Case(f"PULSE {sign}V-1LSB", lambda L, s=s: [pulse(s * (L.v_pulse - L.lsb), L.width / 2)], amplitude),
            Case(f"PULSE_TRAIN v_set {sign}V+1LSB", lambda L, s=s: [train(over(s * L.v_pulse, L), L.width)], None),
            Case(f"PULSE_TRAIN v_set {sign}V", lambda L, s=s: [train(s * L.v_pulse, L.width)], amplitude),
            Case(
                f"PULSE_TRAIN v_anti {sign}V+1LSB",
                lambda L, s=s: [train(0.5, L.width / 4, over(s * L.v_pulse, L), L.width)],
                None,
            ),
            Case(
                f"PULSE_TRAIN v_anti {sign}V",
                lambda L, s=s: [train(0.5, L.width / 4, s * L.v_pulse, L.width)],
                amplitude,
            ),
            Case(
                f"PULSE_TRAIN v_r {sign}VR+1LSB",
                lambda L, s=s: [train(0.5, L.width / 4, v_r=over(s * L.v_read, L))],
                None,
            ),
            Case(f"PULSE_TRAIN v_r {sign}VR", lambda L, s=s: [train(0.5, L.width / 4, v_r=s * L.v_read)], read_v),
            Case(f"VMM {sign}VR+1LSB", lambda L, s=s: [vmm(4, 1, over(s * L.v_read, L))], None),
            Case(f"VMM {sign}VR", lambda L, s=s: [vmm(4, 1, s * L.v_read)], read_v),
            Case(f"VMM {sign}VR-1LSB", lambda L, s=s: [vmm(4, 1, s * (L.v_read - L.lsb))], read_v),
            # A network's inputs beyond the read limit are clipped to it.
            Case(
                f"RUN_NETWORK {sign}VR+1LSB", lambda L, s=s: [run_network(over(s * L.v_read, L) / NET_V_IN, 0)], read_v
            ),
            Case(f"RUN_NETWORK {sign}1e6", lambda L, s=s: [run_network(s * 1e6, -s * 1e6)], read_v),
        ]
    c += [
        Case("PULSE width W+1tick", lambda L: [pulse(0.5, L.width + TICK)], None),
        Case("PULSE width W", lambda L: [pulse(0.5, L.width)], width(0)),
        Case("PULSE width W-1tick", lambda L: [pulse(0.5, L.width - TICK)], width(1)),
        Case("PULSE_TRAIN t_set W+1tick", lambda L: [train(0.5, L.width + TICK)], None),
        Case("PULSE_TRAIN t_set W", lambda L: [train(0.5, L.width)], width(0)),
        Case("PULSE_TRAIN t_anti W+1tick", lambda L: [train(0.5, L.width / 4, -0.5, L.width + TICK)], None),
        Case("PULSE_TRAIN t_anti W", lambda L: [train(0.5, L.width / 4, -0.5, L.width)], width(0)),
        Case("CONFIG v_read VR+1LSB", lambda L: [config(L.v_read + L.lsb)], None),
        Case("CONFIG v_read VR, READ", lambda L: [config(L.v_read), read(), config(0.1)], read_v),
        Case("CONFIG v_read VR-1LSB, READ", lambda L: [config(L.v_read - L.lsb), read(), config(0.1)], read_v),
    ]
    # PROGRAM with each algorithm: a start or candidate beyond a limit is refused before
    # the first pulse; at the limit, a far target drives pulses to it (amplitude growth,
    # width doubling, FFP table values and predictions all beyond it are clamped).
    for target, s, way in ((UP, 1, "set"), (DOWN, -1, "reset")):
        c += [
            Case(f"ISPP {way} start V+1LSB", lambda L, s=s: [program(ISPP, ispp(L, s, over(L.v_pulse, L)), UP)], None),
            Case(
                f"ISPP {way} start V-1LSB, growing",
                lambda L, s=s, t=target: [program(ISPP, ispp(L, s, L.v_pulse - L.lsb), t)],
                amplitude,
            ),
            Case(
                f"adaptive {way} start V+1LSB",
                lambda L, s=s: [program(ADAPTIVE, adaptive(L, s, over(L.v_pulse, L)), UP)],
                None,
            ),
            Case(
                f"adaptive {way} start V-1LSB, growing",
                lambda L, s=s, t=target: [program(ADAPTIVE, adaptive(L, s, L.v_pulse - L.lsb), t, 6)],
                amplitude,
            ),
            Case(f"FFP {way} start V+1LSB", lambda L, s=s: [program(FFP, ffp(L, s, over(L.v_pulse, L)), UP)], None),
            Case(f"FFP {way} table beyond V", lambda L, t=target: [program(FFP, ffp(L, 1, 0.5), t)], amplitude),
            Case(
                f"predicted {way} candidates to V+1LSB",
                lambda L, s=s: [program(PREDICT, predicted(L, s, over(L.v_pulse, L)), UP)],
                None,
            ),
            Case(
                f"predicted {way} candidates to V",
                lambda L, s=s, t=target: [program(PREDICT, predicted(L, s, L.v_pulse), t, 2)],
                amplitude,
            ),
            Case(f"FFP_TRACE {way} start V+1LSB", lambda L, s=s: [ffp_trace(ffp(L, s, over(L.v_pulse, L)), s)], None),
            Case(f"FFP_TRACE {way} table beyond V", lambda L, s=s: [ffp_trace(ffp(L, 1, 0.5), s)], amplitude),
        ]
    c += [
        Case("ISPP width W+1tick", lambda L: [program(ISPP, ispp(L, 1, 0.5, L.width + TICK), UP)], None),
        Case("ISPP width W", lambda L: [program(ISPP, ispp(L, 1, 0.5, L.width), UP)], width(0)),
        Case("adaptive width0 W+1tick", lambda L: [program(ADAPTIVE, adaptive(L, 1, 0.5, L.width + TICK), UP)], None),
        # width_max beyond the limit is allowed: doubling stops at the limit.
        Case("adaptive widths doubling past W", lambda L: [program(ADAPTIVE, adaptive(L, 1, 0.5), UP, 8)], width(0)),
        Case("FFP width W+1tick", lambda L: [program(FFP, ffp(L, 1, 0.5, L.width + TICK), UP)], None),
        Case("FFP width W", lambda L: [program(FFP, ffp(L, 1, 0.5, L.width), UP)], width(0)),
        Case("predicted t_hi W+1tick", lambda L: [program(PREDICT, predicted(L, 1, 1.0, L.width + TICK), UP)], None),
        Case("predicted t_hi W", lambda L: [program(PREDICT, predicted(L, 1, 1.0, L.width), UP, 2)], width(0)),
        Case("FFP_TRACE width W+1tick", lambda L: [ffp_trace(ffp(L, 1, 0.5, L.width + TICK))], None),
    ]
    return c


def ispp(lim: Limits, s: int, start: float, w: float | None = None) -> tuple:
    """Start `start` V on polarity s (the other at 0.5 V), steps of 0.5 V: growth passes the limit at once."""
    v_set, v_reset = (start, -0.5) if s > 0 else (0.5, -start)
    return v_set, 0.5, v_reset, 0.5, w or lim.width


def adaptive(lim: Limits, s: int, start: float, w0: float | None = None) -> tuple:
    """Start `start` V, steps of 0.5 V, widths from w0 (default W/4) doubling toward 10 W."""
    v_set, v_reset = (start, -0.5) if s > 0 else (0.5, -start)
    return v_set, v_reset, 0.5, w0 or lim.width / 4, 10 * lim.width, 0.5, 2.0


def ffp(lim: Limits, s: int, start: float, w: float | None = None) -> tuple:
    v_set, v_reset = (start, -0.5) if s > 0 else (0.5, -start)
    return 1e-7, 1e-6, v_set, v_reset, 0.1, w or lim.width, 0.0


def predicted(lim: Limits, s: int, hi: float, t_hi: float | None = None) -> tuple:
    """Candidates from 0.1 V to `hi` on polarity s (the other to 1 V), widths W/10 .. t_hi."""
    v_set_hi, v_reset_hi = (hi, -1.0) if s > 0 else (1.0, -hi)
    return 0.1, v_set_hi, -0.1, v_reset_hi, lim.width / 10, t_hi or lim.width, 4, 2


@pytest.fixture(scope="module")
def probe(hal):
    p = Probe(hal)
    yield p
    p.close()


@pytest.mark.parametrize("case", cases(), ids=str)
def test_limit_plus_one_step_is_refused_and_the_limit_is_never_passed(probe, case):
    lim = probe.limits
    o = probe.send(*case.requests(lim))
    probe.assert_within(o)
    if case.expect is None:
        assert o.refused and o.error.code == wire.E_LIMIT, f"{case}: applied ({o.seen}), not refused"
        assert (o.seen.pulses, o.seen.conversions) == (0, 0), f"{case}: refused, but the array saw {o.seen}"
        return
    assert not o.refused, f"{case}: refused: {o.error}"
    peak, lo, hi = case.expect(lim)
    assert lo <= getattr(o.seen, peak) <= hi, f"{case}: {peak} {getattr(o.seen, peak)!r} outside [{lo!r}, {hi!r}]"


def test_the_read_voltage_set_at_the_limit_survives_a_reset(probe):
    """The stored read voltage is put back on the grid inside the limit at boot, too."""
    lim = probe.limits
    probe.send(config(lim.v_read))
    probe.emu.reset()
    probe.board.resync()
    o = probe.send(read())
    probe.assert_within(o)
    assert lim.v_read - lim.lsb <= o.seen.peak_read_v <= lim.v_read
    probe.send(config(0.1))
