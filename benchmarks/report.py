"""The docs' tables of measured figures, rendered from what they quote: the
benchmarks' committed JSON (and the device presets), so a table cannot
disagree with its source.

    python benchmarks/report.py           # check: exit 1 naming every stale table
    python benchmarks/report.py --write   # rewrite the tables in docs/

A table sits in a doc between `<!-- table: NAME -->` and `<!-- /table -->`;
NAME picks its renderer below. The benchmark scripts print the same tables
from the same functions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def sci(x: float, digits: int = 2) -> str:
    """4.1e-6, not 4.1e-06."""
    mantissa, exp = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exp)}"


def pct(x: float, decimals: int = 0) -> str:
    return f"{100 * x:.{decimals}f} %"


def reliability(d: dict) -> str:
    out = [
        "| fault | rate | operations | completed | undetected errors | slowdown × | retries | resyncs | reconnects |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in d["scenarios"]:
        out.append(
            f"| {r['fault']} | {r['rate']} | {r['attempted']} | {r['completed']} | {r['undetected']} | "
            f"{r['slowdown']:.1f} | {r['retries']} | {r['resyncs']} | {r['reconnects']} |"
        )
    return "\n".join(out)


def programming(d: dict) -> str:
    out = ["| family | method | success | pulses (common) | ÷ oracle | ÷ tuned adaptive |", "|---|---|---|---|---|---|"]
    for family, f in d["families"].items():
        for k, (method, v) in enumerate(f["algorithms"].items()):
            out.append(
                f"| {family + ' (' + f['cell'] + ')' if k == 0 else ''} | {method} | {pct(v['success'], 1)} "
                f"| {v['pulses_mean_common']:.1f} | {v['pulses_vs_oracle']:.2f} | {v['pulses_vs_tuned_adaptive']:.2f} |"
            )
    return "\n".join(out)


def programming_goals(d: dict) -> str:
    out = [
        "| family | predicted ÷ oracle (≤ 1.5) | ÷ best adaptive (≤ 0.5) | success − that adaptive | "
        "wall ÷ adaptive (≤ 1.5) | int8 ÷ float MSE (≤ 1.1) | inferences / pulse | µs / decision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, g in d["goals"].items():
        p = d["families"][family]["predictor"]

        def mark(value: float, ok: bool) -> str:
            return f"{value:.2f}" + ("" if ok else " ✗")

        out.append(
            f"| {family} | {mark(g['predicted_vs_oracle'], g['le_1.5x_oracle'])} "
            f"| {mark(g['predicted_vs_best_adaptive'], g['le_0.5x_best_adaptive'])}"
            f"{'' if g['best_adaptive'] == 'adaptive_tuned' else ' (untuned)'} "
            f"| {g['success_gap_pt']:+.1f} pt{'' if g['success_ok'] else ' ✗'} "
            f"| {mark(g['wall_vs_adaptive'], g['wall_ok'])} "
            f"| {mark(g['int8_vs_float_mse'], g['int8_vs_float_mse'] <= 1.1)} "
            f"| {p['inferences_per_pulse']:.2f} | {p['decision_us']:.0f} |"
        )
    return "\n".join(out)


def programming_overshoot(d: dict) -> str:
    """predicted at overshoot penalty 0 (its default), at fixed penalties, and tuned by memctl tune."""
    out = None
    for family, f in d["families"].items():
        fixed = {k.removeprefix("predicted_overshoot_"): v for k, v in f["algorithms"].items() if "_overshoot_" in k}
        runs = {"0": f["algorithms"]["predicted"], **fixed}
        if out is None:
            out = [
                "| family | "
                + " | ".join(f"overshoot {n}: pulses (success)" for n in runs)
                + " | tuned: overshoot, pulses (success) | inferences / pulse, µs / decision (penalty > 0) |",
                "|---|" + "---|" * (len(runs) + 2),
            ]
        cells = [f"{v['pulses_mean_common']:.1f} ({pct(v['success'], 1)})" for v in runs.values()]
        t = f["algorithms"]["predicted_tuned"]
        cells.append(
            f"{f['tuning_predicted']['overshoot']:.2f}, {t['pulses_mean_common']:.1f} ({pct(t['success'], 1)})"
        )
        p = f["predictor"]
        cells.append(f"{p['inferences_per_pulse_overshoot']:.2f}, {p['decision_us_overshoot']:.0f}")
        out.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(out or [])


def programming_ablation(d: dict) -> str:
    """The host replica's ablations: pulses per device reaching its target (the share, where below 100 %)."""
    heads = {
        "full": "as shipped",
        "static": "no per-device adaptation",
        "true_offset": "given the true threshold shift",
        "trains_data": "trained on paper-004 trains",
        "aim_0.8": "aiming 80 % of the way",
        "overshoot_1": "overshoot penalty 1",
        "overshoot_3": "overshoot penalty 3",
    }
    out = ["| family | " + " | ".join(heads.values()) + " |", "|---|" + "---|" * len(heads)]
    for family, f in d["families"].items():
        cells = []
        for mode in heads:
            m = f["modes"].get(mode)
            if m is None:
                cells.append("")
            else:
                cells.append(f"{m['pulses_ok']:.1f}" + ("" if m["success"] == 1 else f" ({pct(m['success'])})"))
        out.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def predictor(d: dict) -> str:
    c, ds, size, online = d["cost"], d["data_study"], d["data_size"], d["online_adaptation"]
    ratio = c["test_mse_int8"] / c["test_mse_float"]
    rows = [
        (
            f"test MSE, float / int8 ({c['params']} parameters)",
            f"{sci(c['test_mse_float'])} / {sci(c['test_mse_int8'])} (ratio {ratio:.2f}; target ≤ 1.1)",
        ),
        (
            "test MSE without the scaled read current as a feature",
            f"{sci(ds['without_I_n'])} ({ds['without_I_n'] / ds['with_I_n']:.1f}× the MSE with it)",
        ),
        ("test MSE at 0.1 % / 20 % of the data (paper A1: 0.07 / 0.006)", f"{sci(size['0.001'])} / {sci(size['0.2'])}"),
        (f"FLOP per inference (paper A1: {c['paper_flop_A1']})", f"{c['flop_per_inference']}"),
        (
            "µs per inference: MicroPython float / int8 (native emitter), numpy, onnxruntime",
            f"{c['micropython_float_us']:.0f} / {c['micropython_int8_us']:.0f}, {c['numpy_us']:.1f}, "
            f"{c['onnxruntime_us']:.1f}",
        ),
        (
            "firmware heap for the model, float / int8",
            f"{c['firmware_heap_float_bytes'] / 1000:.1f} / {c['firmware_heap_int8_bytes'] / 1000:.1f} KB",
        ),
        (
            "predictor-guided pulses on unseen devices, online scale on / off",
            f"{online['adaptive']['pulses_mean']:.1f} / {online['static']['pulses_mean']:.1f} "
            f"({pct(online['adaptive']['success'])} / {pct(online['static']['success'])} success)",
        ),
    ]
    return "\n".join(["| | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def ffp_levels(d: dict) -> str:
    from memctl.ffp import PAPER_NU_D, PAPER_NU_P, PAPER_SKIPPED

    pot, dep, lv = d["potentiation"], d["depression"], d["levels"]

    def per_n(key: str) -> str:
        return " / ".join(sci(lv[n][key]["nu"]) for n in ("32", "128", "512"))

    def paper(table: dict) -> str:
        return " / ".join(sci(table[n], 3) for n in (32, 128, 512))

    def skipped(n: str) -> str:
        return f"{lv[n]['potentiation']['skipped']} / {lv[n]['depression']['skipped']}"

    rows = [
        (
            "events per potentiation / depression sweep",
            f"{pot['events']} / {dep['events']}",
            f"{pot['paper_events']} ± 11 / {dep['paper_events']} ± 17",
        ),
        (
            "steps inside 0.1 < \\|ΔR\\| < 0.3 Ω",
            f"{pct(pot['share_in_window'])} / {pct(dep['share_in_window'])}",
            "(the design goal)",
        ),
        (
            "V_w span",
            f"{min(pot['v_w_range'][0], dep['v_w_range'][0]):.2f}–"
            f"{max(pot['v_w_range'][1], dep['v_w_range'][1]):.1f} V",
            "0.3–7 V",
        ),
        ("ν_p at n = 32 / 128 / 512", per_n("potentiation"), paper(PAPER_NU_P)),
        ("ν_d at n = 32 / 128 / 512", per_n("depression"), paper(PAPER_NU_D)),
        ("skipped levels pot / dep, n = 32", skipped("32"), "{} / {}".format(*PAPER_SKIPPED[32])),
        ("skipped levels pot / dep, n = 512", skipped("512"), "{} / {}".format(*PAPER_SKIPPED[512])),
    ]
    lines = ["| | ours | paper 001 |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def presets(_: None) -> str:
    from memctl.devices import PRESETS, DeviceModel

    names = ["pt_al2o3_tio2_passive", "hfo2_tio2_bilayer", "tio2_4terminal", "perovskite_lognormal"]
    out = ["| parameter | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for f in fields(DeviceModel):
        if isinstance(getattr(DeviceModel(), f.name), float | int):
            out.append(f"| {f.name} | " + " | ".join(f"{getattr(PRESETS[n], f.name):.4g}" for n in names) + " |")
    return "\n".join(out)


# name -> (JSON under results/ it quotes, or None; renderer)
TABLES: dict[str, tuple[str | None, Callable]] = {
    "reliability": ("reliability.json", reliability),
    "programming": ("programming.json", programming),
    "programming-goals": ("programming.json", programming_goals),
    "programming-overshoot": ("programming.json", programming_overshoot),
    "programming-ablation": ("programming_ablation.json", programming_ablation),
    "predictor": ("predictor.json", predictor),
    "ffp-levels": ("ffp_levels.json", ffp_levels),
    "presets": (None, presets),
}


def render(name: str) -> str:
    source, fn = TABLES[name]
    return fn(json.loads((RESULTS / source).read_text()) if source else None) + "\n"


def sync(write: bool) -> list[str]:
    """Docs tables that differ from their renderings (rewritten when write)."""
    stale = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text()

        def fresh(m: re.Match, doc: Path = doc) -> str:
            name = m["name"]
            if name not in TABLES:
                raise SystemExit(f"{doc.name}: unknown table {name!r} (known: {', '.join(TABLES)})")
            body = render(name)
            if body != m["body"]:
                stale.append(f"{doc.relative_to(ROOT)}: table {name}")
            return m[1] + body + m[4]

        new = BLOCK.sub(fresh, text)
        if write and new != text:
            doc.write_text(new)
    return stale


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="rewrite stale tables instead of failing")
    a = ap.parse_args()
    stale = sync(a.write)
    for s in stale:
        print(("rewrote " if a.write else "stale: ") + s)
    if stale and not a.write:
        print("run `python benchmarks/report.py --write` after rerunning the benchmark, and commit both")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
