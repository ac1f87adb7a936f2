"""`memctl serve`: a board on the network (RFC 2217), for memctl commands elsewhere via --port rfc2217://."""

from __future__ import annotations

import argparse
import signal

from memctl.cli.common import err_console

WHO = (
    "Anyone who can connect to the listening address can drive the board, pulses included, within the safety "
    "limits its firmware enforces (and change those limits, as memctl set-limits can): nothing is authenticated "
    "or encrypted. The default, 127.0.0.1, is this machine only; reach it from elsewhere through an SSH tunnel "
    "(ssh -L 7000:127.0.0.1:7000 HOST), or listen on an address only trusted machines reach."
)


def cmd_serve(a: argparse.Namespace) -> int:
    import threading

    import memctl
    from memctl.serve import BoardServer, is_loopback, parse_listen

    try:
        listen = parse_listen(a.listen)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    with memctl.Board(a.port, baudrate=a.baud, progress=False) as b:  # a memctl board answers there, or an error
        info = b.info()
    stop = threading.Event()
    # Explicit handlers, as memctl emulate: a background shell may start us with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    say = lambda text: err_console.print(text, markup=False, highlight=False)  # noqa: E731
    with BoardServer(a.port, listen, baudrate=a.baud, log=say) as srv:
        print(srv.url, flush=True)
        err_console.print(
            f"serving the {info.rows}x{info.cols} board on {a.port} at [bold]{srv.url}[/] "
            f"(memctl ... --port {srv.url}); one client at a time; Ctrl-C to stop",
            highlight=False,
        )
        if not is_loopback(listen[0]):
            err_console.print(f"[yellow]warning:[/] listening beyond this machine. {WHO}", highlight=False)
        stop.wait()
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "serve",
        help="serve a board over the network (RFC 2217) for --port rfc2217://HOST:PORT",
        description="Serve the board on --port (a serial port, or an emulated board's port from memctl emulate) "
        "as an RFC 2217 server: any memctl command elsewhere reaches it with --port rfc2217://HOST:PORT, one "
        "client at a time; a client whose connection drops reconnects as after a pulled cable. " + WHO,
    )
    s.add_argument("--port", required=True, help="serial port or pyserial URL of the board to serve")
    s.add_argument(
        "--listen",
        default="127.0.0.1:7000",
        help="HOST:PORT to listen on; 127.0.0.1 (the default) is this machine only, 0.0.0.0 every network it is "
        "on (anyone there can then pulse the board); port 0 picks a free one (printed)",
    )
    s.add_argument("--baud", type=int, default=115200, help="serial baud rate until a client sets its own")
    s.set_defaults(fn=cmd_serve)
