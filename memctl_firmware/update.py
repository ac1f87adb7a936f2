# Firmware updates through the memctl protocol. The image's files go into
# the slot that is not running (fw/a or fw/b), each is checked against the
# image's manifest (SHA-256) as read back from flash, and only then does
# fw/active switch - by renaming a one-line file, which is atomic - and the
# board reboot. An update cut short, or an image that does not check out,
# leaves fw/active, and so the running firmware, as it was.
#
# A checked image keeps in its slot only what differs from the base image: the
# one whose manifest sits beside main.py (a board whose MicroPython has the
# firmware frozen: those modules). main.py puts the slot ahead of the base, so
# the modules that did not change are imported from the base (from flash, not
# loaded onto the heap), and the slot's manifest still names the whole image.
import hashlib
import json
from binascii import hexlify

from errors import CommandError
from persist import fw_dir

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

SLOTS = ("a", "b")
# As bytes: iterating a str makes a one-character str per step, interned as a qstr, and a new qstr can
# need the interpreter's next, doubled qstr pool (5 KB in one piece) on a fragmented heap mid-update.
_NAME_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789_-./"


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _wipe(path):
    """Remove path and everything below it (MicroPython has no shutil)."""
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:  # directory
        for name in os.listdir(path):
            _wipe(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _makedirs(path):
    part = "/" if path[:1] == "/" else ""
    for name in path.split("/"):
        if name:
            part = part + name if part in ("", "/") else part + "/" + name
            if not _exists(part):
                os.mkdir(part)


def file_hash(path, buf):
    h = hashlib.sha256()
    mv = memoryview(buf)
    with open(path, "rb") as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return hexlify(h.digest()).decode()


def image_digest(files):
    """The image hash over (name, file hash) pairs; memctl.firmware_image computes the same."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update((name + "\0" + files[name] + "\n").encode())
    return hexlify(h.digest()).decode()


class Updater:
    def __init__(self, storage, running):
        self.fw = fw_dir(storage)
        self.base = (storage + "/" if storage else "") + "manifest.json"
        self.running = running  # slot in use, None when running the files beside main.py
        self.slot = None  # slot being written
        self.fh = None
        self.name = None
        self.size = 0
        self.written = 0
        self.names = []
        self.buf = bytearray(512)

    def _close(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def _dir(self):
        return self.fw + "/" + self.slot

    def begin(self):
        """Empty the slot not running; returns its index."""
        self._close()
        self.slot = "b" if self.running == "a" else "a"
        _wipe(self._dir())
        _makedirs(self._dir())
        self.names = []
        self.name = None
        return SLOTS.index(self.slot)

    def file(self, name, size):
        if self.slot is None:
            raise CommandError("no update in progress: begin again")
        if self.fh is not None and self.written != self.size:
            raise CommandError("previous file incomplete")
        self._close()
        if not name or len(name) > 64 or name[0] == "/" or ".." in name or name in self.names:
            raise CommandError("bad file name in image: " + name)
        for ch in name.encode():
            if ch not in _NAME_CHARS:
                raise CommandError("bad file name in image: " + name)
        d = name.rpartition("/")[0]
        if d:
            _makedirs(self._dir() + "/" + d)
        self.fh = open(self._dir() + "/" + name, "wb")
        self.name, self.size, self.written = name, size, 0
        self.names.append(name)

    def data(self, offset, chunk):
        n = len(chunk)
        if self.fh is None and not (self.name and offset + n == self.written):
            raise CommandError("no file open: begin again")
        if offset == self.written and offset + n <= self.size:
            self.fh.write(chunk)
            self.written += n
            if self.written == self.size:
                self._close()
        elif offset + n != self.written:  # (a resent chunk already written is fine)
            raise CommandError("update chunk out of order: begin again")
        return self.written

    def commit(self):
        """Check the written image against its manifest; switch to it. Returns its hash."""
        if self.slot is None or self.fh is not None:
            raise CommandError("image incomplete: begin again")
        slot, d = self.slot, self._dir()
        self.slot = None
        try:
            with open(d + "/manifest.json") as fh:
                m = json.load(fh)
            files = m["files"]
            if m["format"] != "memctl-firmware":
                raise ValueError
        except (OSError, ValueError, KeyError, TypeError):
            raise CommandError("image has no readable memctl manifest") from None
        if sorted(files) != sorted(n for n in self.names if n != "manifest.json"):
            raise CommandError("image files differ from its manifest")
        for name in files:
            if file_hash(d + "/" + name, self.buf) != files[name]:
                raise CommandError(name + " does not match its hash")
        h = image_digest(files)
        if h != m.get("image_hash"):
            raise CommandError("image hash does not match its files")
        self._prune(d, files)
        tmp = self.fw + "/active.tmp"
        with open(tmp, "w") as fh:
            fh.write(slot)
        os.rename(tmp, self.fw + "/active")
        return h

    def _prune(self, d, files):
        """Remove the slot's files the base image has alike. A package goes whole or not at all: its modules are
        found beside its __init__, so a changed one keeps every file of its package in the slot."""
        try:
            with open(self.base) as fh:
                base = json.load(fh)["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # no base image to fall back on (files beside main.py without a manifest)
        changed = {}
        for name in files:
            top = name.split("/")[0]
            changed[top] = changed.get(top, False) or base.get(name) != files[name]
        for top in changed:
            if not changed[top]:
                _wipe(d + "/" + top)
