"""memctl host SDK: talk to memctl controller boards, real or emulated."""

from memctl.algorithms import FFP, ISPP, Adaptive, FFPTable, Predicted, WriteVerify
from memctl.board import Board, BoardInfo, Limits, ProgramResult
from memctl.deployment import DeployError, Deployment, deploy
from memctl.errors import (
    AddressError,
    BoardReset,
    BoardTimeout,
    FirmwareError,
    MemctlError,
    PortError,
    PredictorRangeWarning,
    ProtocolError,
    SafetyLimitError,
    SessionLost,
)
from memctl.instruments import endurance, form_array, iv_sweep, retention
from memctl.protocol import BiasScheme, Cell, ReadMode

__version__ = "0.1.0"

__all__ = [
    "BiasScheme",
    "Cell",
    "ReadMode",
    "FFP",
    "FFPTable",
    "ISPP",
    "Adaptive",
    "AddressError",
    "Board",
    "BoardInfo",
    "BoardReset",
    "BoardTimeout",
    "DeployError",
    "Deployment",
    "FirmwareError",
    "Limits",
    "Predicted",
    "MemctlError",
    "PortError",
    "PredictorRangeWarning",
    "ProgramResult",
    "ProtocolError",
    "SafetyLimitError",
    "SessionLost",
    "WriteVerify",
    "deploy",
    "endurance",
    "form_array",
    "iv_sweep",
    "retention",
]
