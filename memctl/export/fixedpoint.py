# Integer requantization exactly as TFLite / TFLite Micro do it (gemmlowp
# arithmetic), in plain Python ints: the host's reference, which the
# firmware's viper kernel (memctl_firmware/predictor.py, int8_layer) must
# equal bit for bit on any word size; hil_tests check both.
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _trunc_div(a, d):
    """C-style integer division (toward zero)."""
    q = (a if a >= 0 else -a) // d
    return q if a >= 0 else -q


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of two int32 values."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _trunc_div(ab + nudge, 1 << 31)


def rdbpot(x, exponent):
    """RoundingDivideByPOT: x / 2^exponent, rounding half away from zero."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x, m0, shift):
    """MultiplyByQuantizedMultiplier: x * m0 * 2^(shift - 31), rounded."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rdbpot(srdhm(x * (1 << left), m0), right)


def quantize_multiplier(m):
    """(m0, shift) with m = m0 * 2^(shift - 31), m0 in [2^30, 2^31)."""
    if m == 0:
        return 0, 0
    shift = 0
    while m < 0.5:
        m *= 2
        shift -= 1
    while m >= 1.0:
        m *= 0.5
        shift += 1
    m0 = int(round(m * (1 << 31)))
    if m0 == (1 << 31):
        m0 //= 2
        shift += 1
    return m0, shift
