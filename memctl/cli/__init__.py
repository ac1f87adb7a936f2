"""The `memctl` command line: one module per command group, assembled here."""

from __future__ import annotations

import argparse

from memctl.cli import board, deploy, emulation, firmware, predictor, programming
from memctl.cli.common import err_console
from memctl.errors import MemctlError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="memctl", description="memristor crossbar controller")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for group in (emulation, board, programming, deploy, firmware, predictor):
        group.add_parsers(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except MemctlError as e:
        err_console.print(f"[red]error:[/] {e}")
        return 2
    except (ValueError, IndexError, OSError) as e:
        err_console.print(f"[red]error:[/] {e}")
        return 2
