"""The `memctl` command line: one module per command group, assembled here."""

from __future__ import annotations

import argparse
import sys

from memctl import records
from memctl.cli import board, deploy, emulation, firmware, instruments, predictor, programming, serve
from memctl.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, err_console
from memctl.errors import MemctlError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="memctl", description="memristor crossbar controller")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for group in (emulation, board, instruments, programming, deploy, firmware, predictor, serve):
        group.add_parsers(sub)
    _show_defaults(ap)
    return ap


class _Defaults(argparse.HelpFormatter):
    """Help with each option's default, where there is one to say and its help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        quiet = action.default is None or isinstance(action.default, bool) or action.default is argparse.SUPPRESS
        if quiet or "default" in text or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _show_defaults(p: argparse.ArgumentParser) -> None:
    """Every command's --help shows each option's default."""
    p.formatter_class = _Defaults
    for act in p._actions:
        if isinstance(act, argparse._SubParsersAction):
            for sp in act.choices.values():
                _show_defaults(sp)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    a = build_parser().parse_args(argv)
    a.argv = argv
    records.cli_command = ["memctl", *argv]
    try:
        return a.fn(a)
    except KeyboardInterrupt:
        # A command with partial results catches this itself and says how to resume.
        _error("interrupted (Ctrl-C); nothing further was sent to the board")
        return EXIT_INTERRUPTED
    except (MemctlError, ValueError, IndexError, OSError) as e:
        _error(str(e))
        return EXIT_ERROR
    except SystemExit as e:
        if not isinstance(e.code, str):  # argparse's own exits keep their codes
            raise
        _error(e.code)
        return EXIT_ERROR


def _error(text: str) -> None:
    # The message is printed as it is: rich markup in it ("memctl[firmware]") must not be eaten.
    err_console.print("[red]error:[/] ", end="")
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)
