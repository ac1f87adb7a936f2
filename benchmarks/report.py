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


def _spread(values: list[float]) -> str:
    """A ratio over the seeds: its mean, and its range where the seeds differ."""
    lo, hi = min(values), max(values)
    mean = sum(values) / len(values)
    return f"{mean:.2f}" if hi - lo < 0.005 else f"{mean:.2f} ({lo:.2f}–{hi:.2f})"


def programming(d: dict) -> str:
    """Per family and algorithm, means over the board seeds; ratios per seed (their range in brackets)."""
    out = [
        "| family | method | success | pulses (reached) | ÷ oracle | board time s (row-parallel) | "
        "÷ best baseline | serial s | energy J | ÷ best baseline | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family, f in d["families"].items():
        for k, (method, v) in enumerate(f["algorithms"].items()):
            oracle = method == "oracle"
            out.append(
                f"| {family + ' (' + f['cell'] + ')' if k == 0 else ''} | {method} | {pct(v['success'], 1)} "
                f"| {v['pulses_mean_ok']:.1f} | {_spread(v['pulses_vs_oracle'])} "
                f"| {sci(v['board_time_s'])} | {'' if oracle else _spread(v['board_time_s_vs_best_baseline'])} "
                f"| {'' if oracle else sci(v['board_time_serial_s'])} | {sci(v['energy_J'])} "
                f"| {'' if oracle else _spread(v['energy_J_vs_best_baseline'])} | {v['wall_s']:.1f} |"
            )
    return "\n".join(out)


def programming_goals(d: dict) -> str:
    """The goals per family, at the worst seed; ✗ marks a miss."""
    out = [
        "| family | success − best baseline (≥ −0.5 pt) | board time ÷ best (≤ 1) | energy ÷ best (≤ 1) | "
        "pulses ÷ best adaptive (≤ 0.5) | pulses ÷ oracle (≤ 2) | tuned ÷ untuned adaptive (≤ 0.85) | "
        "int8 ÷ float MSE (≤ 1.1) | inferences / pulse (≤ 3) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def mark(value: float, ok: bool) -> str:
        return f"{value:.2f}" + ("" if ok else " ✗")

    for family, g in d["goals"].items():
        tuned = max(g["tuned_vs_untuned"])
        out.append(
            f"| {family} | {g['success_gap_pt']:+.1f} pt{'' if g['success_ok'] else ' ✗'} "
            f"| {mark(g['board_time_vs_best'], g['board_time_vs_best'] <= 1)} "
            f"| {mark(g['energy_vs_best'], g['energy_vs_best'] <= 1)} "
            f"| {mark(g['pulses_vs_best_adaptive'], g['le_0.5x_best_adaptive'])} "
            f"| {mark(g['pulses_vs_oracle'], g['le_2x_oracle'])} | {mark(tuned, tuned <= 0.85)} "
            f"| {mark(g['int8_vs_float_mse'], g['int8_vs_float_mse'] <= 1.1)} "
            f"| {mark(g['inferences_per_pulse'], g['inferences_per_pulse'] <= 3)} |"
        )
    return "\n".join(out)


def programming_user_path(d: dict) -> str:
    out = [
        "| family (1T1R, 16x16) | characterized (family's) | method | success | pulses (reached) "
        "| board time s | ÷ best baseline | energy J | ÷ best baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, f in d["user_path"].items():
        a, p = f["algorithms"], f["predictor"]
        best_t = min(a[k]["board_time_s"] for k in ("ispp", "adaptive"))
        best_e = min(a[k]["energy_J"] for k in ("ispp", "adaptive"))
        for k, (method, v) in enumerate(a.items()):
            head = (
                f"{family}, {f['levels']} levels | {p['covered_uA'][0]:.3g}–{p['covered_uA'][1]:.3g} µA "
                f"({p['family_uA'][0]:.3g}–{p['family_uA'][1]:.3g})"
                if k == 0
                else " | "
            )
            out.append(
                f"| {head} | {method} | {pct(v['success'], 1)} | {v['pulses_mean_ok']:.1f} "
                f"| {sci(v['board_time_s'])} | {v['board_time_s'] / best_t:.2f} | {sci(v['energy_J'])} "
                f"| {v['energy_J'] / best_e:.2f} |"
            )
    return "\n".join(out)


def programming_ablation(d: dict) -> str:
    """The firmware's rule with one part off: pulses on reached devices (success where below 100 %),
    board time and energy as multiples of the full rule's."""
    heads = {
        "full": "as shipped",
        "static": "no per-device adaptation",
        "longest_width": "longest width past the amplitude limit",
        "no_gain": "no gain",
        "no_escalation": "no escalations",
    }
    out = ["| family | " + " | ".join(heads.values()) + " |", "|---|" + "---|" * len(heads)]
    for family, f in d["families"].items():
        full = f["full"]
        cells = []
        for mode in heads:
            m = f[mode]
            cells.append(
                f"{m['pulses_ok']:.1f}"
                + ("" if m["success"] == 1 else f" ({pct(m['success'])})")
                + ("" if mode == "full" else f", {m['board_time_s'] / full['board_time_s']:.2f}× t")
                + ("" if mode == "full" else f", {m['energy_J'] / full['energy_J']:.2f}× E")
            )
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
    "programming-user-path": ("programming.json", programming_user_path),
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
