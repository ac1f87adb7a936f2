"""`memctl` commands for firmware images: build and flash."""

from __future__ import annotations

import argparse

from memctl.cli.common import console


def cmd_build_firmware(a: argparse.Namespace) -> int:
    from memctl.firmware_image import build, verify

    image = build(a.out, a.arch)
    m = verify(image)
    console.print(
        f"{image}: firmware {m['version']} (protocol {m['protocol']}) for {m['arch']}, "
        f"{len(m['files'])} files, image hash {m['image_hash'][:16]}",
        soft_wrap=True,  # one line, whatever the terminal's width: a path and a hash to copy
    )
    return 0


def cmd_flash(a: argparse.Namespace) -> int:
    from memctl.flash import flash

    image = flash(a.port, a.image, out=a.out, force=a.force, progress=None if a.progress else False, timeout=a.timeout)
    console.print(f"{a.port}: running firmware image {image}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bf = sub.add_parser("build-firmware", help="compile the firmware with mpy-cross and pack a versioned image")
    bf.add_argument("--arch", default="rv32imc", help="mpy-cross -march (rv32imc: the reference board's RP2350)")
    bf.add_argument("--out", default="dist", help="folder for the compiled files and the image zip")
    bf.set_defaults(fn=cmd_build_firmware)

    fl = sub.add_parser("flash", help="install (mpremote) or update (memctl protocol) a board's firmware")
    fl.add_argument("--port", required=True, help="serial port of the board")
    fl.add_argument("--image", help="a memctl build-firmware zip (default: build one for the board's architecture)")
    fl.add_argument("--out", help="folder for the image built when --image is not given")
    fl.add_argument("--force", action="store_true", help="flash an image of another protocol version")
    fl.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for a memctl answer")
    fl.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    fl.set_defaults(fn=cmd_flash)
