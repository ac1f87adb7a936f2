# Board constants. One place to edit when porting to a new board.
FW_VERSION = "0.1.0"

# Read voltage: 0.2 V, as in paper 003 (small enough to never switch a device).
V_READ = 0.2

# Safety limits at boot (SET_LIMITS may change them within the hardware's
# reach). Paper 003 tuned with pulses up to ~1.3 V set / ~-1.9 V reset.
LIMIT_V_PULSE = 2.0
LIMIT_WIDTH = 1e-3
LIMIT_V_READ = 0.3

# Absolute ceilings no SET_LIMITS can exceed.
HW_MAX_WIDTH = 10.0  # paper 004 uses set pulses up to 1.3 s

# TIA ranges the firmware uses (indices into the front end's range list).
RANGE_READ = 0
RANGE_VMM = 1

# UART read timeout per poll (ms); the main loop idles at this rate.
UART_POLL_MS = 200
