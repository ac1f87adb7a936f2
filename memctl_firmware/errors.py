# Firmware exceptions; each carries the wire error code the host receives.
from wire import E_ADDRESS, E_HAL, E_LIMIT, E_PAYLOAD, E_UNKNOWN


class CommandError(Exception):
    code = E_PAYLOAD


class LimitError(CommandError):
    code = E_LIMIT


class AddressError(CommandError):
    code = E_ADDRESS


class HALError(CommandError):
    code = E_HAL


class ChipFault(HALError):
    """A chip answered what it cannot have meant (a stuck line, no supply): the board's hardware, not a device."""


class UnknownCommand(CommandError):
    code = E_UNKNOWN
