"""A board on the network: an RFC 2217 server (pyserial's own, serial.rfc2217.PortManager).

    memctl serve --port /dev/ttyUSB0 --listen 127.0.0.1:7000     # on the machine the board is plugged into
    memctl info --port rfc2217://127.0.0.1:7000                  # any memctl command, anywhere that reaches it

RFC 2217 is telnet with serial-port control: the client sets the baud rate and the modem lines as on a local
port, and bytes pass through unchanged, so the SDK's framing, retries, sessions and safety checks work as they
do over a cable. A dropped TCP connection is to the client what a pulled cable is: memctl.link.Link reopens
the URL until the server answers again.

Nothing here authenticates or encrypts: whoever can open a TCP connection to the listening address can drive
the board, pulses included (within the safety limits its firmware enforces), and change those limits as
`memctl set-limits` can. The default binds to loopback (this machine only); reach it from elsewhere through
an SSH tunnel, or listen on an address only trusted machines can reach.

One client at a time: the board's serial port is opened when a client connects and closed when it leaves,
as a local command opens and closes it; a second client while one is served is turned away.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import threading
from collections.abc import Callable

import serial
import serial.rfc2217

DEFAULT_LISTEN = ("127.0.0.1", 7000)

Log = Callable[[str], None]


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets: [::1]:7000) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not host or not 0 <= number <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:7000")
    return host, number


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


class _Lines:
    """The board's port as PortManager drives it. Modem lines that the port lacks (a pty: an emulated
    board) read as CTS, DSR and CD up, RI down, and setting them, or a break, does nothing; everything else
    passes through."""

    _READ = {"cts": True, "dsr": True, "cd": True, "ri": False}
    _SET = ("dtr", "rts", "break_condition")

    def __init__(self, port: serial.SerialBase):
        object.__setattr__(self, "_port", port)

    def __getattr__(self, name: str) -> object:
        if name in self._READ:
            try:
                return getattr(self._port, name)
            except OSError:
                return self._READ[name]
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: object) -> None:
        try:
            setattr(self._port, name, value)
        except OSError:
            if name not in self._SET:
                raise


class _Session:
    """One client: telnet/RFC 2217 from the socket through PortManager to the port, the port's bytes back
    (escaped) to the socket, until either side goes."""

    def __init__(self, sock: socket.socket, port: serial.SerialBase, peer: str, log: Log):
        self.sock, self.port, self.peer, self.log = sock, port, peer, log
        self.open = True
        self._send = threading.Lock()
        self.manager = serial.rfc2217.PortManager(_Lines(port), self)  # negotiation starts here

    def write(self, data: bytes) -> None:
        """PortManager's connection: its answers and the board's bytes share the socket."""
        with self._send:
            self.sock.sendall(data)

    def run(self) -> None:
        to_client = threading.Thread(target=self._board_to_client, name="memctl-serve-board", daemon=True)
        to_client.start()
        why = "disconnected"
        try:
            while self.open:
                data = self.sock.recv(4096)
                if not data:
                    break
                data = b"".join(self.manager.filter(data))
                if data:
                    self.port.write(data)
        except (OSError, ValueError) as e:  # serial.SerialException is an OSError
            why = f"dropped ({e})"
        finally:
            self.close()
            to_client.join()
            self.port.close()
            self.log(f"client {self.peer} {why}")

    def _board_to_client(self) -> None:
        try:
            while self.open:
                data = self.port.read(max(1, self.port.in_waiting))
                if data:
                    self.write(data.replace(serial.rfc2217.IAC, serial.rfc2217.IAC_DOUBLED))
        except (OSError, ValueError) as e:
            if self.open:
                self.log(f"board port failed while serving {self.peer}: {e}")
        finally:
            self.close()

    def close(self) -> None:
        """End the session: the socket's reader wakes up to an end of stream."""
        self.open = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class BoardServer:
    """Serve the board on `port` (a serial port or pyserial URL) over RFC 2217 at `listen` (host, port;
    port 0: any free one, see .address). Runs in threads: start() / stop(), or as a context manager.

    >>> with BoardServer("/dev/ttyUSB0", ("127.0.0.1", 7000)) as srv:
    ...     memctl.Board(srv.url).info()
    """

    def __init__(
        self, port: str, listen: tuple[str, int] = DEFAULT_LISTEN, *, baudrate: int = 115200, log: Log | None = None
    ):
        self.port = port
        self.listen = listen
        self.baudrate = baudrate  # until the client sets its own
        self.log: Log = log or (lambda text: None)
        self.clients = 0  # sessions served so far
        self.refused = 0  # clients turned away while another was served
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None
        self._session_thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) it listens on."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server.getsockname()[:2]

    @property
    def url(self) -> str:
        """What clients pass as --port."""
        host, port = self.address
        return f"rfc2217://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def busy(self) -> bool:
        t = self._session_thread
        return t is not None and t.is_alive()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no client is served (its session ended and the board's port closed)."""
        t = self._session_thread
        if t is not None:
            t.join(timeout)
        return not self.busy

    def start(self) -> BoardServer:
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = socket.create_server((host, port), family=family, backlog=4)  # SO_REUSEADDR: restart at once
        self.listen = (host, self._server.getsockname()[1])  # started again, it listens where it did
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="memctl-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop the client, if any (it sees a dropped connection)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        session = self._session
        if session is not None:
            session.close()
        self.wait_idle(timeout=10.0)
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> BoardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([server], [], [], 0.1)
            if not ready:
                continue
            try:
                sock, addr = server.accept()
            except OSError:
                continue
            peer = f"{addr[0]}:{addr[1]}"
            # A client that has just dropped and reconnects may arrive before its old session has ended.
            if self.busy and not self.wait_idle(timeout=1.0):
                self.refused += 1
                self.log(f"turned away {peer}: serving {self._session.peer if self._session else 'a client'}")
                sock.close()
                continue
            self._serve(sock, peer)

    def _serve(self, sock: socket.socket, peer: str) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames are small: no Nagle delay
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # a client that vanished frees the board
        for opt, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
        try:
            port = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.05)
        except (OSError, ValueError) as e:
            self.log(f"turned away {peer}: cannot open {self.port}: {e}")
            sock.close()
            return
        try:
            session = _Session(sock, port, peer, self.log)
        except OSError as e:
            port.close()
            sock.close()
            self.log(f"client {peer} dropped ({e})")
            return
        self.clients += 1
        self.log(f"client {peer} connected")
        self._session = session
        self._session_thread = threading.Thread(target=self._run, args=(session, sock), name="memctl-serve-client")
        self._session_thread.daemon = True
        self._session_thread.start()

    def _run(self, session: _Session, sock: socket.socket) -> None:
        try:
            session.run()
        finally:
            sock.close()
