# The emulated RV32 board's own backend: frozen into its MicroPython build
# (memctl_emulator/boards/MEMCTL_RV32), never in a firmware image, the way a
# real port carries its drivers in C. QEMU virt has one UART (MicroPython's
# stdin/stdout); uart_mux.py shares it between the host link, the analog bus
# and the flash filesystem, which the launcher keeps in a host folder so it
# outlives a QEMU restart. The launcher starts the board with boot() over the
# raw REPL, as a port's _boot.py would: mount the flash, run main.py from it.
import io
import os
import select
import struct
import sys

import micropython
import uart_mux as mux

NAME = "rv32"
_HOST_RX = 4096  # host bytes held until the firmware reads them; more is an overrun, as on a UART

MUX = None
LINK = None


class Mux:
    def __init__(self):
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.head = bytearray(mux.HEAD_SIZE)
        self.host = bytearray(_HOST_RX)
        self.hmv = memoryview(self.host)
        self.h0 = 0  # unread host bytes are host[h0:h1]
        self.h1 = 0
        self.overruns = 0
        self.reply = bytearray(mux.READ_MAX + 16)
        self.rmv = memoryview(self.reply)
        self.r_chan = -1  # channel whose reply is in reply[r_pos:r_len]
        self.r_len = 0
        self.r_pos = 0

    def send(self, chan, buf, n, more=None, m=0):
        """One frame: buf[:n], then more[:m] if given."""
        struct.pack_into(mux.HEAD, self.head, 0, mux.SYNC, chan, n + m)
        self.out.write(self.head)
        self.out.write(buf if n == len(buf) else memoryview(buf)[:n])
        if m:
            self.out.write(more if m == len(more) else memoryview(more)[:m])

    def frame(self):
        """Read one frame (blocking): host bytes join the host queue, anything else is the awaited reply."""
        self.inp.readinto(self.head)
        sync, chan, n = struct.unpack(mux.HEAD, self.head)
        if sync != mux.SYNC or n > mux.MAX_PAYLOAD:
            raise OSError(5)  # EIO: the line is out of step; nothing on it can be trusted
        if chan == mux.HOST:
            if self.h0 == self.h1:
                self.h0 = self.h1 = 0
            elif self.h1 + n > _HOST_RX and self.h0:  # compact
                k = self.h1 - self.h0
                self.hmv[:k] = self.hmv[self.h0 : self.h1]
                self.h0, self.h1 = 0, k
            room = _HOST_RX - self.h1
            take = n if n <= room else room
            if take:
                self.inp.readinto(self.hmv[self.h1 : self.h1 + take])
                self.h1 += take
            if take < n:  # overrun: the rest is lost, the link layer's CRC and retries recover
                self.overruns += 1
                drop = n - take
                while drop:
                    k = drop if drop < len(self.head) else len(self.head)
                    self.inp.readinto(memoryview(self.head)[:k])
                    drop -= k
            return
        if n > len(self.reply):
            self.reply = bytearray(n)
            self.rmv = memoryview(self.reply)
        if n:
            self.inp.readinto(self.rmv[:n])
        self.r_chan, self.r_len, self.r_pos = chan, n, 0

    def await_reply(self, chan):
        while self.r_chan != chan:
            self.frame()


class HostUart:
    """The HAL's uart: the host channel."""

    def __init__(self, m):
        self.m = m

    def readinto(self, buf, timeout_ms):
        m = self.m
        if m.h0 == m.h1:
            if not m.poller.poll(timeout_ms):
                return 0
            m.frame()  # the launcher sends nothing else unasked
            if m.h0 == m.h1:
                return 0
        n = m.h1 - m.h0
        if n > len(buf):
            n = len(buf)
        memoryview(buf)[:n] = m.hmv[m.h0 : m.h0 + n]
        m.h0 += n
        return n

    def write(self, buf, n):
        done = 0
        while done < n:  # frames of at most MAX_PAYLOAD
            k = n - done if n - done <= mux.MAX_PAYLOAD else mux.MAX_PAYLOAD
            self.m.send(mux.HOST, memoryview(buf)[done : done + k], k)
            done += k


class Channel:
    """A request / reply channel as a byte stream (what AFELink reads and writes)."""

    def __init__(self, m, chan):
        self.m = m
        self.chan = chan

    def write(self, buf):
        self.m.send(self.chan, buf, len(buf))
        return len(buf)

    def readinto(self, buf, n=-1):
        m = self.m
        m.await_reply(self.chan)
        if n < 0:
            n = len(buf)
        left = m.r_len - m.r_pos
        if n > left:
            n = left
        memoryview(buf)[:n] = m.rmv[m.r_pos : m.r_pos + n]
        m.r_pos += n
        if m.r_pos >= m.r_len:
            m.r_chan = -1
        return n


class Flash:
    """The board's flash filesystem (a VFS for os.mount), its blocks kept by the launcher."""

    def __init__(self, m):
        self.m = m
        self.cwd = "/"
        self.req = bytearray(320)  # op, struct, path; data goes out as the frame's second part

    def _path(self, path):
        if not path.startswith("/"):
            path = self.cwd.rstrip("/") + "/" + path
        parts = []
        for p in path.split("/"):
            if p == "..":
                if parts:
                    parts.pop()
            elif p and p != ".":
                parts.append(p)
        return "/".join(parts)

    def call(self, op, fmt, args, path, data=None):
        """One flash request; returns (reply memoryview, length) past the status, OSError on a failure."""
        req = self.req
        req[0] = op
        o = 1
        if fmt:
            struct.pack_into(fmt, req, 1, *args)
            o += struct.calcsize(fmt)
        p = self._path(path).encode()
        if o + len(p) > len(req):
            raise OSError(36)  # ENAMETOOLONG
        req[o : o + len(p)] = p
        o += len(p)
        n = 0 if data is None else len(data)
        if o + n > mux.MAX_PAYLOAD:
            raise OSError(27)  # EFBIG: the caller splits writes
        self.m.send(mux.FLASH, req, o, data, n)
        m = self.m
        m.await_reply(mux.FLASH)
        status = m.reply[0]
        n = m.r_len
        m.r_chan = -1
        if status:
            raise OSError(status)
        return m.rmv[1:n], n - 1

    # -- the VFS interface (os.mount) --
    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        if self.stat(path)[0] != 0x4000:
            raise OSError(20)  # ENOTDIR
        self.cwd = "/" + self._path(path)

    def getcwd(self):
        return self.cwd

    def stat(self, path):
        r, _ = self.call(mux.F_STAT, "", (), path)
        kind, size = struct.unpack_from("<BI", r, 0)
        return (0x4000 if kind == mux.KIND_DIR else 0x8000, 0, 0, 0, 0, 0, size, 0, 0, 0)

    def statvfs(self, path):
        return (4096, 4096, 1024, 512, 512, 0, 0, 0, 0, 255)

    def ilistdir(self, path):
        r, n = self.call(mux.F_LIST, "", (), path)
        entries = []
        i = 0
        while i < n:
            kind = r[i]
            j = i + 1
            while r[j]:
                j += 1
            entries.append((bytes(r[i + 1 : j]).decode(), 0x4000 if kind == mux.KIND_DIR else 0x8000, 0))
            i = j + 1
        return iter(entries)

    def mkdir(self, path):
        self.call(mux.F_MKDIR, "", (), path)

    def rmdir(self, path):
        self.call(mux.F_RMDIR, "", (), path)

    def remove(self, path):
        self.call(mux.F_REMOVE, "", (), path)

    def rename(self, old, new):
        o = self._path(old).encode()
        self.call(mux.F_RENAME, "<H", (len(o),), old, self._path(new).encode())

    def open(self, path, mode):
        if "r" in mode:
            self.stat(path)  # OSError(ENOENT) now, as open() would
        return FlashFile(self, path, mode)


class FlashFile(io.IOBase):
    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.text = "b" not in mode
        self.pos = 0
        if "w" in mode:
            fs.call(mux.F_WRITE, "<IH", (0, len(fs._path(path).encode())), path, b"")
        elif "a" in mode:
            self.pos = fs.stat(path)[6]

    def readinto(self, buf):
        want = len(buf)
        if want > mux.READ_MAX:
            want = mux.READ_MAX
        r, n = self.fs.call(mux.F_READ, "<IH", (self.pos, want), self.path)
        memoryview(buf)[:n] = r[:n]
        self.pos += n
        return n

    def read(self, n=-1):
        out = bytearray()
        chunk = bytearray(256)
        while n < 0 or len(out) < n:
            k = self.readinto(chunk if n < 0 or n - len(out) >= len(chunk) else memoryview(chunk)[: n - len(out)])
            if not k:
                break
            out.extend(memoryview(chunk)[:k])
        return out.decode() if self.text else bytes(out)

    def readline(self):
        line = bytearray()
        chunk = bytearray(256)
        while True:
            start = self.pos
            n = self.readinto(chunk)
            if not n:
                break
            k = bytes(chunk[:n]).find(b"\n")
            if k >= 0:
                line.extend(memoryview(chunk)[: k + 1])
                self.pos = start + k + 1
                break
            line.extend(memoryview(chunk)[:n])
        return line.decode() if self.text else bytes(line)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def write(self, buf):
        if isinstance(buf, str):
            buf = buf.encode()
        p = self.fs._path(self.path).encode()
        step = mux.MAX_PAYLOAD - 16 - len(p)
        done = 0
        while done < len(buf):
            k = len(buf) - done if len(buf) - done <= step else step
            self.fs.call(mux.F_WRITE, "<IH", (self.pos + done, len(p)), self.path, memoryview(buf)[done : done + k])
            done += k
        self.pos += done
        return done

    def ioctl(self, req, arg):
        return 0  # flush, close: every write already reached the flash

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass


def mount():
    """Switch the UART over to the multiplexer and mount the flash as /. The analog bus link is made here,
    before the firmware's imports fragment the heap (its 4 KB buffer needs one free run)."""
    global MUX, LINK
    from afe_link import AFELink

    micropython.kbd_intr(-1)  # 0x03 is data on this line from now on
    MUX = Mux()
    LINK = AFELink(Channel(MUX, mux.AFE))
    os.mount(Flash(MUX), "/")
    os.chdir("/")


def boot():
    """mount(), then run the firmware's main.py from the flash."""
    mount()
    import main  # noqa: F401  (runs the firmware; returns only if it stops)


def connect():
    """(uart, front end, flash folder) for hal.connect()."""
    from bus_front_end import BusFrontEnd  # imports firmware modules: only once the flash is mounted

    return HostUart(MUX), BusFrontEnd(LINK), ""
