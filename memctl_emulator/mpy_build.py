"""memctl build-mpy: MicroPython built from source for an emulated target.

The rv32 target is MicroPython's qemu port for QEMU virt (32-bit RISC-V),
built with the project's board definition (memctl_emulator/boards/MEMCTL_RV32:
the reference board's heap, the emulated board's frozen backend) passed as
BOARD_DIR, never by editing MicroPython's tree. The source is a MicroPython
1.28 tree or release tarball (`git clone -b v1.28.0` gives one). Results are
cached under $MEMCTL_CACHE (default ~/.cache/memctl), keyed by the source's
hash, the make options and the frozen files, so a second build is free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memctl.firmware_image import manifest_files

HERE = Path(__file__).resolve().parent
BOARDS = HERE / "boards"


class BuildError(RuntimeError):
    """MicroPython could not be built, or no build is there for a target."""


@dataclass(frozen=True)
class Target:
    """How one emulated target's MicroPython is built and run."""

    name: str
    port: str  # folder under ports/
    board_dir: Path
    make_vars: tuple[str, ...]
    tools: tuple[tuple[str, str], ...]  # (executable, Debian package)
    qemu: str


TARGETS = {
    "rv32": Target(
        name="rv32",
        port="qemu",
        board_dir=BOARDS / "MEMCTL_RV32",
        # Debian 12's GCC multilib has no rv32imac_zicsr entry (the port's default arch string): rv32imac with the
        # 2.2 ISA spec (CSRs implied) links the rv32imac/ilp32 picolibc.
        make_vars=("CROSS_COMPILE=riscv64-unknown-elf-", "RV32_ARCH=rv32imac -misa-spec=2.2"),
        tools=(
            ("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf"),
            ("qemu-system-riscv32", "qemu-system-misc"),
        ),
        qemu="qemu-system-riscv32",
    )
}
# picolibc-riscv64-unknown-elf has no executable to look for; the link fails without it.
APT_PACKAGES = ("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc")


def cache_root() -> Path:
    return Path(os.environ.get("MEMCTL_CACHE") or Path.home() / ".cache" / "memctl") / "micropython"


def _hash_tree(root: Path, h: hashlib._Hash) -> None:
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith("build") or part == "__pycache__" for part in rel.parts):
            h.update(rel.as_posix().encode() + b"\0" + p.read_bytes() + b"\0")


def source_hash(src: Path) -> str:
    h = hashlib.sha256()
    if src.is_file():
        h.update(src.read_bytes())
    else:
        _hash_tree(src, h)
    return h.hexdigest()


def frozen_hash(target: Target) -> str:
    """The board definition and the modules its manifest freezes: a change needs a rebuild."""
    h = hashlib.sha256()
    _hash_tree(target.board_dir, h)
    for name, src in sorted(manifest_files(target.board_dir / "manifest.py").items()):
        h.update(name.encode() + b"\0" + src.read_bytes() + b"\0")
    return h.hexdigest()


def missing_tools(target: Target) -> list[str]:
    return [pkg for exe, pkg in target.tools if shutil.which(exe) is None]


def _target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise BuildError(f"unknown target {name!r}; targets: {', '.join(TARGETS)}") from None


def _unpack(src: Path, dest: Path) -> Path:
    """The source tree in dest (a tarball unpacked, a folder copied): builds never write into the user's tree."""
    if dest.exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if src.is_file():
        try:
            with tarfile.open(src) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise BuildError(f"{src}: not a readable MicroPython source tarball: {e}") from e
        tops = [p for p in tmp.iterdir() if p.is_dir()]
        root = tops[0] if len(tops) == 1 and not (tmp / "py").exists() else tmp
    else:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("build*", ".git"))
        root = tmp
    if not (root / "py" / "mpconfig.h").exists() or not (root / "ports").exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"{src}: not a MicroPython source tree (no py/mpconfig.h)")
    root.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def build(
    src: str | os.PathLike,
    target: str = "rv32",
    jobs: int = 2,
    log: Callable[[str], None] = print,
) -> Path:
    """Build (or find in the cache) MicroPython for target from src; returns the firmware's path."""
    t = _target(target)
    src = Path(src).expanduser().resolve()
    if not src.exists():
        raise BuildError(f"no MicroPython source at {src}: pass a v1.28.0 tree or tarball (--src)")
    missing = missing_tools(t)
    if missing:
        raise BuildError(
            f"the {t.name} toolchain is not installed: apt-get install {' '.join(APT_PACKAGES)} (missing "
            f"{', '.join(missing)})"
        )
    root = cache_root()
    s_hash = source_hash(src)
    opts = hashlib.sha256(json.dumps([t.port, *t.make_vars]).encode()).hexdigest()
    f_hash = frozen_hash(t)
    key = hashlib.sha256(f"{s_hash}{opts}{f_hash}".encode()).hexdigest()[:16]
    out = root / f"{t.name}-{key}"
    elf = out / "firmware.elf"
    if elf.exists():
        log(f"cached: {elf}")
    else:
        root.mkdir(parents=True, exist_ok=True)
        tree = _unpack(src, root / f"src-{s_hash[:16]}")
        # One build folder per source and options: a change of the frozen files rebuilds incrementally.
        build_dir = root / f"build-{t.name}-{s_hash[:8]}{opts[:8]}"
        # The frozen manifest requires nothing from micropython-lib (a git submodule the release tree lacks); the
        # port's make only checks that the folder is there.
        no_lib = root / "no-micropython-lib"
        no_lib.mkdir(exist_ok=True)
        (no_lib / "README.md").write_text("memctl freezes only its own modules; micropython-lib is not needed.\n")
        cmd = [
            "make",
            "-C",
            str(tree / "ports" / t.port),
            f"BOARD_DIR={t.board_dir}",
            f"BUILD={build_dir}",
            f"MPY_LIB_DIR={no_lib}",
            *t.make_vars,
            f"-j{jobs}",
        ]
        # mpy-cross (for the frozen modules) first, with the host compiler: the port's make would build it with
        # the cross-compiler settings it was given.
        steps = [["make", "-C", str(tree / "mpy-cross"), f"-j{jobs}"], cmd]
        log(f"building MicroPython for {t.name} (about 2 minutes on 2 cores): {' '.join(cmd)}")
        logfile = root / f"{t.name}-{key}.log"
        with open(logfile, "w") as fh:
            for step in steps:
                rc = subprocess.call(step, stdout=fh, stderr=subprocess.STDOUT)
                if rc:
                    tail = logfile.read_text(errors="replace").splitlines()[-15:]
                    raise BuildError(f"make failed ({rc}); last lines of {logfile}:\n" + "\n".join(tail))
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_dir / "firmware.elf", elf)
        (out / "build.json").write_text(
            json.dumps({"target": t.name, "source": s_hash, "make": list(t.make_vars), "frozen": f_hash}, indent=1)
        )
        log(f"built: {elf}")
    (root / f"{t.name}.json").write_text(json.dumps({"elf": str(elf), "frozen": f_hash}))
    return elf


def firmware(target: str = "rv32") -> Path:
    """The last build for target ($MEMCTL_<TARGET>_FIRMWARE overrides); BuildError saying how to make one."""
    t = _target(target)
    env = os.environ.get(f"MEMCTL_{t.name.upper()}_FIRMWARE")
    if env:
        return Path(env)
    how = f"memctl build-mpy --target {t.name} --src PATH (a MicroPython v1.28.0 tree or tarball)"
    try:
        last = json.loads((cache_root() / f"{t.name}.json").read_text())
    except (OSError, ValueError):
        raise BuildError(f"no MicroPython built for {t.name}: {how}") from None
    if last.get("frozen") != frozen_hash(t) or not Path(last["elf"]).exists():
        raise BuildError(f"the {t.name} MicroPython build predates the emulated board's backend: {how}")
    return Path(last["elf"])
