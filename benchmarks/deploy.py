"""Deploy benchmark: trained networks on emulated crossbars, digital vs deployed, in one run.

    python benchmarks/deploy.py [--tasks letters,digits,moons]

letters  paper 003's 4x4 letter classifier (16-10-4, tanh): 40 training
         patterns (A, T, V, X and nine one-pixel variants each), 640 test
         patterns (one more pixel flipped), +-0.2 V inputs, on a 32x32
         pt_al2o3_tio2_passive board (2 % stuck devices, formed first):
         hardware-oblivious vs hardware-aware placement, beside the paper's
         100 % / 82.34 % (software), 95 % / 79.06 % and 100 % / 81.4 % (hardware).
digits   scikit-learn's 8x8 digits, 64-16-10, trained normally (ERM) and with
         BayesMulti noise-aware training (paper 000) whose (p1, p2) a GP
         Bayesian optimization picks against a Student-t program-error model
         (paper 001 eqs. 4-5) fitted from the ERM deployment's own programming
         results; deployed on 96x64 tio2_4terminal and pt_al2o3_tio2_passive
         1T1R boards (no write disturb). Goal: deployed within 1 point of digital.
moons    paper 000's crossbar task: two-moons on a 10x10 perovskite_lognormal
         1T1R array (2-3-2), ERM vs BayesMulti.
exporters  ONNX files as exporters write them, deployed whole (memctl.onnx_graph:
         host parts on onnxruntime): skl2onnx of a StandardScaler + MLPClassifier
         (64-24-10) pipeline, and a small CNN on the digit images (Conv 3x3 stride 2
         as im2col, then a dense layer; memctl.example_models.digits_cnn), each on
         a default-device 1T1R board with the training set as the representative
         sample (read voltages, then calibration on 128 of each layer's inputs).
         Digital = onnxruntime on the original file. Goal: within 1 point.

Every deployment reports pulses, board time and energy. Inference runs the
whole MLP on the controller (RUN_NETWORK). Writes benchmarks/results/deploy.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import memctl
from memctl.deployment import Deployment, deploy
from memctl.devices import PRESETS
from memctl.noise_model import StudentTError
from memctl.robust_training import TrainConfig, accuracy, bayes_multi, train_mlp
from memctl.tuning import form, settings_for
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "deploy.json"
SEED = 3
LETTERS = {
    "A": ["0110", "1001", "1111", "1001"],
    "T": ["1111", "0110", "0110", "0110"],
    "V": ["1001", "1001", "1001", "0110"],
    "X": ["1001", "0110", "0110", "1001"],
}


def letter_patterns(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.array([[int(c) for c in "".join(rows)] for rows in LETTERS.values()]) * 2 - 1
    train_x, train_y = [], []
    for k, p in enumerate(base):
        train_x.append(p)
        for pixel in rng.choice(16, 9, replace=False):
            q = p.copy()
            q[pixel] *= -1
            train_x.append(q)
        train_y += [k] * 10
    train_x, train_y = np.array(train_x, float), np.array(train_y)
    test_x = np.array([np.where(np.arange(16) == i, -x, x) for x in train_x for i in range(16)], float)
    return train_x, train_y, test_x, np.repeat(train_y, 16)


def g_range_of(preset: str) -> tuple[float, float]:
    """The device's range less 5 % at each end, so every target is reachable."""
    d = PRESETS[preset]
    m = 0.05 * (d.g_max - d.g_min)
    return d.g_min + m, d.g_max - m


def deployed(
    layers,
    preset: str,
    shape: tuple[int, int],
    sets: dict,
    *,
    aware: bool,
    v_in: float | None = None,
    cell: str = "0T1R",
):
    """Deploy on a fresh emulated board (same seed: same devices and defects),
    calibrate, run every data set on the controller. Returns (summary, deployment)."""
    s = settings_for(preset)
    g_range = g_range_of(preset)
    start = time.monotonic()
    with (
        EmulatedBoard(rows=shape[0], cols=shape[1], seed=SEED, device=preset, cell=cell) as emu,
        memctl.Board(emu.port) as b,
    ):
        s.apply(b)
        if PRESETS[preset].v_form:
            form(b, 0.9 * PRESETS[preset].v_form)
        dep = deploy(
            layers,
            b,
            algorithm=s.adaptive,
            tolerance=s.tolerance,
            max_pulses=300,
            g_range=g_range,
            aware=aware,
            v_in=v_in,
        )
        wall = time.monotonic() - start
        raw = {k: dep.run(b, x, calibrated=False) for k, (x, _) in sets.items()}
        dep.calibrate(b, samples=32)
        cal = {k: dep.run(b, x) for k, (x, _) in sets.items()}
    acc = lambda out, y: float(np.mean(np.argmax(out, 1) == y))  # noqa: E731
    summary = {
        "raw": {k: acc(raw[k], y) for k, (_, y) in sets.items()},
        "calibrated": {k: acc(cal[k], y) for k, (_, y) in sets.items()},
        "layer_weight_rms_error": dep.layer_errors(),
        "v_in": dep.v_in,
        "wall_s": wall,
        **dep.cost(),
        "defects_found": int(sum(np.sum(sc["defect"]) for sc in dep.scans if sc)) if aware else None,
    }
    return summary, dep


def program_errors(dep: Deployment) -> tuple[np.ndarray, np.ndarray]:
    """Targets and achieved conductances of every programmed device."""
    t = np.concatenate([np.ravel(p.targets) for p in dep.placements])
    a = np.concatenate([np.ravel(p.achieved) for p in dep.placements])
    return t, a


def letters(report: dict) -> None:
    xtr, ytr, xte, yte = letter_patterns()
    layers = train_mlp(xtr, ytr, TrainConfig(hidden=(10,), activation="Tanh", epochs=400, seed=0))
    sets = {"train": (xtr, ytr), "test": (xte, yte)}
    r = {"digital": {k: accuracy(layers, x, y) for k, (x, y) in sets.items()}}
    for aware in (False, True):
        r["aware" if aware else "oblivious"], _ = deployed(
            layers, "pt_al2o3_tio2_passive", (32, 32), sets, aware=aware, v_in=0.2
        )
    report["letters"] = r
    print("\n### 4x4 letters, 16-10-4 (paper 003), pt_al2o3_tio2_passive 32x32, +-0.2 V inputs\n")
    print("| model | train | test (640, one pixel flipped) |\n|---|---|---|")
    print(f"| digital | {r['digital']['train']:.1%} | {r['digital']['test']:.2%} |")
    for k in ("oblivious", "aware"):
        for c in ("raw", "calibrated"):
            print(f"| deployed, {k}, {c} | {r[k][c]['train']:.1%} | {r[k][c]['test']:.2%} |")
    print(
        "| paper 003 software | 100 % | 82.34 % |\n| paper 003 hardware (oblivious / aware) | 95 % / 100 % "
        "| 79.06 % / 81.4 % |"
    )
    print(
        f"\nstuck devices found by the pre-scan: {r['aware']['defects_found']}; weight RMS error per layer "
        f"oblivious {np.round(r['oblivious']['layer_weight_rms_error'], 4).tolist()}, aware "
        f"{np.round(r['aware']['layer_weight_rms_error'], 4).tolist()}"
    )


def erm_vs_bayesmulti(name: str, preset: str, shape, data, config: TrainConfig, n_iter: int) -> dict:
    """Train ERM, deploy it, fit the board's program error, search BayesMulti
    against it, deploy that too."""
    (xtr, ytr), (xva, yva), (xte, yte) = data
    sets = {"test": (xte, yte)}
    erm = train_mlp(xtr, ytr, config)
    r = {"digital_erm": accuracy(erm, xte, yte)}
    r["erm"], dep = deployed(erm, preset, shape, sets, aware=True, cell="1T1R")
    model = StudentTError.fit(*program_errors(dep), g_range_of(preset))
    r["program_error_model"] = {"loc": model.loc.tolist(), "scale": model.scale.tolist(), "df": model.df.tolist()}
    search = bayes_multi(xtr, ytr, xva, yva, model, config, init_points=3, n_iter=n_iter, g_range=g_range_of(preset))
    r["bayesmulti_p"] = [float(search.noise.p1), float(search.noise.p2)]
    r["bo_trials"] = [[float(v) for v in t] for t in search.trials]
    r["digital_bayesmulti"] = accuracy(search.layers, xte, yte)
    r["bayesmulti"], _ = deployed(search.layers, preset, shape, sets, aware=True, cell="1T1R")
    p1, p2 = r["bayesmulti_p"]
    rows = (
        ("ERM", r["digital_erm"], r["erm"]),
        (f"BayesMulti {p1:.2f}/{p2:.2f}", r["digital_bayesmulti"], r["bayesmulti"]),
    )
    for label, digital, d in rows:
        cells = [
            name,
            preset,
            label,
            f"{digital:.2%}",
            f"{d['raw']['test']:.2%}",
            f"{d['calibrated']['test']:.2%}",
            str(d["pulses"]),
            f"{d['board_time_s']:.3g}",
            f"{d['energy_J']:.3g}",
        ]
        print("| " + " | ".join(cells) + " |")
    return r


TABLE_HEAD = (
    "| task | device | training | digital | deployed | deployed, calibrated | pulses | board time s | "
    "energy J |\n|---|---|---|---|---|---|---|---|---|"
)


def digits(report: dict, n_iter: int) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order] / 16.0, y[order]
    data = ((x[:1000], y[:1000]), (x[1000:1297], y[1000:1297]), (x[1297:], y[1297:]))
    print("\n### scikit-learn digits (8x8), 64-16-10, 500 test images\n")
    print(TABLE_HEAD)
    cfg = TrainConfig(hidden=(16,), activation="Tanh", epochs=60, seed=0)
    report["digits"] = {
        p: erm_vs_bayesmulti("digits", p, (96, 64), data, cfg, n_iter)
        for p in ("tio2_4terminal", "pt_al2o3_tio2_passive")
    }


def moons(report: dict, n_iter: int) -> None:
    from sklearn.datasets import make_moons

    def split(seed: int, n: int):
        x, y = make_moons(n, noise=0.15, random_state=seed)
        return (x - [0.5, 0.25]) / [1.5, 0.75], y  # inputs within [-1, 1]

    print("\n### two-moons (paper 000), 2-3-2 on a 10x10 array\n")
    print(TABLE_HEAD)
    cfg = TrainConfig(hidden=(3,), activation="Tanh", epochs=150, seed=0)
    report["moons"] = erm_vs_bayesmulti(
        "two-moons", "perovskite_lognormal", (10, 10), (split(0, 300), split(1, 200), split(2, 400)), cfg, n_iter
    )


def exporters(report: dict) -> None:
    import warnings

    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from memctl.example_models import digits_cnn

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order]
    xtr, ytr, xte, yte = x[:1200], y[:1200], x[1200:], y[1200:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier((24,), max_iter=300, random_state=0)).fit(xtr, ytr)
    models = {
        "skl2onnx StandardScaler + MLPClassifier 64-24-10": (
            to_onnx(pipe, xtr[:1], options={"zipmap": False}),
            xtr,
            xte,
            (96, 96),
        ),
        "CNN: Conv 1->8 3x3/2 + Gemm 128-10": (
            digits_cnn(xtr, ytr),
            xtr.reshape(-1, 1, 8, 8),
            xte.reshape(-1, 1, 8, 8),
            (160, 96),
        ),
    }
    print(f"\n### ONNX from exporters, digits, {len(xte)} test images (default device, 1T1R)\n")
    print(
        "| model | digital | deployed: raw / calibrated on the sample | same label as digital: raw / calibrated "
        "| pulses | board time s | deploy wall s |"
    )
    print("|---|---|---|---|---|---|---|")
    report["exporters"] = {}
    for name, (model, train, test, shape) in models.items():
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ref = sess.run(None, {sess.get_inputs()[0].name: test})
        ref_labels = ref[0] if ref[0].ndim == 1 else ref[0].argmax(1)
        start = time.monotonic()
        with (
            EmulatedBoard(rows=shape[0], cols=shape[1], seed=SEED, cell="1T1R") as emu,
            memctl.Board(emu.port) as b,
        ):
            dep = deploy(model, b, sample=train)
            wall = time.monotonic() - start
            raw = dep.run(b, test, calibrated=False)
            dep.calibrate(b, samples=128, x=train)
            cal = dep.run(b, test)
        labels = [o[0] if isinstance(o, list) else o.argmax(1) for o in (raw, cal)]
        r = {
            "digital": float(np.mean(ref_labels == yte)),
            "deployed": float(np.mean(labels[0] == yte)),
            "deployed_calibrated": float(np.mean(labels[1] == yte)),
            "same_label": float(np.mean(labels[0] == ref_labels)),
            "same_label_calibrated": float(np.mean(labels[1] == ref_labels)),
            "partition": dep.graph.summary(),
            "wall_s": wall,
            **dep.cost(),
        }
        report["exporters"][name] = r
        print(
            f"| {name} | {r['digital']:.2%} | {r['deployed']:.2%} / {r['deployed_calibrated']:.2%} | "
            f"{r['same_label']:.2%} / {r['same_label_calibrated']:.2%} | {r['pulses']} | "
            f"{r['board_time_s']:.2f} | {wall:.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--tasks", default="letters,digits,moons,exporters")
    ap.add_argument("--bo-iterations", type=int, default=8, help="Bayesian-optimization steps after 3 random ones")
    a = ap.parse_args()
    report: dict = {"machine": platform.platform(), "seed": SEED}
    start = time.monotonic()
    tasks = a.tasks.split(",")
    if "letters" in tasks:
        letters(report)
    if "digits" in tasks:
        digits(report, a.bo_iterations)
    if "moons" in tasks:
        moons(report, a.bo_iterations)
    if "exporters" in tasks:
        exporters(report)
    report["wall_s"] = time.monotonic() - start
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{report['wall_s']:.0f} s; wrote {a.out}")


if __name__ == "__main__":
    main()
