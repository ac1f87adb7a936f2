"""memctl.Board: explicit instrument calls on one controller board.

Conductances are in siemens, currents in amperes, voltages in volts, times in
seconds. Arrays in and out are numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from memctl import protocol
from memctl.algorithms import FFP, ISPP, Algorithm, FFPTable, Predicted
from memctl.errors import BoardReset, BoardTimeout, Interrupted, ProtocolError, SessionLost
from memctl.link import Link
from memctl.progress import progress_bar
from memctl_shared import wire
from memctl_shared.predictor_blob import FEATURES_INVERSE


@dataclass(frozen=True)
class Limits:
    """Safety limits the firmware enforces on every pulse and input."""

    v_pulse: float  # max |V| of a programming pulse
    width: float  # max pulse width, s
    v_read: float  # max |V| of a VMM input
    # max |V| on a device not being programmed (half-selected on a passive array); 0: none known, so a
    # passive board programs one device at a time. Pulses that keep within it share a row (column groups).
    v_disturb: float = 0.0


@dataclass(frozen=True)
class BoardInfo:
    protocol: int
    rows: int
    cols: int
    max_payload: int
    heap_size: int
    heap_free: int
    heap_peak: int
    limits: Limits
    v_read: float  # read voltage the firmware applies, V
    dac_full_scale: float
    dac_lsb: float  # V per DAC code
    i_lsb: float  # A per ADC code on the most sensitive current range
    i_full_scale: float  # A, the largest current range
    current_ranges: int
    bias_scheme: protocol.BiasScheme
    read_mode: protocol.ReadMode
    cell: protocol.Cell  # compares equal to "0T1R" / "1T1R"
    predictor_params: int  # parameters of the loaded predictor (0: none)
    firmware: str
    hal: str
    boot_id: int = 0  # changes at every reset
    limits_set: bool = True  # False: a fresh board refuses to drive its array until set_limits
    image: str = ""  # hash of the running firmware image (memctl build-firmware), or "source"
    arch: str = ""  # the firmware's .mpy architecture (mpy-cross -march): the image `memctl flash` builds
    predictor_features: int = 0  # the loaded predictor's feature set (0 none or not reported, 1 trains, 2 inverse)

    @property
    def g_lsb(self) -> float:
        """Finest conductance resolution of a read, S (the ADC auto-ranges)."""
        return self.i_lsb / self.v_read


@dataclass
class ProgramResult:
    """Per-device outcome of program(); arrays have the shape of the targets."""

    targets: np.ndarray
    final: np.ndarray
    pulses: np.ndarray
    status: np.ndarray
    time: np.ndarray  # simulated (board) time per device, s
    energy: np.ndarray  # estimated pulse energy per device (sum of V^2 G t), J
    tolerance: float
    wall_time: float
    board_time: float = field(default=0.0)

    @property
    def error(self) -> np.ndarray:
        return self.final - self.targets

    @property
    def ok(self) -> np.ndarray:
        return self.status == wire.S_OK

    def status_names(self) -> np.ndarray:
        """Statuses by name; "not-programmed" for devices the call did not reach (masked out, or interrupted)."""
        names = {-1: "not-programmed", **wire.STATUS_NAMES}
        return np.vectorize(lambda s: names.get(int(s), f"status-{s}"))(self.status)


class Board:
    """A connected memctl board (real or emulated).

    >>> with memctl.Board("/dev/ttyUSB0") as b:
    ...     g = b.read_array()
    """

    PROTOCOL = wire.PROTOCOL_VERSION

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout: float = 2.0,
        retries: int = 3,
        progress: bool | None = None,
    ):
        self.link = Link(port, baudrate=baudrate, timeout=timeout, retries=retries)
        self.progress = progress
        self.vmm_resolution = 0.0
        self.network: bytes | None = None  # the network blob this session loaded (run_network)
        self._predictor: bytes | None = None  # what this session put in board RAM, restored after a reset
        self._ffp: FFPTable | None = None
        self.resets = 0  # board resets this session recovered from
        self.boot_timeout = 30.0  # s a reset board may take to answer again
        try:
            self._info = self.info()
        except BaseException:
            self.link.close()
            raise
        if self._info.protocol != self.PROTOCOL:
            self.link.close()
            raise ProtocolError(
                f"board speaks protocol {self._info.protocol}, this SDK speaks {self.PROTOCOL}; "
                "update the firmware or the SDK"
            )

    # -- housekeeping ----------------------------------------------------
    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shape(self) -> tuple[int, int]:
        return self._info.rows, self._info.cols

    @property
    def read_limit(self) -> float:
        """Max |V| of a VMM input, as last reported (no round trip)."""
        return self._info.limits.v_read

    def info(self, *, wait: float = 0.0) -> BoardInfo:
        """INFO; with wait > 0, keep asking that many seconds while the board is silent (booting)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                f = protocol.decode_info(self.link.request(wire.T_INFO))
                break
            except BoardTimeout:
                if time.monotonic() > deadline:
                    raise
        info = BoardInfo(
            protocol=f.protocol,
            rows=f.rows,
            cols=f.cols,
            max_payload=f.max_payload,
            heap_size=f.heap_size,
            heap_free=f.heap_free,
            heap_peak=f.heap_peak,
            limits=Limits(f.v_pulse, f.width, f.v_read_limit, f.v_disturb),
            v_read=f.v_read,
            dac_full_scale=f.dac_full_scale,
            dac_lsb=f.dac_lsb,
            i_lsb=f.i_lsb,
            i_full_scale=f.i_full_scale,
            current_ranges=f.current_ranges,
            bias_scheme=protocol.BiasScheme(f.bias_scheme),
            read_mode=protocol.ReadMode(f.read_mode),
            cell=protocol.Cell.ONE_T1R if f.cell == wire.CELL_1T1R else protocol.Cell.PASSIVE,
            predictor_params=f.predictor_params,
            firmware=f.firmware,
            hal=f.hal,
            boot_id=f.boot_id,
            limits_set=bool(f.limits_set),
            image=f.image,
            arch=f.arch,
            predictor_features=f.predictor_features,
        )
        self._info = info
        self.link.tag = info.boot_id & 0xFF
        return info

    # Requests a reset may have half-done that must not run twice: raise instead.
    _UNSAFE = {wire.T_PULSE: "PULSE", wire.T_PULSE_TRAIN: "PULSE_TRAIN", wire.T_FFP_TRACE: "FFP_TRACE"}

    def _request(self, mtype: int, payload: bytes = b"", **kw) -> bytes:
        """link.request, re-synchronized across a board reset: the firmware
        refuses a frame tagged with an old session, so nothing runs twice by
        accident; requests safe to repeat (reads, VMM, write-verify, loads)
        are resent, a pulse raises BoardReset."""
        try:
            return self.link.request(mtype, payload, **kw)
        except SessionLost:
            self.resync()
            if mtype in self._UNSAFE:
                raise BoardReset(
                    f"{self.link.port} reset while a {self._UNSAFE[mtype]} was in progress: it may have been "
                    "applied once and was not repeated; read the device to see where it is"
                ) from None
            return self.link.request(mtype, payload, **kw)

    def resync(self) -> None:
        """After a reset: learn the new session and put back what lived in
        board RAM (FFP table, predictor, network); limits and read
        configuration survive in the board's flash."""
        self.resets += 1
        # A board that just reset answers once it has booted (seconds, on a slow flash): a timeout here is
        # that boot, not the request's (which would otherwise be retried with the stale session).
        self.info(wait=self.boot_timeout)
        if self._ffp is not None:
            self.set_ffp_table(self._ffp)
        if self._predictor is not None:
            self.load_predictor(self._predictor, progress=False)
        if self.network is not None:
            self.load_network(self.network, progress=False)

    def limits(self) -> Limits:
        return self.info().limits

    def set_limits(self, v_pulse: float, width: float, v_read: float, v_disturb: float = 0.0) -> Limits:
        """All four limits at once (v_disturb 0: none, passive arrays program serially)."""
        _finite("limits", [v_pulse, width, v_read, v_disturb])
        p = self._request(wire.T_SET_LIMITS, protocol.encode_limits(v_pulse, width, v_read, v_disturb))
        self.info()  # keep the cached limits (read_limit) in step with the board
        return Limits(*protocol.decode_limits(p))

    # -- instrument calls ------------------------------------------------
    def _check_device(self, row: int, col: int) -> None:
        rows, cols = self.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise IndexError(f"device ({row}, {col}) outside the {rows}x{cols} array")

    def read(self, row: int, col: int) -> float:
        """Conductance of one device, S (read at the board's V_read)."""
        self._check_device(row, col)
        return protocol.decode_read(self._request(wire.T_READ, protocol.encode_read(row, col))).conductance

    def read_array(self, *, progress: bool | None = None) -> np.ndarray:
        """Conductance of every device, S, streamed in row blocks."""
        rows, cols = self.shape
        out = np.empty((rows, cols))
        with progress_bar("read array", rows, self.show_progress(progress)) as advance:
            r0 = 0
            while r0 < rows:
                n = min(max(1, self.link.budget // (wire.READ_ROWS.resp_item_size * cols)), rows - r0)
                p = self._request(wire.T_READ_ROWS, protocol.encode_read_rows(r0, n))
                out[r0 : r0 + n] = protocol.decode_read_rows(p, n, cols)
                advance(n)
                r0 += n
        return out

    def pulse(self, row: int, col: int, voltage: float, width: float) -> float:
        """One pulse with V/2 biasing; returns the DAC-quantized voltage applied."""
        self._check_device(row, col)
        _finite("pulse", [voltage, width])
        return protocol.decode_pulse(self._request(wire.T_PULSE, protocol.encode_pulse(row, col, voltage, width)))

    def vmm(self, x: np.ndarray) -> np.ndarray:
        """Column currents (A) for row input voltages x (one per row).

        The ADC resolution of the range the board used is left in
        `vmm_resolution` (A).
        """
        x = np.asarray(x, dtype=np.float64)
        rows, cols = self.shape
        if x.shape != (rows,):
            raise ValueError(f"vmm input must have shape ({rows},), got {x.shape}")
        _finite("vmm input", x)
        self.vmm_resolution, currents = protocol.decode_vmm(self._request(wire.T_VMM, protocol.encode_vmm(x)), cols)
        return currents

    def configure(
        self,
        *,
        v_read: float | None = None,
        bias: str | protocol.BiasScheme | None = None,
        read_mode: str | protocol.ReadMode | None = None,
    ) -> None:
        """Read voltage, biasing scheme (BiasScheme, or "V/2" / "V/3") and read
        mode (ReadMode, or "grounded": unselected lines at 0 V / "floating": sneak paths)."""
        info = self._info
        v = info.v_read if v_read is None else v_read
        _finite("v_read", [v])
        s = info.bias_scheme if bias is None else protocol.BiasScheme.parse(bias)
        m = info.read_mode if read_mode is None else protocol.ReadMode.parse(read_mode)
        self._request(wire.T_CONFIG, protocol.encode_config(v, s, m))
        self.info()

    def tiles(self) -> list[protocol.TileRecord]:
        """The deployment fingerprints this board holds (memctl.deployment checks them)."""
        return protocol.decode_tiles(self._request(wire.T_TILES, protocol.encode_tiles(wire.TILES_LIST)))

    def set_tiles(self, tiles: list[tuple[int, int, int, int, int]]) -> list[protocol.TileRecord]:
        """Record (r0, c0, r1, c1, fingerprint) tiles; held tiles they overlap are dropped."""
        req = protocol.encode_tiles(wire.TILES_SET, tiles)
        return protocol.decode_tiles(self._request(wire.T_TILES, req))

    def clear_tiles(self) -> None:
        self._request(wire.T_TILES, protocol.encode_tiles(wire.TILES_CLEAR))

    def ffp_table(self) -> FFPTable:
        return FFPTable(*protocol.decode_ffp_table(self._request(wire.T_FFP_TABLE)))

    def set_ffp_table(self, table: FFPTable) -> FFPTable:
        bins = len(table.v_set)
        if len(table.v_reset) != bins or not 1 <= bins <= wire.FFP_MAX_BINS:
            raise ValueError(f"FFP table needs 1..{wire.FFP_MAX_BINS} bins per direction, the same for both")
        volts = np.concatenate([table.v_set, table.v_reset])
        _finite("FFP table", [table.g_lo, table.g_hi, *volts])
        if (volts < 0).any():
            raise ValueError("FFP table voltages are magnitudes (>= 0)")
        req = protocol.encode_ffp_table(table.g_lo, table.g_hi, table.v_set, table.v_reset)
        self._ffp = table
        return FFPTable(*protocol.decode_ffp_table(self._request(wire.T_FFP_TABLE, req)))

    def ffp_trace(self, row: int, col: int, direction: int, ffp: FFP, max_events: int = 2000) -> tuple:
        """Paper 001's continuous FFP sweep in one direction (+1 set, -1
        reset) until the device stops moving at full drive or max_events.
        Returns (G before each event, V applied), numpy arrays."""
        self._check_device(row, col)
        if direction not in (1, -1):
            raise ValueError("direction must be +1 (set) or -1 (reset)")
        params = ffp.params()
        _finite("FFP parameters", params)
        g, v = [], []
        while len(g) < max_events:
            n = min(wire.FFP_TRACE_MAX, max_events - len(g))
            req = protocol.encode_ffp_trace(row, col, direction, n, params)
            ended, pairs = protocol.decode_ffp_trace(self._request(wire.T_FFP_TRACE, req))
            g.extend(pairs[:, 0])
            v.extend(pairs[:, 1])
            if ended:
                break
        return np.array(g, np.float64), np.array(v, np.float64)

    def load_predictor(self, blob: bytes, *, progress: bool | None = None) -> int:
        """Stream a predictor blob to the board (chunks, checked whole on the
        board before it replaces the loaded model). Returns its parameter count."""
        from memctl_shared.predictor_blob import check

        check(blob, len(blob))  # refuse locally what the board would refuse
        p = self._stream_blob(wire.LOAD_PREDICTOR, blob, "load predictor", progress)
        self._predictor = bytes(blob)
        self.info()
        return protocol.decode_blob_chunk(wire.LOAD_PREDICTOR, p)[2]

    def load_network(self, blob: bytes, *, progress: bool | None = None) -> int:
        """Install a deployed network's layout (memctl_shared.network_blob)
        so run_network() runs the whole MLP on the board. Returns its layers."""
        from memctl_shared.network_blob import decode

        decode(blob, len(blob), *self.shape)  # refuse locally what the board would refuse
        self.network = None
        p = self._stream_blob(wire.LOAD_NETWORK, blob, "load network", progress)
        self.network = blob
        return protocol.decode_blob_chunk(wire.LOAD_NETWORK, p)[2]

    def run_network(self, x: np.ndarray, *, calibrated: bool = True, progress: bool | None = None) -> np.ndarray:
        """The loaded network's outputs for a batch of inputs (samples x
        inputs), streamed in as many samples per frame as fit."""
        from memctl_shared.network_blob import decode

        if self.network is None:
            raise ProtocolError("no network loaded by this session: call load_network first")
        layers = decode(self.network, len(self.network), *self.shape)[0]
        n_in, n_out = layers[0][0], layers[-1][1]
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"network inputs must have shape (samples, {n_in}), got {x.shape}")
        _finite("network inputs", x)
        out = np.empty((len(x), n_out))
        flags = wire.RUN_CALIBRATED if calibrated else 0
        with progress_bar("run network", len(x), self.show_progress(progress)) as advance:
            k = 0
            while k < len(x):
                part = x[k : k + protocol.run_network_fit(self.link.budget, n_in, n_out)]
                p = self._request(wire.T_RUN_NETWORK, protocol.encode_run_network(part, flags))
                n = len(part)
                out[k : k + n] = protocol.decode_run_network(p, n, n_out)
                advance(n)
                k += n
        return out

    def _stream_blob(self, msg: wire.Message, blob: bytes, label: str, progress: bool | None) -> bytes:
        """Send a blob in (offset, total, bytes) chunks; returns the last reply.
        A reset loses the board's staging buffer: the stream starts over."""
        p = b""
        with progress_bar(label, len(blob), self.show_progress(progress)) as advance:
            off = 0
            while off < len(blob):
                chunk = blob[off : off + protocol.blob_chunk_room(msg, self.link.budget)]
                try:
                    p = self.link.request(msg.mtype, protocol.encode_blob_chunk(msg, off, len(blob), chunk))
                except SessionLost:
                    self.resync()
                    advance(-off)
                    off = 0
                    continue
                advance(len(chunk))
                off += len(chunk)
        return p

    def pulse_train(
        self,
        row: int,
        col: int,
        n: int,
        *,
        v_set: float,
        t_set: float,
        v_anti: float = 0.0,
        t_anti: float = 0.0,
        t_off: float = 0.0,
        v_read: float = 0.5,
        t_read: float = 0.5e-3,
    ) -> np.ndarray:
        """Paper 004's pulse period repeated n times on one device: set pulse,
        anti-pulse, pause, read pulse, pause. Returns the n read currents, A."""
        self._check_device(row, col)
        _finite("pulse train", [v_set, t_set, v_anti, t_anti, t_off, v_read, t_read])
        per = max(1, self.link.budget // wire.PULSE_TRAIN.resp_item_size)
        out = []
        for k in range(0, n, per):
            m = min(per, n - k)
            req = protocol.encode_pulse_train(row, col, m, v_set, t_set, v_anti, t_anti, t_off, v_read, t_read)
            out.append(protocol.decode_pulse_train(self._request(wire.T_PULSE_TRAIN, req), m))
        return np.concatenate(out) if out else np.zeros(0)

    def program(
        self,
        targets: np.ndarray,
        *,
        tolerance: float = 1e-6,
        max_pulses: int = 100,
        origin: tuple[int, int] = (0, 0),
        mask: np.ndarray | None = None,
        algorithm: Algorithm | None = None,
        patience: int = 8,
        chunk: int | None = None,
        progress: bool | None = None,
        label: str = "program",
        parallel: bool | None = None,
    ) -> ProgramResult:
        """Write-verify every device of a target map (S) placed at origin.

        mask selects which devices to program (default all). Devices stream to
        the board in chunks that fit its frame size; each chunk is one
        idempotent request, so a retried chunk is never applied twice.
        parallel: row-parallel write-verify (default on): the board reads a
        row in one conversion and pulses its devices at once: a 1T1R word line
        always; a passive array in column groups whose half-selected devices
        stay within the disturb limit (limits.v_disturb), one device at a time
        when there is none. False: one device at a time everywhere.
        """
        t = np.asarray(targets, dtype=np.float64)
        if t.ndim != 2:
            raise ValueError(f"targets must be a 2-D map, got shape {t.shape}")
        _finite("targets", t)
        if (t <= 0).any() or (t >= 1).any():
            raise ValueError("targets must be conductances in siemens, 0 < G < 1")
        r0, c0 = origin
        rows, cols = self.shape
        if r0 < 0 or c0 < 0 or r0 + t.shape[0] > rows or c0 + t.shape[1] > cols:
            raise ValueError(f"a {t.shape} map at {origin} does not fit the {rows}x{cols} array")
        if not (np.isfinite(tolerance) and tolerance > 0):
            raise ValueError("tolerance must be a positive conductance in siemens")
        if not 0 <= max_pulses <= 0xFFFF:
            raise ValueError("max_pulses must be 0..65535")
        m = np.ones(t.shape, bool) if mask is None else np.asarray(mask, bool)
        if m.shape != t.shape:
            raise ValueError(f"mask shape {m.shape} differs from targets {t.shape}")
        algo = algorithm or ISPP()
        if not 1 <= patience <= 255:
            raise ValueError("patience must be 1..255 pulses")
        if isinstance(algo, Predicted):
            algo_params = algo.params(inverse=self._info.predictor_features == FEATURES_INVERSE)
        else:
            algo_params = algo.params()
        _finite("algorithm parameters", algo_params)
        idx = np.argwhere(m)
        if isinstance(algo, Predicted):
            self._check_predictor_range(t[m], "targets", refuse=True)
        code = algo.code | (wire.A_ROWS if parallel is None or parallel else 0)
        res = ProgramResult(
            targets=t,
            final=np.full(t.shape, np.nan),
            pulses=np.zeros(t.shape, np.int64),
            status=np.full(t.shape, -1, np.int64),
            time=np.zeros(t.shape),
            energy=np.zeros(t.shape),
            tolerance=tolerance,
            wall_time=0.0,
        )
        start = time.monotonic()
        try:
            with progress_bar(label, len(idx), self.show_progress(progress)) as advance:
                k = 0
                while k < len(idx):
                    fit = protocol.program_fit(self.link.budget)
                    part = idx[k : k + max(1, min(fit, chunk or fit))]
                    items = [(r0 + i, c0 + j, t[i, j]) for i, j in part]
                    req = protocol.encode_program(tolerance, max_pulses, code, patience, algo_params, items)
                    done = [0]

                    def step(n: int, total: int, done: list[int] = done) -> None:
                        advance(n - done[0])
                        done[0] = n

                    try:
                        p = self._request(wire.T_PROGRAM, req, progress=step)
                    except BoardTimeout:
                        # The reply never got through whole (a noisy line): write-verify
                        # reads first, so the same devices in smaller frames are safe.
                        if len(part) == 1:
                            raise
                        advance(-done[0])
                        self.link.fit(self.link.budget // 2)
                        continue
                    advance(len(part) - done[0])
                    chunk_time, results = protocol.decode_program(p, len(part))
                    res.board_time += chunk_time
                    for (i, j), d in zip(part, results, strict=True):
                        res.final[i, j], res.pulses[i, j], res.status[i, j] = d.g, d.pulses, d.status
                        res.time[i, j], res.energy[i, j] = d.time, d.energy
                    k += len(part)
        except KeyboardInterrupt:
            # What finished is kept: the caller can save it and program the rest (mask) later.
            res.wall_time = time.monotonic() - start
            raise Interrupted(res, int((res.status >= 0).sum()), len(idx)) from None
        res.wall_time = time.monotonic() - start
        if isinstance(algo, Predicted):
            self._check_predictor_range(res.final[m], "final reads")
        return res

    def _check_predictor_range(self, conductance: np.ndarray, what: str, refuse: bool = False) -> None:
        """Warn when conductances read outside the currents the loaded predictor was trained on;
        refuse (ValueError) when most of them do and `refuse`."""
        if self._predictor is None:
            return
        import warnings

        from memctl.errors import PredictorRangeWarning
        from memctl_shared.predictor_blob import decode

        i_min, i_max = decode(bytearray(self._predictor), len(self._predictor))[3:5]
        v_read = self._info.v_read
        margin = 0.05 * (i_max - i_min)
        i = np.asarray(conductance, float) * v_read
        out = np.isfinite(i) & ((i < i_min - margin) | (i > i_max + margin))
        if not out.any():
            return
        outside = (
            f"{int(out.sum())} of {i.size} {what} read {i[out].min() * 1e6:.3g}..{i[out].max() * 1e6:.3g} uA at "
            f"V_read {v_read:g} V, outside the {i_min * 1e6:.3g}..{i_max * 1e6:.3g} uA the loaded predictor was "
            "trained on"
        )
        if refuse and out.mean() > 0.5:
            raise ValueError(
                f"{outside}: a predictor for another family or read voltage? Nothing was pulsed. Characterize "
                "devices of this family on this board (memctl predictor characterize --device NAME) and load the "
                "predictor fitted on them."
            )
        warnings.warn(
            f"{outside}: it extrapolates there, so programming may take more pulses or fail. Characterize "
            "devices of this board (memctl characterize --mode pulses) and fit a predictor for them.",
            PredictorRangeWarning,
            stacklevel=3,
        )

    def show_progress(self, progress: bool | None) -> bool | None:
        """Whether long work shows a bar: the call's choice, else the board's."""
        return self.progress if progress is None else progress


def _finite(what: str, values: object) -> None:
    if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
        raise ValueError(f"{what} must be finite numbers (no NaN or inf)")
