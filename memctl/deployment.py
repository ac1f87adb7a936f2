"""Deploy a trained MLP (ONNX) onto crossbars and run it.

deploy() maps and tiles every layer (memctl.placement), checks that
everything fits before the first pulse, optionally pre-scans the boards for
stuck devices and places around them, then programs tile by tile: each
board's tiles in order, several boards at once (a thread per board). The
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

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from memctl.algorithms import Algorithm
from memctl.board import Board
from memctl.onnx_graph import Partition, partition
from memctl.onnx_mlp import ACTIVATIONS, DeployError, Layer, check_layers, forward, read_onnx
from memctl.placement import Scan, TileSpec, place_aware, place_oblivious, plan_tiles, prescan, quantize_levels
from memctl.progress import progress_bar
from memctl_shared import network_blob, wire

__all__ = ["DeployError", "Deployment", "Layer", "Placement", "TileCheck", "deploy", "read_onnx"]

MANIFEST_VERSION = 3


@dataclass(frozen=True)
class TileCheck:
    """One tile of a deployment against the board that should hold it."""

    tile: int  # index into the deployment's placements
    layer: int
    board: int
    state: str  # ok | missing | other | reprogrammed | drifted
    detail: str = ""
    max_deviation: float = 0.0  # S, largest |G - recorded| of the spot-checked devices

    @property
    def ok(self) -> bool:
        return self.state == "ok"


CHECK_MEANING = {
    "missing": "the board holds no fingerprint for it (deployed on another board, or its flash was erased)",
    "other": "the board holds a different tile there (another deployment was programmed over it)",
    "reprogrammed": "a device inside was pulsed since it was deployed",
    "drifted": "spot-checked devices read away from what was programmed",
}


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
    fingerprint: int = 0  # what the board was told this tile holds (TILES); 0: not recorded

    @property
    def rect(self) -> tuple[int, int, int, int]:
        """First row, first column, last row, last column: the rectangle the board guards."""
        return min(self.rows), min(self.cols), max(self.rows), max(self.cols)

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
    scans: list = field(default_factory=list)  # per board: the pre-scan's journal {"g", "defect", "done"} or None
    tolerance: float = 0.0  # S, what each device was programmed to: verification's yardstick
    # The model inputs the first layer's encoding carries unclipped, |x| <= input_range: the board's read
    # limit over v_in[0] (at least the range the encoding was scaled for, --input-range).
    input_range: float = 1.0
    input_offset: list = field(default_factory=list)  # raw -> model input: (x - offset) / scale, per feature
    input_scale: list = field(default_factory=list)
    # The ONNX model the layers came from, partitioned (memctl.onnx_graph): the host runs what comes before,
    # between and after the crossbar layers, so run() returns what the model returns. None: a bare layer list.
    graph: Partition | None = None

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
            "version": MANIFEST_VERSION,
            "key": self.key,
            "tolerance": self.tolerance,
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
            "input_range": self.input_range,
            "input_offset": self.input_offset,
            "input_scale": self.input_scale,
            **(
                {
                    "model": base64.b64encode(self.graph.serialized()).decode(),
                    "partition": self.graph.summary(),
                }
                if self.graph is not None
                else {}
            ),
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
            if m.get("version") != MANIFEST_VERSION:
                raise DeployError(
                    f"{path}: manifest version {m.get('version')}; this memctl reads {MANIFEST_VERSION} (version 2 "
                    "predates the boards' deployment fingerprints: deploy again with a new manifest path)"
                )
            layers = [
                Layer(np.array(d["weight"], float), np.array(d["bias"], float), d["activation"]) for d in m["layers"]
            ]
            try:
                graph = partition(base64.b64decode(m["model"], validate=True)) if "model" in m else None
            except DeployError as e:
                raise DeployError(f"{path}: the model it keeps: {e}") from e
            check_layers(layers, graph.chained if graph else None)
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
                float(m.get("tolerance", 0.0)),
                float(m.get("input_range", 1.0)),
                [float(v) for v in m.get("input_offset", [])],
                [float(v) for v in m.get("input_scale", [])],
                graph,
            )
        except DeployError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DeployError(f"{path}: not a readable deployment manifest: {e}") from e

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs, checked, with the deployment's input scaling applied: what the model takes."""
        x = np.atleast_2d(np.asarray(x, float))
        if self.graph is not None:
            want = self.graph.input_shape
            if x.ndim != len(want) or any(w and w != n for w, n in zip(want[1:], x.shape[1:], strict=True)):
                shape = ", ".join(str(w or "any") for w in ["samples", *want[1:]])
                raise ValueError(f"inputs must have shape ({shape}), as the model's input, got {x.shape}")
        else:
            n_in = self.layers[0].weight.shape[1]
            if x.ndim != 2 or x.shape[1] != n_in:
                raise ValueError(f"inputs must have shape (samples, {n_in}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs must be finite numbers (no NaN or inf)")
        return _scale(x, self.input_offset, self.input_scale)

    def model_inputs(self, x: np.ndarray, *, clip: bool = False) -> np.ndarray:
        """Raw inputs -> what the first crossbar layer takes (input scaling, then the host's part of the
        model before it), checked against the range the crossbar encoding represents: outside it the
        crossbar would clip, so that is an error naming the feature unless clip (then clipped knowingly)."""
        return self._first(self._scaled(x), clip)

    def _first(self, x: np.ndarray, clip: bool) -> np.ndarray:
        """model_inputs from inputs already scaled (_scaled)."""
        if self.graph is not None:
            x = self.graph.before(x)
        r = self.input_range
        out = np.abs(x) > r * (1 + 1e-9)
        if out.any() and not clip:
            i, j = np.argwhere(out)[0]
            scaled = " after the deployment's input scaling" if self.input_scale else ""
            raise ValueError(
                f"{int(out.sum())} input value(s) outside the deployment's input range -{r:.3g}..{r:.3g}{scaled} "
                f"(first: feature {j} of sample {i} is {x[i, j]:.4g}; features out of range: "
                f"{sorted({int(c) for c in np.argwhere(out)[:, 1]})[:10]}). The crossbar would clip them. Scale the "
                "inputs (deploy with --input-scaling, or --input-range to encode a wider range) or pass --clip "
                "(SDK: clip=True) to clip them knowingly"
            )
        return np.clip(x, -r, r)

    def check(self, boards: Board | list[Board], sample: int = 4, seed: int = 0) -> list[TileCheck]:
        """Each finished tile against its board: the board's fingerprint for the tile (one request per
        board), then, where that holds, `sample` of its programmed devices read back against what the
        manifest records (within twice the deployment's tolerance). Nothing is pulsed."""
        boards = _as_list(boards)
        need = 1 + max((p.board for p in self.placements), default=-1)
        if len(boards) < need:
            raise DeployError(f"the deployment spans {need} boards; {len(boards)} given")
        held = {bi: {t[:4]: t for t in boards[bi].tiles()} for bi in {p.board for p in self.placements}}
        rng = np.random.default_rng(seed)
        yardstick = 2 * self.tolerance
        out = []
        for n, p in enumerate(self.placements):
            rec = held[p.board].get(p.rect)
            dev = 0.0
            if p.fingerprint == 0 or rec is None:
                state = "missing"
            elif rec.fingerprint != p.fingerprint:
                state = "other"
            elif not rec.valid:
                state = "reprogrammed"
            else:
                state = "ok"
                failed = {(i, j) for i, j, _ in p.failed}
                cells = [(i, j) for i in range(len(p.rows)) for j in range(len(p.cols)) if (i, j) not in failed]
                pick = rng.choice(len(cells), size=min(sample, len(cells)), replace=False) if cells else []
                for k in pick:
                    i, j = cells[int(k)]
                    g = boards[p.board].read(p.rows[i], p.cols[j])
                    dev = max(dev, abs(g - p.achieved[i][j]))
                if yardstick and dev > yardstick:
                    state = "drifted"
            detail = CHECK_MEANING.get(state, "")
            if state == "drifted":
                detail += f" (up to {dev:.3g} S, more than twice the {self.tolerance:.3g} S tolerance)"
            out.append(TileCheck(n, p.layer, p.board, state, detail, dev))
        return out

    def verify(self, boards: Board | list[Board], sample: int = 4, *, manifest: str | None = None) -> None:
        """Refuse (DeployError naming the tiles and how to re-program them) unless every tile checks."""
        bad = [c for c in self.check(boards, sample) if not c.ok]
        if bad:
            raise DeployError(_refusal(self, _as_list(boards), bad, manifest))

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

    def layer_output(
        self,
        boards: list[Board],
        k: int,
        a: np.ndarray,
        calibrated: bool = True,
        pool: ThreadPoolExecutor | None = None,
    ) -> np.ndarray:
        """W a + b of layer k from the host: the sum of its tiles' crossbar products. Tiles on different boards
        are read at once (one thread per board: `pool`, or one made for the call), each board's in order."""
        x = np.append(a, 1.0)  # the bias row
        tiles = self._tiles(k)
        by_board: dict[int, list[Placement]] = {}
        for p in tiles:
            by_board.setdefault(p.board, []).append(p)

        def currents(bi: int) -> list[np.ndarray]:
            b = boards[bi]
            lim = b.read_limit
            out = []
            for p in by_board[bi]:
                v = np.zeros(b.shape[0])
                v[p.rows] = np.clip(x[p.inputs[0] : p.inputs[1]] * self.v_in[k], -lim, lim)
                out.append(b.vmm(v)[p.cols])
            return out

        if len(by_board) <= 1:
            read = {bi: currents(bi) for bi in by_board}
        elif pool is not None:
            read = _each_board(pool, currents, list(by_board))
        else:
            with ThreadPoolExecutor(len(by_board), thread_name_prefix="memctl-vmm") as own:
                read = _each_board(own, currents, list(by_board))
        z = np.zeros(self.layers[k].weight.shape[0])
        for p in tiles:  # summed in tile order, as one board after another would
            i = read[p.board].pop(0)
            z[p.outputs[0] : p.outputs[1]] += (i[0::2] - i[1::2]) * p.scale / self.v_in[k]
        if calibrated and self.gain:
            z = np.asarray(self.gain[k]) * z + np.asarray(self.offset[k])
        return z

    def _pool(self) -> ThreadPoolExecutor | nullcontext:
        """Threads for layer_output over a batch: one per board the deployment spans (none for one board)."""
        n = len({p.board for p in self.placements})
        return ThreadPoolExecutor(n, thread_name_prefix="memctl-vmm") if n > 1 else nullcontext()

    def calibrate(
        self, boards: Board | list[Board], samples: int = 16, seed: int = 0, x: np.ndarray | None = None
    ) -> None:
        """Per-output gain and offset (paper 002's model-driven calibration):
        run inputs, fit measured against the layer's own weights. The inputs are
        random over the encoded range, or, given representative raw model inputs x,
        `samples` of the inputs the digital model gives each layer for them."""
        boards = _as_list(boards)
        self._check_ready(boards)
        rng = np.random.default_rng(seed)
        seen = None if x is None else layer_inputs(self.layers, self.graph, self._scaled(x))
        self.gain, self.offset = [], []
        for k, layer in enumerate(self.layers):
            if seen is not None:
                pick = rng.choice(len(seen[k]), min(samples, len(seen[k])), replace=False)
                xs = np.clip(seen[k][pick], -self.input_range, self.input_range) if k == 0 else seen[k][pick]
            else:
                r = self.input_range if k == 0 else 1.0
                xs = rng.uniform(-r, r, (samples, layer.weight.shape[1]))
            want = xs @ layer.weight.T + layer.bias
            with self._pool() as pool:
                got = np.array([self.layer_output(boards, k, xi, calibrated=False, pool=pool) for xi in xs])
            fits = [
                np.linalg.lstsq(np.stack([got[:, j], np.ones(len(xs))], 1), want[:, j], rcond=None)[0]
                for j in range(want.shape[1])
            ]
            self.gain.append([float(f[0]) for f in fits])
            self.offset.append([float(f[1]) for f in fits])

    def network_blob(self, lo: int = 0, hi: int | None = None) -> bytes:
        """Layers lo..hi (default all) of this deployment as the controller runs them
        (memctl_shared.network_blob)."""
        hi = len(self.layers) - 1 if hi is None else hi
        layers = []
        for k in range(lo, hi + 1):
            lay = self.layers[k]
            n_out, n_in = lay.weight.shape
            gain = self.gain[k] if self.gain else [1.0] * n_out
            offset = self.offset[k] if self.offset else [0.0] * n_out
            layers.append((n_in, n_out, network_blob.ACTIVATIONS[lay.activation], self.v_in[k], gain, offset))
        tiles = [
            (p.layer - lo, *p.inputs, *p.outputs, p.scale, p.rows, p.cols)
            for p in self.placements
            if lo <= p.layer <= hi
        ]
        return network_blob.encode(layers, tiles)

    def run(
        self,
        boards: Board | list[Board],
        x: np.ndarray,
        calibrated: bool = True,
        on_board: bool | None = None,
        progress: bool | None = None,
        clip: bool = False,
    ) -> np.ndarray:
        """Forward pass with every matrix product on the crossbar(s). On one
        board (default) the controller runs the whole MLP per sample and the
        batch streams in frames; on_board=False composes layers on the host."""
        boards = _as_list(boards)
        self._check_ready(boards)
        # The boards must still hold this deployment (fingerprints: one request per board, nothing read).
        # Reading devices back is verify()'s (memctl infer and memctl verify do it).
        self.verify(boards, sample=0)
        scaled = self._scaled(x)
        first = self._first(scaled, clip)
        single = all(p.board == 0 for p in self.placements)
        if on_board is None:
            on_board = single
        if on_board and not single:
            raise DeployError("the deployment spans several boards: run it with on_board=False")

        def stage(lo: int, hi: int, a: np.ndarray) -> np.ndarray:
            if on_board:
                blob = self.network_blob(lo, hi)
                b = boards[0]
                if b.network != blob:
                    b.load_network(blob, progress=False)
                return b.run_network(a, calibrated=calibrated, progress=progress)
            out = []
            show = boards[0].show_progress(progress)
            with progress_bar("run network", len(a), show) as advance, self._pool() as pool:
                for sample in a:
                    for k in range(lo, hi + 1):
                        sample = ACTIVATIONS[self.layers[k].activation](
                            self.layer_output(boards, k, sample, calibrated, pool)
                        )
                    out.append(sample)
                    advance(1)
            return np.array(out)

        if self.graph is None:
            return stage(0, len(self.layers) - 1, first)
        outs = self.graph.forward(scaled, stage, first=first)
        return outs[0] if len(outs) == 1 else outs


def _refusal(dep: Deployment, boards: list[Board], bad: list[TileCheck], manifest: str | None) -> str:
    lines = [f"the board(s) do not hold this deployment as recorded ({len(bad)} of {len(dep.placements)} tiles):"]
    for c in bad:
        port = boards[c.board].link.port
        lines.append(f"  tile {c.tile + 1} (layer {c.layer}) on board {c.board} ({port}): {c.state}: {c.detail}")
    m = manifest or "MANIFEST"
    lines.append(
        "Nothing was pulsed. To re-program those tiles: memctl deploy MODEL --manifest "
        f"{m} --repair (SDK: deploy(..., manifest=..., repair=True)); to deploy afresh on these boards, give "
        "a new manifest path."
    )
    return "\n".join(lines)


def _input_scaling(scaling: dict | None, n_in: int, input_range: float | None) -> tuple[list, list, float]:
    """(offset, scale, range of the model's inputs) from a scaler's numbers: mean/std (standardized
    inputs: +-4 standard deviations encoded unless input_range says otherwise) or min/max (scaled to
    0..1, as scikit-learn's MinMaxScaler)."""
    offset: list = []
    scale: list = []
    r = 1.0
    if scaling:
        keys = set(scaling)
        if keys == {"mean", "std"}:
            lo, width, r = scaling["mean"], scaling["std"], 4.0
        elif keys == {"min", "max"}:
            lo = np.asarray(scaling["min"], float)
            width = np.asarray(scaling["max"], float) - lo
        else:
            raise DeployError(f"input scaling needs mean and std, or min and max; got {sorted(keys)}")
        lo, width = np.broadcast_to(np.asarray(lo, float), (n_in,)), np.broadcast_to(np.asarray(width, float), (n_in,))
        if not (np.isfinite(lo).all() and np.isfinite(width).all() and (width > 0).all()):
            raise DeployError("input scaling must be finite, with std (or max - min) > 0 for every feature")
        offset, scale = lo.tolist(), width.tolist()
    if input_range is not None:
        if not (np.isfinite(input_range) and input_range > 0):
            raise DeployError(f"input range must be a positive number, got {input_range}")
        r = float(input_range)
    return offset, scale, r


def _fingerprint(key: str, n: int, p: Placement) -> int:
    """What tile n of deployment `key` holds, in 32 bits (never 0: the board's "none")."""
    h = hashlib.sha256(json.dumps([key, n, p.rows, p.cols, p.targets]).encode()).digest()
    return int.from_bytes(h[:4], "little") or 1


def _as_list(boards: Board | list[Board]) -> list[Board]:
    return boards if isinstance(boards, list) else [boards]


def _each_board(pool: ThreadPoolExecutor, fn: Callable[[int], list], boards: list[int]) -> dict[int, list]:
    """fn(board) for every board at once; every one finishes (no board is left in use) before the first
    error, if any, is raised."""
    futures = {bi: pool.submit(fn, bi) for bi in boards}
    wait(futures.values())
    return {bi: f.result() for bi, f in futures.items()}


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


def layer_inputs(layers: list[Layer], graph: Partition | None, x: np.ndarray) -> list[np.ndarray]:
    """The inputs each layer gets from model inputs x in the digital model (the graph's host parts
    included): one row per product (a Conv: per patch)."""
    got: list[list[np.ndarray]] = [[] for _ in layers]

    def stage(lo: int, hi: int, a: np.ndarray) -> np.ndarray:
        for k in range(lo, hi + 1):
            got[k].append(a)
            a = forward(layers[k : k + 1], a)
        return a

    x = np.asarray(x, float)
    if not np.all(np.isfinite(x)):
        raise DeployError("the sample inputs must be finite numbers (no NaN or inf)")
    if graph is None:
        stage(0, len(layers) - 1, np.atleast_2d(x))
    else:
        graph.forward(x, stage)
    return [np.concatenate(g) for g in got]


def sample_bounds(layers: list[Layer], graph: Partition | None, x: np.ndarray) -> list[float]:
    """The largest |input| each layer gets from inputs x."""
    seen = [float(np.abs(a).max(initial=0.0)) for a in layer_inputs(layers, graph, x)]
    if not seen[0] > 0:
        raise DeployError("the sample inputs give the first layer nothing but zeros: give representative inputs")
    return seen


def _scale(x: np.ndarray, offset: list, scale: list) -> np.ndarray:
    x = np.asarray(x, float)
    return (x - np.asarray(offset)) / np.asarray(scale) if scale else x


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
    repair: bool = False,
    input_range: float | None = None,
    input_scaling: dict | None = None,
    sample: np.ndarray | None = None,
    progress: bool | None = None,
) -> Deployment:
    """Map every layer, tile it over the boards, check everything fits, then
    program tile by tile (a progress bar per tile) and record a manifest. On
    several boards, each board's tiles go in order and the boards work at once
    (a thread per board, one bar over them all); a board that fails stops the
    others after the tile each has in hand, Ctrl-C stops them at once, and the
    manifest holds every tile finished (in plan order, with gaps where a
    board did not get that far).

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
    manifest: journal path; saved after every pre-scan block and after every
    tile, and resumed from (finished tiles skipped) when it holds the same
    deployment and the boards still hold its finished tiles (their
    fingerprints and a spot check); otherwise refused, naming the tiles,
    unless repair, which re-programs exactly those tiles.
    sample: representative raw model inputs (a calibration set, as quantization toolchains take): the
    input range becomes their largest first-layer input plus 10 % (unless input_range is given) and each
    later layer's read voltages are scaled by the largest input the sample gives it (plus 10 %, never above
    the interval bound) instead of the worst case, so small activations are not lost below the ADC's step.
    """
    boards = _as_list(boards)
    graph = None if isinstance(model, list) else partition(model)
    layers = model if graph is None else graph.layers
    check_layers(layers, graph.chained if graph else None)
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
    n_in = layers[0].weight.shape[1] if graph is None else graph.input_features
    offset, scale, r_in = _input_scaling(input_scaling, n_in, input_range)
    bounds = input_bounds(layers, r_in)
    if sample is not None:
        seen = sample_bounds(layers, graph, _scale(sample, offset, scale))
        r_in = r_in if input_range is not None else 1.1 * seen[0]
        bounds = [r_in] + [min(b, 1.1 * m) or b for b, m in zip(input_bounds(layers, r_in)[1:], seen[1:], strict=True)]
    for k, bound in enumerate(bounds):
        tall = max(s.inputs[1] - s.inputs[0] for s in specs if s.layer == k)
        volts.append(min(limit, v_lin, i_half / (tall * g_hi)) / bound)
    if v_in is not None:
        volts[0] = v_in
    tol = tolerance if tolerance is not None else 0.01 * (g_hi - g_lo)
    model_hash = hashlib.sha256(graph.serialized()).hexdigest() if graph else None
    key = _key(layers, boards, g_range=g_range, aware=aware, levels=levels, v_in=volts, tol=tol, model=model_hash)
    dep = Deployment(layers, [], volts, [b.link.port for b in boards], key=key, tiles=len(specs), graph=graph)
    r_clip = float(limit / volts[0])
    dep.input_range, dep.input_offset, dep.input_scale = r_clip, offset, scale
    redo: set[int] = set()
    if manifest is not None and Path(manifest).exists():
        old = Deployment.load(manifest)
        if old.key != key:
            raise DeployError(
                f"{manifest} holds a different deployment (model, boards or options differ): "
                "remove it or give another manifest path"
            )
        dep = old
        dep.ports = [b.link.port for b in boards]
        dep.input_range, dep.input_offset, dep.input_scale = r_clip, offset, scale
        # Resume only onto boards that still hold the finished tiles (fingerprints and a spot check).
        bad = [c for c in dep.check(boards) if not c.ok]
        if bad and not repair:
            raise DeployError(_refusal(dep, boards, bad, str(manifest)))
        redo = {c.tile for c in bad}
    dep.tolerance = tol
    if aware:
        if len(dep.scans) != len(boards):
            dep.scans = [None] * len(boards)
        for bi, b in enumerate(boards):
            used = [s.band for s in specs if s.board == bi]
            if not used:
                continue
            journal = dep.scans[bi] or {}
            dep.scans[bi] = journal

            def save_scan(_: dict) -> None:
                if manifest is not None:
                    dep.save(manifest)

            prescan(
                b,
                g_range,
                (min(u[0] for u in used), max(u[1] for u in used)),
                algorithm=algorithm,
                progress=progress,
                journal=journal,
                on_block=save_scan,
            )
    # Finished tiles by plan index: a journal may have holes (boards finish their tiles in any order), so
    # each recorded tile is matched to its place in the plan by what it holds.
    plan = {(s.layer, s.board, tuple(s.inputs), tuple(s.outputs)): n for n, s in enumerate(specs)}
    finished: dict[int, Placement] = {}
    for j, p in enumerate(dep.placements):
        n = plan.get((p.layer, p.board, tuple(p.inputs), tuple(p.outputs)))
        if n is not None and j not in redo:
            finished[n] = p  # done before the interruption, and still held by its board
    lock = threading.Lock()

    def program(n: int, progress: bool | None | Callable[[int], None]) -> None:
        """Program tile n on its board, record it there, journal it (tiles in plan order)."""
        spec = specs[n]
        if aware:
            s = dep.scans[spec.board]
            rows, cols, t, fixed = place_aware(spec, Scan(np.array(s["g"]), np.array(s["defect"], bool)), g_range)
        else:
            rows, cols, t, fixed = place_oblivious(spec)
        if levels:
            t = np.where(fixed, t, quantize_levels(t, g_lo, g_hi, levels))
        b = boards[spec.board]
        label = f"tile {n + 1}/{len(specs)} (layer {spec.layer})"
        p = _program_tile(b, spec, rows, cols, t, fixed, tol, max_pulses, algorithm, label, progress)
        # Recorded on the board only once the whole tile is programmed: any later pulse inside clears it.
        p.fingerprint = _fingerprint(key, n, p)
        b.set_tiles([(*p.rect, p.fingerprint)])
        with lock:
            finished[n] = p
            dep.placements = [finished[m] for m in sorted(finished)]
            if manifest is not None:
                dep.save(manifest)

    todo = [n for n in range(len(specs)) if n not in finished]
    dep.placements = [finished[m] for m in sorted(finished)]
    per_board = {bi: [n for n in todo if specs[n].board == bi] for bi in sorted({specs[n].board for n in todo})}
    if len(per_board) <= 1:
        for n in todo:  # one board: tile after tile, a bar each
            program(n, progress)
    else:
        _program_concurrently(per_board, program, sum(int(specs[n].targets.size) for n in todo), boards, progress)
    return dep


def _program_concurrently(
    per_board: dict[int, list[int]],
    program: Callable[[int, Callable[[int], None]], None],
    devices: int,
    boards: list[Board],
    progress: bool | None,
) -> None:
    """Each board's tiles in order, the boards at once: one thread per board (a Board is used by one thread
    only), one bar over them all. A board that fails stops the others after the tile each has in hand (it is
    finished and journaled) and its error is raised; Ctrl-C stops them all at once (at their next progress
    report, as a single board stops: the tiles in hand are not journaled) and is raised."""
    stop = threading.Event()  # no further tiles
    abort = threading.Event()  # not even the tiles in hand
    errors: list[BaseException] = []
    running = [len(per_board)]  # threads not yet done
    count = threading.Lock()
    ended = threading.Event()  # every board's thread is done
    # Waiting on `ended`, not Thread.join: on Python 3.11 a KeyboardInterrupt landing inside join(timeout) can
    # mark a thread that is still running as stopped.

    with progress_bar(f"deploy on {len(per_board)} boards", devices, boards[0].show_progress(progress)) as advance:

        def tick(n: int) -> None:  # each board's program() reports devices done here
            if abort.is_set():
                raise KeyboardInterrupt
            advance(n)

        def work(tiles: list[int]) -> None:
            try:
                for n in tiles:
                    if stop.is_set():
                        return
                    program(n, tick)
            except BaseException as e:  # raised again from the calling thread
                errors.append(e)
                stop.set()
            finally:
                with count:
                    running[0] -= 1
                    if not running[0]:
                        ended.set()

        threads = [
            threading.Thread(target=work, args=(tiles,), name=f"memctl-deploy-board-{bi}", daemon=True)
            for bi, tiles in per_board.items()
        ]
        try:
            for t in threads:
                t.start()
            while not ended.wait(0.1):
                pass
        except BaseException:  # Ctrl-C: the boards stop at their next progress report
            stop.set()
            abort.set()
            while any(t.is_alive() for t in threads):  # (a thread never started is not waited for)
                ended.wait(0.1)
            raise
    if errors:
        first = next((e for e in errors if not isinstance(e, KeyboardInterrupt)), errors[0])
        raise first


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
