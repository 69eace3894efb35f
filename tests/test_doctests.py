"""The examples in the docstrings of the pure modules run, and say what they show.

Every module of ``appliance`` with a ``>>>`` example is listed here, so a new example
runs in ``make test`` and CI like any test; the modules that need a device, a socket
or a loop (media, gpio, signaling) keep literal ``::`` examples instead."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"
MODULES = [
    "appliance.audiocheck",
    "appliance.auth",
    "appliance.cli",
    "appliance.clock",
    "appliance.config",
    "appliance.http.connections",
    "appliance.http.local",
    "appliance.logs",
    "appliance.metrics",
    "appliance.protocol",
    "appliance.quiet",
    "appliance.rooms",
    "appliance.scrape",
    "appliance.settings",
    "appliance.signaling",
    "appliance.static",
    "appliance.turn",
    "appliance.media.nack",
    "appliance.media.pattern",
    "appliance.media.pcm",
    "appliance.media.peer",
    "appliance.media.ratecontrol",
    "appliance.media.station",
    "appliance.media.video",
]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_a_module_run(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    report = capsys.readouterr().out
    assert result.attempted > 0, f"{name} has no examples any more: drop it from MODULES"
    assert result.failed == 0, report


def test_every_module_with_examples_is_listed() -> None:
    with_examples = {
        "appliance." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if ">>> " in path.read_text()
    }
    assert with_examples == set(MODULES)


def test_a_wrong_example_fails() -> None:
    """The runner above sees a wrong result (it is not a check that cannot fail)."""

    def wrong() -> None:
        """>>> 1 + 1
        3
        """

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(verbose=False)
    for test in finder.find(wrong, "wrong", globs={}):
        runner.run(test, out=lambda _: None)
    assert runner.summarize(verbose=False).failed == 1
