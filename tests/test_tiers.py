"""The test tiers themselves: ``make test``'s stages run every collected test exactly once,
``make check`` finds a module's own tests, a failure says how busy the machine was."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import check_targets, conftest, helpers, tiers

REPO = Path(__file__).resolve().parent.parent

COLLECT = """
import json, sys, pytest

class Markers:
    def pytest_collection_finish(self, session):
        found = [(i.nodeid, sorted({m.name for m in i.iter_markers()})) for i in session.items]
        with open(sys.argv[1], "w") as out:
            json.dump(found, out)

sys.exit(pytest.main(["--co", "-q", "-m", "", "-p", "no:cacheprovider", "tests"],
                     plugins=[Markers()]))
"""


def _selected(expression: str, markers: list[str]) -> bool:
    """A ``-m`` expression of ours (names, and, or, not) evaluated on a test's markers."""
    names = set(re.findall(r"[A-Za-z_]\w*", expression)) - {"and", "or", "not"}
    return bool(eval(expression, {}, {n: n in markers for n in names}))  # noqa: S307


def test_make_test_runs_every_collected_test_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "markers.json"
    result = subprocess.run(
        [sys.executable, "-c", COLLECT, str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected: list[tuple[str, list[str]]] = json.loads(out.read_text())
    every = [x for stage in tiers.stages() for x in (stage, stage.beside) if x is not None]
    stages = []
    for stage in every:
        for command in stage.commands:
            if "pytest" not in command:
                continue
            at = len(command) - 1 - command[::-1].index("-m")  # pytest's -m, not python's
            expression = command[at + 1]
            paths = [a for a in command[at + 2 :] if a.startswith("tests")]
            stages.append((stage.name, expression, paths))
    assert len(stages) == 4, stages
    counts = dict.fromkeys((s[0] for s in stages), 0)
    for nodeid, markers in collected:
        takers = [
            name
            for name, expression, paths in stages
            if _selected(expression, markers) and (not paths or nodeid.startswith(tuple(paths)))
        ]
        assert len(takers) == 1, f"{nodeid} ({markers}) runs in {takers or 'no stage'}"
        counts[takers[0]] += 1
    print("tests per stage:", counts, "of", len(collected))
    assert sum(counts.values()) == len(collected) > 600


@pytest.mark.parametrize("module", [check_targets, helpers, conftest], ids=lambda m: m.__name__)
def test_the_examples_of_the_tier_helpers_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_make_check_finds_each_modules_own_tests() -> None:
    """Every module of ``appliance`` with a test file named after it is mapped to it."""
    for module in (REPO / "appliance").rglob("*.py"):
        relative = module.relative_to(REPO).as_posix()
        got = check_targets.targets(relative)
        assert got[-2:] == ["--doctest-modules", relative], got
        own = REPO / "tests" / f"test_{module.stem}.py"
        if own.exists() and module.parent.name == "appliance":
            assert got[0] == f"tests/test_{module.stem}.py", got


def test_the_test_toolchain_is_the_pinned_one() -> None:
    """Every pin of tests/constraints.txt is what this venv runs, and every tool of the
    test extra is pinned: an upstream release changes nothing (a new ansible-core would
    re-key the VM layers and turn a warm run cold) until a commit moves its pin."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (REPO / "tests/constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"tests/constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = pinned
    wrong = {n: (p, version(n)) for n, p in pins.items() if version(n) != p}
    assert not wrong, f"pinned vs installed, run `make venv`: {wrong}"
    extra = [Requirement(r) for r in requires("videostation") or []]
    tools = {canonicalize_name(r.name) for r in extra if r.marker and "test" in str(r.marker)}
    assert tools, "the test extra lists no tools"
    assert tools <= set(pins), f"test tools without a pin: {sorted(tools - set(pins))}"
