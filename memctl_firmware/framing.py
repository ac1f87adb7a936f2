# The wire codec's per-byte loops in viper: COBS encode, COBS decode and the
# frame decoder's scan for the delimiter. memctl_shared/wire.py takes these in
# place of its pure-Python versions when it runs on MicroPython; the host keeps
# those as the reference, and hil_tests/test_framing_kernels.py checks these
# against them byte for byte, rejections and the in-place decode's buffer
# included. On the rv32 target pure Python spent about 1 400 instructions a
# byte here, these 20 to 25: a frame with 1 KB of payload took 1.5 M
# instructions to encode and 2.9 M to decode, now 0.12 M and 0.08 M, most of
# that outside these loops (allocation, the CRC, the header).
#
# Each public function checks its arguments (len() of the objects), then calls
# its kernel, which walks the bytes with machine-word pointers: a ptr8 access
# is unchecked, so a bad length raises IndexError here instead of writing past
# a buffer. Arguments out of range raise before anything is read (the
# reference may get partway first); an encoding that outgrows dst raises as
# the reference does. dst and buf must be writable (bytearray): a ptr8 store
# does not check that either. No allocation, nothing that depends on the word
# size (64-bit unix, rv32 and armv6m alike): addresses are uint, compared
# unsigned, and a negative offset wraps like any other.
#
# The kernels' first two parameters (p, q) are scratch, passed as 0: compiled
# by mpy-cross, the native emitter keeps only a function's first two locals in
# registers, and the first locals are the parameters. The byte loop's read
# address and end address live there; every other local is a stack slot.
import micropython


@micropython.viper
def _encode(p: uint, q: uint, src: ptr8, n: int, dst: ptr8, lim: int) -> int:
    sa = uint(src)
    i = 0  # next byte of src
    code_at = 0  # the open block's code byte in dst; its data from code_at + 1
    out = 0
    while True:
        # Copy the block's data: up to 254 bytes, the end of src or a zero byte, and nothing at or past
        # dst[lim]. off: where src[i] goes in dst, minus i.
        off = code_at + 1 - i
        stop = i + 254
        if stop > n:
            stop = n
        if stop > lim - off:
            stop = lim - off
        if stop < i:
            stop = i
        p = sa + uint(i)
        q = sa + uint(stop)
        delta = uint(dst) + uint(off) - sa
        while p < q and ptr8(p)[0]:
            ptr8(p + delta)[0] = ptr8(p)[0]
            p += 1
        i = int(p - sa)
        out = i + off
        # Every index the encoding writes is at most its final out, and out only grows: out < lim
        # throughout is exactly the reference writing nothing out of range.
        if out >= lim:
            return -1
        dst[code_at] = out - code_at
        if i < stop:  # a zero byte closed the block
            i += 1
        elif out - code_at != 0xFF:  # src ended inside the block
            break
        code_at = out  # the next block (after a zero byte or a full one, even at the end)
    dst[out] = 0
    return out + 1


@micropython.viper
def cobs_encode(src, n: int, dst) -> int:
    """COBS-encode src[:n] into dst and append the 0x00 delimiter; returns the bytes written."""
    if n > int(len(src)):
        raise IndexError("cobs_encode: n beyond src")
    r = int(_encode(0, 0, src, n, dst, int(len(dst))))
    if r < 0:
        raise IndexError("cobs_encode: dst too small")
    return r


@micropython.viper
def _decode(p: uint, q: uint, buf: ptr8, n: int) -> int:
    ba = uint(buf)
    i = 0
    out = 0
    while i < n:
        code = buf[i]
        i += 1
        end = i + code - 1
        if code == 0 or end > n:
            return -1
        # The block's data moves down by i - out; a zero byte in it is malformed (after the bytes before
        # it have moved, as in the reference).
        p = ba + uint(i)
        q = ba + uint(end)
        delta = uint(out - i)
        while p < q and ptr8(p)[0]:
            ptr8(p + delta)[0] = ptr8(p)[0]
            p += 1
        if p < q:
            return -1
        out += end - i
        i = end
        if code != 0xFF and i < n:
            buf[out] = 0
            out += 1
    return out


@micropython.viper
def cobs_decode(buf, n: int) -> int:
    """Decode COBS buf[:n] in place (no delimiter). Returns the length or -1."""
    if n > int(len(buf)):
        raise IndexError("cobs_decode: n beyond buf")
    return int(_decode(0, 0, buf, n))


@micropython.viper
def _scan(p: uint, q: uint, i: int, src: ptr8, end: int, dst: ptr8, n: int, cap: int) -> int:
    sa = uint(src)
    # Copy into dst[n:cap] while there is room, then drop bytes, until the delimiter or end.
    stop = i + cap - n
    if stop > end:
        stop = end
    if stop < i:
        stop = i
    p = sa + uint(i)
    q = sa + uint(stop)
    delta = uint(dst) + uint(n - i) - sa
    while p < q and ptr8(p)[0]:
        ptr8(p + delta)[0] = ptr8(p)[0]
        p += 1
    if p < q:
        return -1 - int(p - sa)
    q = sa + uint(end)
    while p < q and ptr8(p)[0]:
        p += 1
    if p < q:
        return -1 - int(p - sa)
    return int(p - sa)


@micropython.viper
def frame_scan(data, start: int, end: int, buf, n: int, cap: int) -> int:
    """FrameDecoder.feed's loop: copy data[start:end] into buf from index n (bytes beyond index cap are
    dropped) up to and including the first 0 delimiter. Returns the index after the last byte consumed,
    negated if that byte was the delimiter; the caller counts the bytes seen from it."""
    if start < end and (start < 0 or end > int(len(data))):
        raise IndexError("frame_scan: data[start:end] out of range")
    if n < 0 or cap > int(len(buf)):
        raise IndexError("frame_scan: buf smaller than cap")
    return int(_scan(0, 0, start, data, end, buf, n, cap))
