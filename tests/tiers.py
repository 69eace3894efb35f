"""``make test``: every tier in stages, and at the end what each ran, passed and took.

1. lint: ruff and mypy (the JS type check is a test of its own);
2. the real-time audio tests alone, on a quiet machine (PipeWire's echo canceller);
3. every other test but the VMs and the benchmarks in two pytest-xdist workers
   (``--dist loadgroup``: the groups of ``tests/conftest.py``, longest first by
   ``tests/durations.json``), the arm64 chroot tests among them at low priority; beside
   them, at low priority, the two VM images are built or refreshed
   (``tests/vm/vmimage.py``);
4. the appliance booted in the x86_64 VM, then in the arm64 VM (side by side, the arm64
   VM starved under TCG: its kiosk missed its deadline and a viewer was moved to 360p);
   beside them, at lower priority (nice 10), the benchmarks with tiny sizes, only to
   keep them working (they judge nothing in that mode, and the VMs leave a fifth of the
   machine idle: 80 % busy). At normal priority, with B8's phones at 720p, they took
   9 min at 98 % of both cores and the x86_64 VM's kiosk did not join in 7 min.

Every stage runs even when one before it failed (a flaky stage would otherwise hide the
rest); the exit status is 1 if any failed. ``python -m tests.tiers --list`` prints the
stages and their commands without running them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tests.helpers import cpu_snapshot

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
PYTEST = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
# Two workers, each taking a whole group (tests/conftest.py: xdist_group_of) in the
# order of collection, which puts the longest recorded group first.
XDIST = ["-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder"]
SUMMARY = re.compile(r"\b\d+ (passed|failed|error|errors|skipped)\b")


@dataclass
class Stage:
    name: str
    commands: list[list[str]]
    env: dict[str, str] = field(default_factory=dict)
    outcome: str = "not run"
    seconds: float = 0.0
    ok: bool = False
    busy: float | None = None
    """The share of both cores the machine spent busy during the stage."""
    beside: Stage | None = None


def stages() -> list[Stage]:
    """The stages in order; a stage's ``beside`` runs at the same time, in a thread."""
    images = Stage(
        "VM images (beside, nice 19)",
        [["nice", "-n", "19", PY, "-m", "tests.vm.vmimage", "x86_64", "arm64"]],
    )
    benchmarks = Stage(
        "benchmarks, tiny sizes (beside the VMs, nice 10)",
        [["nice", "-n", "10", *PYTEST, "-m", "bench", "tests/bench"]],
        env={"BENCH_QUICK": "1"},
    )
    return [
        Stage(
            "lint (ruff, mypy)",
            [
                [PY, "-m", "ruff", "check", "appliance", "tests"],
                [PY, "-m", "ruff", "format", "--check", "appliance", "tests"],
                [PY, "-m", "mypy"],
            ],
        ),
        Stage("real-time audio, alone", [[*PYTEST, "-m", "realtime and not emulated"]]),
        Stage(
            "every other test, 2 workers (arm64 chroot at nice 19)",
            [[*PYTEST, *XDIST, "--durations=15", "-m", "not bench and not vm and not realtime"]],
            beside=images,
        ),
        Stage(
            "VMs booted, x86_64 then arm64",
            [
                [
                    *PYTEST,
                    "--durations=15",
                    "-m",
                    "vm",
                    "tests/vm/test_vm_x86.py",
                    "tests/vm/test_vm_arm64.py",
                ]
            ],
            beside=benchmarks,
        ),
    ]


def run(stage: Stage, out: BinaryIO | None = None) -> None:
    """Run a stage's commands in turn (stopping at the first that fails), their output
    echoed to ``out`` (this process's stdout by default); the outcome is the image
    builder's lines, else pytest's last summary line."""
    out = out or sys.stdout.buffer
    started, cpu = time.monotonic(), cpu_snapshot()
    # unbuffered: pytest's progress comes as it happens, not in blocks of 8 KB
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **stage.env}
    stage.ok, last, images = True, "", []
    for command in stage.commands:
        with subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as proc:
            assert proc.stdout is not None
            pending = b""
            # chunks, not lines: pytest's progress dots come without a newline
            while chunk := proc.stdout.read1(65536):
                out.write(chunk)
                out.flush()
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").strip()
                    if line.startswith("VM image"):
                        images.append(line)
                    elif SUMMARY.search(line):
                        last = line.strip("=").strip()
        if proc.returncode:
            stage.ok = False
            last = last or f"{command[2] if len(command) > 2 else command[0]} failed"
            break
    stage.outcome = " | ".join(images) or last or "ok"
    stage.seconds = time.monotonic() - started
    stage.busy = _busy(cpu)  # the whole machine's: a stage beside is counted too


def _busy(before: tuple[int, int]) -> float:
    after = cpu_snapshot()
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def main(argv: list[str]) -> int:
    order = stages()
    everything = [x for stage in order for x in (stage, stage.beside) if x is not None]
    if "--list" in argv:
        for stage in everything:
            for command in stage.commands:
                print(f"{stage.name}: {' '.join(command)}")
        return 0
    started = time.monotonic()
    for stage in order:
        beside = stage.beside
        if beside is None:
            print(f"--- {stage.name} ---", flush=True)
            run(stage)
            continue
        # What runs beside keeps its output in a log, shown only if it fails.
        log = Path(tempfile.mkstemp(prefix="videostation-beside-", suffix=".log")[1])
        thread = threading.Thread(target=_run_logged, args=(beside, log))
        thread.start()
        print(f"--- {stage.name}; beside it: {beside.name}, log {log} ---", flush=True)
        run(stage)
        thread.join()
        if not beside.ok:
            print(f"--- {beside.name} failed: ---\n{log.read_text()[-8000:]}", flush=True)
    print(f"\n--- make test: {(time.monotonic() - started) / 60:.1f} min ---")
    width = max(len(s.name) for s in everything)
    for stage in everything:
        mark = "ok  " if stage.ok else "FAIL"
        busy = "" if stage.busy is None else f"cpu {stage.busy:4.0%}"
        print(
            f"{mark} {stage.name:<{width}}  {stage.seconds / 60:5.1f} min  {busy:8}  "
            f"{stage.outcome}"
        )
    failed = [s.name for s in everything if not s.ok]
    if failed:
        print(f"FAILED stages: {', '.join(failed)}")
    return 1 if failed else 0


def _run_logged(stage: Stage, log: Path) -> None:
    """Run ``stage`` beside another, its output in ``log``."""
    with log.open("wb") as handle:
        run(stage, handle)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
