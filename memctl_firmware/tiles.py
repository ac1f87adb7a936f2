# Deployment fingerprints: the tiles of a deployment this board holds, each
# with the fingerprint the host gave when it finished programming it. Any
# pulse inside a tile's rectangle clears its valid flag before the pulse is
# applied (and the flash copy with it), so a deployment that was reprogrammed,
# even by a reset-interrupted command, is never vouched for again.
import persist
from errors import CommandError
from wire import TILES_MAX


class Tiles:
    def __init__(self, storage):
        self.storage = storage
        self.held = persist.load_tiles(storage)  # [r0, c0, r1, c1, fingerprint, valid]
        self.armed = False  # a valid tile exists: pulses must be checked
        self._arm()

    def _arm(self):
        self.armed = False
        for t in self.held:
            if t[5]:
                self.armed = True

    def touch(self, r, c):
        """Called before every pulse on (r, c)."""
        changed = False
        for t in self.held:
            if t[5] and t[0] <= r <= t[2] and t[1] <= c <= t[3]:
                t[5] = 0
                changed = True
        if changed:
            persist.save_tiles(self.storage, self.held)
            self._arm()

    def set(self, r0, c0, r1, c1, fp, rows, cols):
        """Hold a tile: a record overlapping it (an older deployment's) is dropped."""
        if not (r0 <= r1 < rows and c0 <= c1 < cols):
            raise CommandError("tile rows/columns outside the array or reversed")
        if fp == 0:
            raise CommandError("tile fingerprint must be nonzero")
        keep = []
        for t in self.held:
            if t[2] < r0 or t[0] > r1 or t[3] < c0 or t[1] > c1:
                keep.append(t)
        if len(keep) >= TILES_MAX:
            raise CommandError("the board holds the most tiles it can record: clear them first")
        keep.append([r0, c0, r1, c1, fp, 1])
        self.held = keep

    def clear(self):
        self.held = []

    def save(self):
        persist.save_tiles(self.storage, self.held)
        self._arm()
