"""The layers stay layered: importing the host SDK, its CLI or its applications
loads no emulator code, and the firmware and the shared contract import
nothing from the host."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_host_sdk_loads_no_emulator_code():
    code = (
        "import sys, memctl, memctl.cli, memctl.tuning, memctl.tune, memctl.characterize, memctl.ffp, "
        "memctl.deployment, memctl.flash, memctl.export.train, memctl.export.quantize\n"
        "print(sorted(m for m in sys.modules if m.startswith('memctl_emulator')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_board_code_imports_nothing_from_the_host_or_the_emulator():
    for folder in ("memctl_firmware", "memctl_shared"):
        for path in (ROOT / folder).rglob("*.py"):
            if "tests" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.append(node.module)
                bad = [n for n in names if n.split(".")[0].startswith("memctl") or n in ("numpy", "afe_bus")]
                assert not bad, f"{path.relative_to(ROOT)} imports {bad}: board code runs only MicroPython's modules"
