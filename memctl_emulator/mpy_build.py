"""memctl build-mpy: MicroPython built from source for a target.

The rv32 target is MicroPython's qemu port for QEMU virt (32-bit RISC-V),
built with the project's board definition (memctl_emulator/boards/MEMCTL_RV32:
the reference board's heap, the emulated board's frozen backend) passed as
BOARD_DIR, never by editing MicroPython's tree. The rp2 target is its rp2 port
for the RP2040 (boards/MEMCTL_PICO: a Pico with the board's pin names): the UF2
a real Pico is flashed with and the emulated rp2 board boots in rp2040js;
rp2350 and rp2350-riscv build the Pico 2's (compile checks: nothing here runs
an RP2350). The source is a MicroPython 1.28 tree or release tarball (`git
clone -b v1.28.0` gives one); the rp2 port also needs its submodules and
picotool, which a tarball of them beside the source gives (rp2-deps-*.tar.xz,
or --deps). Results are cached under $MEMCTL_CACHE (default ~/.cache/memctl),
keyed by the source's hash, the make options and the frozen files, so a second
build is free.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
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
    apt: tuple[str, ...]  # every Debian package the build and the emulation need
    runner: str = ""  # what runs the build: an executable ("" for a compile check)
    artifacts: tuple[str, ...] = ("firmware.elf",)  # build outputs kept in the cache; the first is the result
    rp2: bool = False  # the rp2 port: pico-sdk, picotool and the bootrom from the deps tarball
    cmake: tuple[str, ...] = ()  # rp2: further cmake definitions


# The rp2 port's toolchain (Debian 12) and the emulator's runtime.
_RP2_APT = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "libstdc++-arm-none-eabi-newlib", "cmake", "g++")
_RP2_TOOLS = (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("cmake", "cmake"), ("g++", "g++"))

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
        # picolibc-riscv64-unknown-elf has no executable to look for; the link fails without it.
        apt=("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc"),
        runner="qemu-system-riscv32",
    ),
    "rp2": Target(
        name="rp2",
        port="rp2",
        board_dir=BOARDS / "MEMCTL_PICO",
        make_vars=(),
        tools=_RP2_TOOLS + (("node", "nodejs"),),
        apt=_RP2_APT,
        runner="node",
        artifacts=("firmware.uf2", "firmware.elf"),
        rp2=True,
    ),
    "rp2350": Target(
        name="rp2350",
        port="rp2",
        board_dir=BOARDS / "MEMCTL_PICO2",
        make_vars=(),
        tools=_RP2_TOOLS,
        apt=_RP2_APT,
        artifacts=("firmware.uf2",),
        rp2=True,
    ),
    "rp2350-riscv": Target(
        name="rp2350-riscv",
        port="rp2",
        board_dir=BOARDS / "MEMCTL_PICO2",
        make_vars=("BOARD_VARIANT=RISCV",),
        # Debian's RISC-V GCC is riscv64-unknown-elf (multilib); pico-sdk looks for riscv32-unknown-elf. Its
        # picolibc has no newlib nosys.specs, which pico-sdk links with: this compile check fails there (no newlib
        # for RISC-V in Debian 12), the ARM one builds.
        cmake=("-DPICO_GCC_TRIPLE=riscv64-unknown-elf",),
        tools=(("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf"), ("cmake", "cmake"), ("g++", "g++")),
        apt=("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "cmake", "g++"),
        artifacts=("firmware.uf2",),
        rp2=True,
    ),
}
APT_PACKAGES = TARGETS["rv32"].apt


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


def _unpack(src: Path, dest: Path, marker: tuple[str, ...] = ("py", "mpconfig.h")) -> Path:
    """The source tree in dest (a tarball unpacked, a folder copied): builds never write into the user's tree.
    marker: a file the tree must hold."""
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
        root = tops[0] if len(tops) == 1 and not (tmp / marker[0]).exists() else tmp
    else:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("build*", ".git"))
        root = tmp
    if not root.joinpath(*marker).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        what = "a MicroPython source tree" if marker[0] == "py" else "the rp2 port's dependencies"
        raise BuildError(f"{src}: not {what} (no {'/'.join(marker)})")
    root.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def find_deps(src: Path, deps: str | os.PathLike | None) -> Path:
    """The rp2 port's dependencies: --deps, else an rp2-deps-*.tar.xz beside the source."""
    if deps:
        found = Path(deps).expanduser().resolve()
        if not found.exists():
            raise BuildError(f"no rp2 dependencies at {found}")
        return found
    beside = sorted(src.parent.glob("rp2-deps-*.tar.xz"))
    if not beside:
        raise BuildError(
            f"the rp2 port needs pico-sdk, tinyusb and picotool: pass --deps (a folder or tarball holding lib/ and "
            f"picotool-*/, e.g. rp2-deps-1.28.0.tar.xz) or put it beside {src}"
        )
    return beside[-1]


def bootrom_words(ts_source: str) -> bytes:
    """The RP2040 bootrom (rp2040js's demo keeps it as a TypeScript array of 32-bit words) as bytes."""
    start = ts_source.index("[")
    end = ts_source.index("]", start)
    words = [int(w, 16) for w in re.findall(r"0x[0-9a-fA-F]+", ts_source[start:end])]
    if len(words) != 4096:
        raise BuildError(f"the bootrom has {len(words)} words, not 4096 (16 KB)")
    return struct.pack(f"<{len(words)}I", *words)


def _prepare_rp2(tree: Path, deps_src: Path, root: Path, jobs: int, log: Callable[[str], None], fh) -> list[str]:
    """Put the rp2 port's submodules into tree, build picotool (once), return the make variables it needs."""
    s_hash = source_hash(deps_src)
    deps = _unpack(deps_src, root / f"deps-{s_hash[:16]}", marker=("lib", "pico-sdk", "README.md"))
    for lib in (deps / "lib").iterdir():
        dest = tree / "lib" / lib.name
        if not (dest / ".memctl-deps").exists():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(lib, dest, symlinks=True)
            (dest / ".memctl-deps").write_text(s_hash)
    picotool = root / f"picotool-{s_hash[:16]}"
    if not (picotool / "picotool" / "picotoolConfig.cmake").exists():
        tool_src = next(deps.glob("picotool-*"), None)
        if tool_src is None:
            raise BuildError(f"{deps_src}: no picotool-*/ folder (pico-sdk needs picotool to make the UF2)")
        log("building picotool (once)")
        work = root / f"picotool-build-{s_hash[:16]}"
        _run(
            [
                "cmake",
                "-S",
                str(tool_src),
                "-B",
                str(work),
                f"-DPICO_SDK_PATH={tree / 'lib' / 'pico-sdk'}",
                "-DPICOTOOL_NO_LIBUSB=1",
                "-DPICOTOOL_FLAT_INSTALL=1",
                f"-DCMAKE_INSTALL_PREFIX={picotool}",
            ],
            fh,
        )
        _run(["make", "-C", str(work), f"-j{jobs}", "install"], fh)
    boot = next(deps.rglob("bootrom.ts"), None)
    if boot is not None:
        (root / "rp2040-bootrom.bin").write_bytes(bootrom_words(boot.read_text()))
    return [f"-Dpicotool_DIR={picotool / 'picotool'}"]


class _StepFailed(Exception):
    pass


def _run(cmd: list[str], fh) -> None:
    fh.flush()
    if subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT):
        raise _StepFailed(" ".join(cmd))


def bootrom() -> Path:
    """The RP2040 bootrom rp2040js boots from (extracted by the rp2 build)."""
    path = cache_root() / "rp2040-bootrom.bin"
    if not path.exists():
        raise BuildError("no RP2040 bootrom: memctl build-mpy --target rp2 extracts it from the rp2 dependencies")
    return path


def build(
    src: str | os.PathLike,
    target: str = "rv32",
    jobs: int = 2,
    log: Callable[[str], None] = print,
    deps: str | os.PathLike | None = None,
) -> Path:
    """Build (or find in the cache) MicroPython for target from src; returns the firmware's path (rv32: the ELF
    QEMU runs; rp2: the UF2 a Pico is flashed with). deps: the rp2 port's submodules and picotool."""
    t = _target(target)
    src = Path(src).expanduser().resolve()
    if not src.exists():
        raise BuildError(f"no MicroPython source at {src}: pass a v1.28.0 tree or tarball (--src)")
    missing = missing_tools(t)
    if missing:
        raise BuildError(
            f"the {t.name} toolchain is not installed: apt-get install {' '.join(t.apt)} (missing {', '.join(missing)})"
        )
    deps_src = find_deps(src, deps) if t.rp2 and not (src / "lib" / "pico-sdk" / "README.md").exists() else None
    root = cache_root()
    s_hash = source_hash(src)
    d_hash = source_hash(deps_src) if deps_src else ""
    # rp2: the board folder goes to cmake in CMAKE_ARGS (an older recipe left it to the Makefile, which that loses)
    recipe = [t.board_dir.name, "cmake-board"] if t.rp2 else []
    opts = hashlib.sha256(json.dumps([t.port, *t.make_vars, *recipe]).encode()).hexdigest()
    f_hash = frozen_hash(t)
    key = hashlib.sha256(f"{s_hash}{d_hash}{opts}{f_hash}".encode()).hexdigest()[:16]
    out = root / f"{t.name}-{key}"
    result = out / t.artifacts[0]
    if all((out / a).exists() for a in t.artifacts):
        log(f"cached: {result}")
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
        logfile = root / f"{t.name}-{key}.log"
        minutes = "about 2 minutes" if not t.rp2 else "2-4 minutes"
        with open(logfile, "w") as fh:
            try:
                extra = _prepare_rp2(tree, deps_src, root, jobs, log, fh) if deps_src else []
                if t.rp2:
                    # CMAKE_ARGS on make's command line replaces what the port's Makefile adds to it (the board
                    # folder and variant): give them here too.
                    variant = [v.split("=", 1)[1] for v in t.make_vars if v.startswith("BOARD_VARIANT=")]
                    extra = [
                        "CMAKE_ARGS="
                        + " ".join(
                            [
                                *extra,
                                f"-DMICROPY_BOARD={t.board_dir.name}",
                                f"-DMICROPY_BOARD_DIR={t.board_dir}",
                                *(f"-DMICROPY_BOARD_VARIANT={v}" for v in variant),
                                *t.cmake,
                            ]
                        )
                    ]
                cmd = [
                    "make",
                    "-C",
                    str(tree / "ports" / t.port),
                    f"BOARD_DIR={t.board_dir}",
                    f"BUILD={build_dir}",
                    f"MPY_LIB_DIR={no_lib}",
                    *t.make_vars,
                    *extra,
                    f"-j{jobs}",
                ]
                log(f"building MicroPython for {t.name} ({minutes} on 2 cores): {' '.join(cmd)}")
                # mpy-cross (for the frozen modules) first, with the host compiler: the port's make would build it
                # with the cross-compiler settings it was given.
                _run(["make", "-C", str(tree / "mpy-cross"), f"-j{jobs}"], fh)
                _run(cmd, fh)
            except _StepFailed as e:
                tail = logfile.read_text(errors="replace").splitlines()[-15:]
                raise BuildError(f"{e} failed; last lines of {logfile}:\n" + "\n".join(tail)) from None
        out.mkdir(parents=True, exist_ok=True)
        for a in t.artifacts:
            shutil.copyfile(build_dir / a, out / a)
        (out / "build.json").write_text(
            json.dumps(
                {"target": t.name, "source": s_hash, "deps": d_hash, "make": list(t.make_vars), "frozen": f_hash},
                indent=1,
            )
        )
        log(f"built: {result}")
    (root / f"{t.name}.json").write_text(json.dumps({"elf": str(result), "frozen": f_hash}))
    return result


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
