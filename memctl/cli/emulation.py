"""`memctl` commands for the emulated board and the demo on it."""

from __future__ import annotations

import argparse
import signal

from memctl.cli.common import console, err_console
from memctl.devices import PRESETS


def cmd_emulate(a: argparse.Namespace) -> int:
    import threading

    from memctl_emulator import EmulatedBoard

    stop = threading.Event()
    # Explicit handlers: a shell may start us with SIGINT ignored (background
    # jobs), and SIGTERM must also shut the emulated board down cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with EmulatedBoard(
        rows=a.rows,
        cols=a.cols,
        seed=a.seed,
        device=a.device,
        line_resistance=a.line_resistance,
        cell=a.cell,
        hal=a.hal,
        bare=a.bare,
        target=a.target,
        startup_timeout=60.0 if a.target in ("rv32", "rp2") else 20.0,
    ) as emu:
        print(emu.port, flush=True)
        err_console.print(
            f"emulated board {a.rows}x{a.cols} ({emu.device.name}) ready on [bold]{emu.port}[/]; Ctrl-C to stop"
        )
        while not stop.wait(0.5):
            if not emu.alive():
                err_console.print("[red]error:[/] the emulated board died:\n" + "\n".join(emu.log[-20:]))
                return 1
    return 0


def cmd_build_mpy(a: argparse.Namespace) -> int:
    from memctl_emulator.mpy_build import BuildError, build

    try:
        elf = build(a.src, a.target, jobs=a.jobs, log=lambda m: err_console.print(m, markup=False), deps=a.deps)
    except BuildError as e:
        err_console.print(f"[red]error:[/] {e}", markup=True, highlight=False)
        return 2
    print(elf)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from memctl.demo import run_demo

    r = run_demo(size=a.size, seed=a.seed, tolerance=a.tolerance, console=console)
    return 0 if r.ok.all() else 3


def add_parsers(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("emulate", help="start an emulated board and print its serial port")
    e.add_argument("--rows", type=int, default=32, help="array rows")
    e.add_argument("--cols", type=int, default=32, help="array columns")
    e.add_argument("--seed", type=int, default=0, help="seed of the devices' variation and noise")
    e.add_argument("--device", help=f"device preset ({', '.join(PRESETS)}) or a .toml/.json device file")
    e.add_argument("--line-resistance", type=float, default=0.0, help="ohm per wire segment (IR drop)")
    e.add_argument("--cell", choices=["0T1R", "1T1R"], default="0T1R", help="passive or with access transistors")
    e.add_argument(
        "--hal",
        choices=["emulated", "chips"],
        default=None,
        help="firmware front end on the unix target: semantic bus ops (emulated, default) or the reference "
        "board's chip drivers against chip-level models (chips)",
    )
    e.add_argument(
        "--target",
        choices=["unix", "rv32", "rp2"],
        default="unix",
        help="unix: MicroPython's 64-bit unix port (default); rv32: its qemu port on a 32-bit RISC-V "
        "(needs QEMU and memctl build-mpy); rp2: its rp2 port on an emulated RP2040 driving the reference "
        "board's chips (needs Node, npm ci in memctl_emulator/rp2 and memctl build-mpy --target rp2)",
    )
    e.add_argument(
        "--bare", action="store_true", help="MicroPython only, no memctl firmware (for memctl flash; unix and rp2)"
    )
    e.set_defaults(fn=cmd_emulate)

    b = sub.add_parser(
        "build-mpy",
        help="build MicroPython from source for an emulated target (cached)",
        description="Build MicroPython for an emulated target with the project's board definition; the result "
        "is cached (keyed by the source, the options and the frozen files) and used by emulate --target.",
    )
    b.add_argument(
        "--target",
        choices=["rv32", "rp2", "rp2350", "rp2350-riscv"],
        default="rv32",
        help="rv32: the qemu port on QEMU virt, 32-bit; rp2: the rp2 port for a Pico (RP2040), the UF2 to flash and "
        "to emulate; rp2350 / rp2350-riscv: a Pico 2's (ARM / RISC-V; compile checks, not emulated)",
    )
    b.add_argument(
        "--src",
        required=True,
        help="MicroPython v1.28.0 source: a folder (git clone -b v1.28.0) or its tarball",
    )
    b.add_argument(
        "--deps",
        help="rp2 targets: the port's submodules and picotool (a folder or tarball with lib/ and picotool-*/); "
        "default: an rp2-deps-*.tar.xz beside --src",
    )
    b.add_argument("--jobs", type=int, default=2, help="parallel make jobs (default 2)")
    b.set_defaults(fn=cmd_build_mpy)

    d = sub.add_parser("demo", help="program, read back and run a VMM on an emulated board")
    d.add_argument("--size", type=int, default=8, help="side of the square conductance map programmed")
    d.add_argument("--seed", type=int, default=0, help="seed of the emulated board and the map")
    d.add_argument("--tolerance", type=float, default=1e-6, help="write-verify tolerance, S")
    d.set_defaults(fn=cmd_demo)
