"""What every benchmark here shares: timing a call, summarising samples, saying PASS or FAIL."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def describe(samples: list[float], unit: str = "ms", digits: int = 2) -> str:
    """``median 1.23 ms  (n=20, min …, p95 …, max …)``."""
    spread = f"n={len(samples)}, min {min(samples):.{digits}f}, p95 {p95(samples):.{digits}f}, max {max(samples):.{digits}f}"
    return f"median {statistics.median(samples):9.{digits}f} {unit}   ({spread})"


def in_process() -> str:
    """Where in-process figures get gtui from: the interpreter running the bench, not the fresh install (no start-up is in them)."""
    import gtcore

    return f"in-process, in this interpreter ({sys.prefix}, the development venv; gtcore from {Path(gtcore.__file__).parent})"


def verdict(ok: bool, target: str) -> str:
    return f"{target}: {'PASS' if ok else 'FAIL'}"


def process_ms(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None, check: bool = True) -> float:
    """Wall milliseconds of one whole process, as a user waits for it (start, import, work, exit)."""
    import subprocess

    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if check and done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def alternate(commands: dict[str, list[str]], rounds: int, env: dict[str, str] | None = None,
              warmup: int = 1) -> dict[str, list[float]]:
    """Time whole processes side by side: every round runs each command once, in turn.

    Alternating A/B/A/B (never all A then all B) spreads the machine's drift (a
    checkpoint, another process waking) over every command alike, so their
    ratio is fair.  ``warmup`` rounds fill the page cache and are not counted.
    """
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for round_number in range(warmup + rounds):
        for label, argv in commands.items():
            elapsed = process_ms(argv, env)
            if round_number >= warmup:
                samples[label].append(elapsed)
    return samples


def ratio_line(label: str, samples: list[float], baseline_label: str, baseline: list[float]) -> str:
    """``label  median X ms  = R× baseline (median Y ms)``."""
    mine, theirs = statistics.median(samples), statistics.median(baseline)
    return f"{label:<44} median {mine:8.1f} ms   {mine / theirs:5.2f}× {baseline_label} ({theirs:.1f} ms)"


def judge(label: str, samples: list[float], baseline_label: str, baseline: list[float], targets: dict[str, float]) -> bool:
    """The ratio line, then one verdict per target (``{"the issue-22 target": 4.0}``: ratio <= 4); True when all hold."""
    print(ratio_line(label, samples, baseline_label, baseline))
    ratio = statistics.median(samples) / statistics.median(baseline)
    ok = True
    for text, limit in targets.items():
        ok &= ratio <= limit
        print("   " + verdict(ratio <= limit, f"<= {limit:g}x {baseline_label}, {text}"))
    return ok


def parse_quick(parser: argparse.ArgumentParser, argv: list[str] | None, quick: dict[str, object]) -> argparse.Namespace:
    """Parse ``argv``; with ``--quick`` the scaled-down defaults in ``quick`` apply (options given still win).

    A check that the bench runs, in a minute or two: its figures are too small to judge the targets by.
    """
    shown = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"scaled down, to check the bench runs: {shown}")
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(**quick)
    return parser.parse_args(argv)


def settle(root: Path) -> None:
    """Date every file of the town an hour back, as a town's plugins are: caches skip files changed in the last seconds."""
    past = time.time() - 3600
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # the poison corpus holds dangling links, loops and FIFOs
                os.utime(os.path.join(directory, name), (past, past), follow_symlinks=False)


# -- a normal install of gtui, for timing whole processes -------------------------------------------

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("gtcore", "gtui", "scripts", "pyproject.toml")  # what the installed gtui is built from: its cache key
CACHE = Path(tempfile.gettempdir()) / "gtui-bench"
UNSEEN = ("PYTHONPATH", "PYTHONHOME")  # what would make a child import other code than the install's


@dataclass(frozen=True)
class Install:
    """gtui installed from a wheel into a venv of its own: what a user who runs ``pip install gtui`` starts.

    The development venv's editable install puts a finder on every start (about
    9 ms): processes timed from it, and its ``python -c pass``, flatter gtui.
    """

    venv: Path
    version: str

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def bare(self) -> list[str]:
        """The fairest baseline of any whole gtui process: this venv's interpreter, doing nothing."""
        return [self.python, "-c", "pass"]

    def gtui(self, town: Path, *args: str) -> list[str]:
        """The ``gtui`` command as a user types it: the install's console script."""
        return [str(self.venv / "bin" / "gtui"), "--town", str(town), *args]

    @property
    def kennel_argv(self) -> tuple[str, ...]:
        """How an in-process Engine of the bench starts this install's kennel."""
        return self.unseeing(self.python, "-m", "gtui")

    @staticmethod
    def unseeing(*argv: str) -> tuple[str, ...]:
        """``argv`` run without the bench's PYTHONPATH, for what starts it with the bench's environment (an Engine, tmux)."""
        return ("env", *(f"-u{name}" for name in UNSEEN), *argv)

    def env(self) -> dict[str, str]:
        """The bench's environment less what would point a child at other code, and less the town settings of GT_*."""
        return {key: value for key, value in os.environ.items() if key not in UNSEEN and not key.startswith("GT_")} | {"NO_COLOR": "1"}

    def describe(self) -> str:
        return f"gtui {self.version} installed from a wheel into {self.venv}, not editable"


def installed_gtui(extras: tuple[str, ...] = (), cache: Path = CACHE) -> Install:
    """gtui built from this tree into a fresh venv, cached until gtcore/, gtui/, scripts/ or pyproject.toml change.

    Built in a side directory and renamed when complete, so an interrupted build
    is never reused; its dependencies are pinned to the development venv's versions,
    so the two measure the same libraries.
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *(dep for extra in extras for dep in project["optional-dependencies"][extra])]
    pins = sorted(f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions()
                  if dist.metadata["Name"] and dist.metadata["Name"].lower() != "gtui")
    key = _tree_hash([*wanted, *pins, sys.version])
    final = cache / f"venv-{key[:16]}{''.join('-' + extra for extra in extras)}"
    cached_venv(final, lambda side, python: _install_wheel(side, python, wanted, pins), "gtui from a wheel")
    return Install(final, project["version"])


def cached_venv(final: Path, fill: Callable[[Path, str], None], what: str) -> Path:
    """A venv at ``final``, made unless there: ``python -m venv`` in a side directory, ``fill(side, its python)``, renamed.

    An interrupted build leaves only its side directory, never a ``final`` to reuse.
    """
    if final.exists():
        return final
    print(f"installing {what} into {final} ...", file=sys.stderr, flush=True)
    side = final.with_name(f".{final.name}.{os.getpid()}.building")
    shutil.rmtree(side, ignore_errors=True)
    try:
        side.mkdir(parents=True)
        quietly([sys.executable, "-m", "venv", str(side / "venv")])
        python = str(side / "venv" / "bin" / "python")
        fill(side, python)
        quietly([python, "-m", "compileall", "-q", str(side / "venv" / "lib")])  # byte-compiled, as an install leaves it
        _repoint_scripts(side / "venv" / "bin", side / "venv", final)
        try:
            (side / "venv").rename(final)
        except OSError:  # another bench built the same venv meanwhile: theirs is as good
            if not final.exists():
                raise
    finally:
        shutil.rmtree(side, ignore_errors=True)
    return final


def _tree_hash(extra: list[str]) -> str:
    """sha256 of every source file of the install (paths and bytes) and of ``extra``."""
    digest = hashlib.sha256("\n".join(extra).encode())
    for path in sorted(_source_files()):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _source_files() -> list[Path]:
    files = [REPO / "pyproject.toml"]
    for package in SOURCES[:-1]:
        files += [path for path in (REPO / package).rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    return files


def _install_wheel(side: Path, python: str, wanted: list[str], pins: list[str]) -> None:
    """A wheel of a copy of the tree (building in the tree would leave build/ and *.egg-info in it), installed without -e."""
    source = side / "src"
    for path in _source_files():
        target = source / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    shutil.copy2(REPO / "README.md", source / "README.md")  # pyproject's readme
    (side / "constraints.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    quietly([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(side / "wheel"), str(source)])
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    quietly([*pip, "--no-deps", *map(str, (side / "wheel").glob("gtui-*.whl"))])
    quietly([*pip, "-c", str(side / "constraints.txt"), *wanted])
    _check_installed(Path(python).parent.parent)


def quietly(argv: list[str]) -> None:
    """Run one build step; its chatter (pip's) is shown only when it fails."""
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}")


def _repoint_scripts(bin_dir: Path, built: Path, final: Path) -> None:
    """Console scripts name their venv's interpreter in their first line: name the place the venv is renamed to."""
    for script in bin_dir.iterdir():
        if script.is_file() and not script.is_symlink():
            text = script.read_bytes()
            if str(built).encode() in text:
                script.write_bytes(text.replace(str(built).encode(), str(final).encode()))


def _check_installed(venv: Path) -> None:
    """The venv's gtui must come from its own site-packages, with no editable finder anywhere."""
    import subprocess

    probe = "import gtui, gtcore, sys; print(gtui.__file__); print(gtcore.__file__)"
    env = {key: value for key, value in os.environ.items() if key not in UNSEEN}
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True, cwd="/", env=env)
    site = next(venv.glob("lib/python*/site-packages"))
    if any(not Path(line).is_relative_to(site) for line in found.stdout.split()) or any(site.glob("__editable__*")):
        raise SystemExit(f"{venv}: gtui is not a normal install: {found.stdout.strip()}")


@contextlib.contextmanager
def kennel_alive(install: Install, town: Path) -> Iterator[None]:
    """A kennel of the install for ``town``, alive as a Deacon keeps one (``gtui kennel``, in the foreground); stopped after."""
    import subprocess

    from gtcore.dogs.kennel import alive, place
    from gtcore.town.layout import Town

    where = place(Town(town))
    env = install.env()
    proc = subprocess.Popen(install.gtui(town, "kennel"), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while alive(where) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the kennel for {town} did not come up (exit {proc.returncode}); see {where.log}")
            time.sleep(0.02)
        yield
    finally:
        subprocess.run(install.gtui(town, "kennel", "stop"), env=env, capture_output=True, timeout=60)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
