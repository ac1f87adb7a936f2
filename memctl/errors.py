"""Exceptions the SDK raises. Catch MemctlError for all of them."""

from __future__ import annotations

from memctl_shared import wire


class MemctlError(Exception):
    """Base class of every memctl error."""


class MissingExtra(MemctlError):
    """A feature needs an optional part of memctl that is not installed; the message names the pip line."""


class PortError(MemctlError):
    """The serial port could not be opened or failed."""


class BoardTimeout(MemctlError):
    """The board did not answer within the timeout, after all retries."""


class ProtocolError(MemctlError):
    """The board answered something the protocol does not allow."""


class FirmwareError(MemctlError):
    """The firmware refused or failed a command; nothing partial is hidden."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = wire.ERROR_NAMES.get(code, f"error-{code}")
        self.message = message
        super().__init__(f"board error {code} ({self.name}): {message}")


class SessionLost(FirmwareError):
    """The board reset since this session last synchronized; the request was not executed."""


class BoardReset(MemctlError):
    """The board reset while executing a request that is not safe to repeat
    (a pulse): it may have been applied once; it was not repeated."""


class SafetyLimitError(FirmwareError):
    """A pulse or input was outside the firmware's safety limits; nothing was applied."""

    HINT = "the board's limits change with memctl set-limits V_PULSE WIDTH V_READ (or --device FAMILY)"

    def __init__(self, code: int, message: str):
        super().__init__(code, message)
        if "memctl " not in message:  # the firmware's message already names a command where one helps
            self.args = (f"{self.args[0]}; {self.HINT}",)


class AddressError(FirmwareError):
    """A row, column or size outside the array."""


_BY_CODE = {wire.E_LIMIT: SafetyLimitError, wire.E_ADDRESS: AddressError, wire.E_SESSION: SessionLost}


def firmware_error(code: int, message: str) -> FirmwareError:
    return _BY_CODE.get(code, FirmwareError)(code, message)


class PredictorRangeWarning(UserWarning):
    """Predictor-guided programming outside the read currents its predictor was
    trained on: it extrapolates, and may need more pulses or fail."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during long work; `partial` holds what was finished (e.g. a
    ProgramResult whose unfinished devices have status -1). Still a
    KeyboardInterrupt, so code that does not know it stops as before."""

    def __init__(self, partial: object, done: int, total: int):
        super().__init__(f"interrupted after {done} of {total}")
        self.partial, self.done, self.total = partial, done, total
