"""Deploy a trained MLP (ONNX) onto crossbars and run it.

deploy() maps and tiles every layer (memctl.placement), checks that
everything fits before the first pulse, optionally pre-scans the boards for
stuck devices and places around them, then programs tile by tile. The
manifest it writes doubles as a journal: it is saved after the scan and after
every tile, so a deployment stopped by a reset or a crash resumes where it
stopped when deploy() is called again with the same manifest path.

Inference encodes each layer's inputs as read voltages (x * v_in of that
layer, clipped to the read limit), the bias as one more row at v_in; the
column currents give W x = (I+ - I-) * scale / v_in. On a single board the whole MLP runs on the
controller (LOAD_NETWORK / RUN_NETWORK); across boards the host composes the
layers from per-tile VMMs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from memctl.algorithms import Algorithm
from memctl.board import Board
from memctl.onnx_mlp import ACTIVATIONS, DeployError, Layer, check_layers, read_onnx
from memctl.placement import Scan, TileSpec, place_aware, place_oblivious, plan_tiles, prescan, quantize_levels
from memctl.progress import progress_bar
from memctl_shared import network_blob, wire

__all__ = ["DeployError", "Deployment", "Layer", "Placement", "deploy", "read_onnx"]


@dataclass
class Placement:
    """One programmed tile: a block of a layer's inputs x outputs on one board."""

    layer: int
    board: int  # index into the deployment's boards
    rows: list  # physical row of each input in [inputs[0], inputs[1])
    cols: list  # physical columns, G+ then G- of each output in [outputs[0], outputs[1])
    inputs: tuple[int, int]  # input rows [start, stop) of the layer's mapped matrix (bias = last row)
    outputs: tuple[int, int]  # outputs [start, stop)
    scale: float  # weight units per siemens of G+ - G-
    targets: list = field(default_factory=list)  # inputs x (2 outputs), S
    achieved: list = field(default_factory=list)
    weight_rms_error: float = 0.0
    pulses: int = 0  # programming cost of this tile
    board_time: float = 0.0  # s
    energy: float = 0.0  # J (estimate)
    failed: list = field(default_factory=list)  # [i, j, status name] of devices that missed their target

    def weights(self, g: np.ndarray) -> np.ndarray:
        """Weights (inputs x outputs) that conductances g in this tile's layout represent."""
        g = np.asarray(g, float)
        return (g[:, 0::2] - g[:, 1::2]) * self.scale


@dataclass
class Deployment:
    layers: list[Layer]
    placements: list[Placement]
    v_in: list  # read volts per unit input, per layer
    ports: list[str] = field(default_factory=list)
    gain: list = field(default_factory=list)  # per layer, per output (empty: uncalibrated)
    offset: list = field(default_factory=list)
    key: str = ""  # what was asked (model, boards, options): a journal only resumes the same deployment
    tiles: int = 0  # tiles planned; complete when every one is placed
    scans: list = field(default_factory=list)  # per board: {"g": ..., "defect": ...} or None

    @property
    def complete(self) -> bool:
        return len(self.placements) == self.tiles

    def cost(self) -> dict:
        """Programming pulses, board time and energy of the whole deployment."""
        return {
            "pulses": sum(p.pulses for p in self.placements),
            "board_time_s": sum(p.board_time for p in self.placements),
            "energy_J": sum(p.energy for p in self.placements),
        }

    def wanted(self, p: Placement) -> np.ndarray:
        """The layer's own weights (bias as the last input) that tile p holds."""
        lay = self.layers[p.layer]
        w = np.hstack([lay.weight, lay.bias[:, None]]).T
        return w[p.inputs[0] : p.inputs[1], p.outputs[0] : p.outputs[1]]

    def layer_errors(self) -> list[float]:
        """RMS weight error per layer, over all of its tiles (weight units)."""
        out = []
        for k in range(len(self.layers)):
            sq = [np.square(p.weights(p.achieved) - self.wanted(p)).ravel() for p in self._tiles(k)]
            out.append(float(np.sqrt(np.concatenate(sq).mean())) if sq else float("nan"))
        return out

    def manifest(self) -> dict:
        return {
            "format": "memctl-deployment",
            "version": 2,
            "key": self.key,
            "tiles": self.tiles,
            "complete": self.complete,
            "ports": self.ports,
            "v_in": self.v_in,
            "layers": [
                {"weight": lay.weight.tolist(), "bias": lay.bias.tolist(), "activation": lay.activation}
                for lay in self.layers
            ],
            "placements": [asdict(p) for p in self.placements],
            "gain": self.gain,
            "offset": self.offset,
            "layer_weight_rms_error": self.layer_errors() if self.placements else [],
            "scans": self.scans,
        }

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash mid-write leaves the previous journal."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.manifest(), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """A saved deployment: run it again without re-programming."""
        try:
            m = json.loads(Path(path).read_text())
            if m.get("format") != "memctl-deployment":
                raise DeployError(f"{path}: not a memctl deployment manifest")
            if m.get("version") != 2:
                raise DeployError(f"{path}: manifest version {m.get('version')} not supported (this SDK reads 2)")
            layers = [
                Layer(np.array(d["weight"], float), np.array(d["bias"], float), d["activation"]) for d in m["layers"]
            ]
            check_layers(layers)
            placements = [
                Placement(**{**p, "inputs": tuple(p["inputs"]), "outputs": tuple(p["outputs"])})
                for p in m["placements"]
            ]
            return cls(
                layers,
                placements,
                [float(v) for v in m["v_in"]],
                m.get("ports", []),
                m.get("gain", []),
                m.get("offset", []),
                m.get("key", ""),
                int(m.get("tiles", len(placements))),
                m.get("scans", []),
            )
        except DeployError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DeployError(f"{path}: not a readable deployment manifest: {e}") from e

    def _tiles(self, k: int) -> list[Placement]:
        return [p for p in self.placements if p.layer == k]

    def _check_ready(self, boards: list[Board]) -> None:
        if not self.complete:
            raise DeployError(
                f"deployment incomplete ({len(self.placements)} of {self.tiles} tiles): "
                "run deploy() again with the same manifest to resume"
            )
        if len(boards) < 1 + max(p.board for p in self.placements):
            raise DeployError(
                f"the deployment spans {1 + max(p.board for p in self.placements)} boards; {len(boards)} given"
            )

    def layer_output(self, boards: list[Board], k: int, a: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """W a + b of layer k from the host: the sum of its tiles' crossbar products."""
        x = np.append(a, 1.0)  # the bias row
        z = np.zeros(self.layers[k].weight.shape[0])
        for p in self._tiles(k):
            b = boards[p.board]
            lim = b.read_limit
            v = np.zeros(b.shape[0])
            v[p.rows] = np.clip(x[p.inputs[0] : p.inputs[1]] * self.v_in[k], -lim, lim)
            i = b.vmm(v)[p.cols]
            z[p.outputs[0] : p.outputs[1]] += (i[0::2] - i[1::2]) * p.scale / self.v_in[k]
        if calibrated and self.gain:
            z = np.asarray(self.gain[k]) * z + np.asarray(self.offset[k])
        return z

    def calibrate(self, boards: Board | list[Board], samples: int = 16, seed: int = 0) -> None:
        """Per-output gain and offset (paper 002's model-driven calibration):
        run random inputs, fit measured against the layer's own weights."""
        boards = _as_list(boards)
        self._check_ready(boards)
        rng = np.random.default_rng(seed)
        self.gain, self.offset = [], []
        for k, layer in enumerate(self.layers):
            x = rng.uniform(-1, 1, (samples, layer.weight.shape[1]))
            want = x @ layer.weight.T + layer.bias
            got = np.array([self.layer_output(boards, k, xi, calibrated=False) for xi in x])
            fits = [
                np.linalg.lstsq(np.stack([got[:, j], np.ones(samples)], 1), want[:, j], rcond=None)[0]
                for j in range(want.shape[1])
            ]
            self.gain.append([float(f[0]) for f in fits])
            self.offset.append([float(f[1]) for f in fits])

    def network_blob(self) -> bytes:
        """This deployment as the controller runs it (memctl_shared.network_blob)."""
        layers = []
        for k, lay in enumerate(self.layers):
            n_out, n_in = lay.weight.shape
            gain = self.gain[k] if self.gain else [1.0] * n_out
            offset = self.offset[k] if self.offset else [0.0] * n_out
            layers.append((n_in, n_out, network_blob.ACTIVATIONS[lay.activation], self.v_in[k], gain, offset))
        tiles = [(p.layer, *p.inputs, *p.outputs, p.scale, p.rows, p.cols) for p in self.placements]
        return network_blob.encode(layers, tiles)

    def run(
        self,
        boards: Board | list[Board],
        x: np.ndarray,
        calibrated: bool = True,
        on_board: bool | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Forward pass with every matrix product on the crossbar(s). On one
        board (default) the controller runs the whole MLP per sample and the
        batch streams in frames; on_board=False composes layers on the host."""
        boards = _as_list(boards)
        self._check_ready(boards)
        x = np.atleast_2d(np.asarray(x, float))
        n_in = self.layers[0].weight.shape[1]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"inputs must have shape (samples, {n_in}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs must be finite numbers (no NaN or inf)")
        single = all(p.board == 0 for p in self.placements)
        if on_board is None:
            on_board = single
        if on_board:
            if not single:
                raise DeployError("the deployment spans several boards: run it with on_board=False")
            blob = self.network_blob()
            b = boards[0]
            if b.network != blob:
                b.load_network(blob, progress=False)
            return b.run_network(x, calibrated=calibrated, progress=progress)
        out = []
        with progress_bar("run network", len(x), boards[0].show_progress(progress)) as advance:
            for sample in x:
                a = sample
                for k, layer in enumerate(self.layers):
                    a = ACTIVATIONS[layer.activation](self.layer_output(boards, k, a, calibrated))
                out.append(a)
                advance(1)
        return np.array(out)


def _as_list(boards: Board | list[Board]) -> list[Board]:
    return boards if isinstance(boards, list) else [boards]


def input_bounds(layers: list[Layer], first: float = 1.0) -> list[float]:
    """The largest |input| each layer can see when the network's inputs stay
    within +-first (interval arithmetic through the weights)."""
    bounds = [first]
    for lay in layers[:-1]:
        if lay.activation in ("Tanh", "Sigmoid", "Softmax"):
            bounds.append(1.0)
        else:
            bounds.append(float(np.max(np.abs(lay.weight).sum(1) * bounds[-1] + np.abs(lay.bias))) or 1.0)
    return bounds


def _key(layers: list[Layer], boards: list[Board], **options) -> str:
    h = hashlib.sha256()
    for lay in layers:
        h.update(np.ascontiguousarray(lay.weight, float).tobytes() + np.ascontiguousarray(lay.bias, float).tobytes())
        h.update(str(lay.activation).encode())
    h.update(json.dumps([list(b.shape) for b in boards]).encode())
    h.update(json.dumps(options, sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


def deploy(
    model,
    boards: Board | list[Board],
    *,
    algorithm: Algorithm | None = None,
    tolerance: float | None = None,
    max_pulses: int = 200,
    v_in: float | None = None,
    g_range: tuple[float, float] = (10e-6, 100e-6),
    aware: bool = False,
    levels: int | None = None,
    manifest: str | Path | None = None,
    progress: bool | None = None,
) -> Deployment:
    """Map every layer, tile it over the boards, check everything fits, then
    program tile by tile (a progress bar per tile) and record a manifest.

    aware: pre-scan the used columns for stuck devices and place around them
    (rows and output pairs permuted, partners compensating, stuck devices not
    pulsed). levels: quantize targets to the device's level count.
    v_in: read volts per unit input of the first layer (paper 003: +-0.2 V
    for +-1 inputs); by default the largest that keeps every column within
    half the board's top current range for inputs in [-1, 1], and at most
    half the read voltage (where a sinh-like I-V is still close to linear). Later layers
    get the same budget divided by the largest input their predecessor can
    produce (1 after Tanh/Sigmoid/Softmax, an interval bound after Relu or
    none), so no hidden activation is clipped (amplitude-scaled encoding).
    manifest: journal path; saved after the scan and after every tile, and
    resumed from (finished tiles skipped) when it holds the same deployment.
    """
    boards = _as_list(boards)
    layers = read_onnx(model) if not isinstance(model, list) else model
    check_layers(layers)
    g_lo, g_hi = g_range
    if not (np.isfinite([g_lo, g_hi]).all() and 0 < g_lo < g_hi < 1):
        raise DeployError(f"g_range must be 0 < g_lo < g_hi < 1 S, got {g_range}")
    specs = plan_tiles(layers, [b.shape for b in boards], g_range)
    limit = min(b.read_limit for b in boards)
    if v_in is not None and not (np.isfinite(v_in) and 0 < v_in <= limit):
        raise DeployError(f"v_in {v_in} V must be within the read limit {limit} V of the board(s)")
    infos = [b.info() for b in boards]
    i_half = 0.5 * min(i.i_full_scale for i in infos)
    v_lin = 0.5 * min(i.v_read for i in infos)  # small-signal: a nonlinear I-V stays near its G(V_read)
    volts = []
    for k, bound in enumerate(input_bounds(layers)):
        tall = max(s.inputs[1] - s.inputs[0] for s in specs if s.layer == k)
        volts.append(min(limit, v_lin, i_half / (tall * g_hi)) / bound)
    if v_in is not None:
        volts[0] = v_in
    tol = tolerance if tolerance is not None else 0.01 * (g_hi - g_lo)
    key = _key(layers, boards, g_range=g_range, aware=aware, levels=levels, v_in=volts, tol=tol)
    dep = Deployment(layers, [], volts, [b.link.port for b in boards], key=key, tiles=len(specs))
    if manifest is not None and Path(manifest).exists():
        old = Deployment.load(manifest)
        if old.key != key:
            raise DeployError(
                f"{manifest} holds a different deployment (model, boards or options differ): "
                "remove it or give another manifest path"
            )
        dep = old
        dep.ports = [b.link.port for b in boards]
    if aware and not dep.scans:
        dep.scans = [None] * len(boards)
        for bi, b in enumerate(boards):
            used = [s.band for s in specs if s.board == bi]
            if used:
                scan = prescan(
                    b,
                    g_range,
                    (min(u[0] for u in used), max(u[1] for u in used)),
                    algorithm=algorithm,
                    progress=progress,
                )
                dep.scans[bi] = {"g": np.nan_to_num(scan.g).tolist(), "defect": scan.defect.tolist()}
        if manifest is not None:
            dep.save(manifest)
    for n, spec in enumerate(specs):
        if n < len(dep.placements):
            continue  # done before the interruption
        if aware:
            s = dep.scans[spec.board]
            rows, cols, t, fixed = place_aware(spec, Scan(np.array(s["g"]), np.array(s["defect"], bool)), g_range)
        else:
            rows, cols, t, fixed = place_oblivious(spec)
        if levels:
            t = np.where(fixed, t, quantize_levels(t, g_lo, g_hi, levels))
        dep.placements.append(
            _program_tile(
                boards[spec.board],
                spec,
                rows,
                cols,
                t,
                fixed,
                tol,
                max_pulses,
                algorithm,
                f"tile {n + 1}/{len(specs)} (layer {spec.layer})",
                progress,
            )
        )
        if manifest is not None:
            dep.save(manifest)
    return dep


def _program_tile(board: Board, spec: TileSpec, rows, cols, t, fixed, tol, max_pulses, algorithm, label, progress):
    """Program one tile's devices (fixed ones are left alone) and record what they reached."""
    n_rows = board.shape[0]
    c0 = int(cols.min())
    width = int(cols.max()) + 1 - c0
    full = np.full((n_rows, width), 0.5 * (t.min() + t.max()))
    mask = np.zeros((n_rows, width), bool)
    ri, ci = np.meshgrid(rows, cols - c0, indexing="ij")
    full[ri, ci] = t
    mask[ri, ci] = ~fixed
    res = board.program(
        full,
        tolerance=tol,
        max_pulses=max_pulses,
        origin=(0, c0),
        mask=mask,
        algorithm=algorithm,
        label=label,
        progress=progress,
    )
    achieved = res.final[ri, ci]
    if fixed.any():  # defects keep their conductance: read it back so the record is true
        for i, j in np.argwhere(fixed):
            achieved[i, j] = board.read(int(rows[i]), int(cols[j]))
    p = Placement(
        layer=spec.layer,
        board=spec.board,
        rows=[int(r) for r in rows],
        cols=[int(c) for c in cols],
        inputs=spec.inputs,
        outputs=spec.outputs,
        scale=spec.scale,
        targets=t.tolist(),
        achieved=achieved.tolist(),
        pulses=int(res.pulses.sum()),
        board_time=float(res.board_time),
        energy=float(res.energy.sum()),
        failed=[
            [int(i), int(j), str(res.status_names()[ri[i, j], ci[i, j]])]
            for i, j in np.argwhere(~fixed & (res.status[ri, ci] != wire.S_OK))
        ],
    )
    want = p.weights(spec.targets)  # the weights asked for, before any compensation
    p.weight_rms_error = float(np.sqrt(np.mean((p.weights(achieved) - want) ** 2)))
    return p
