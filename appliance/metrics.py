"""Counters and gauges at /api/metrics/, in the Prometheus text format written by
``prometheus_client`` (with its process, platform and garbage-collector collectors:
``process_resident_memory_bytes``, ``process_open_fds``, ``python_info``…).

Handlers bump counters and register gauges here, by name (``videostation_`` is added);
gauges are read when scraped. Example::

    >>> metrics = Metrics()
    >>> metrics.inc("signaling_messages_total", type="join")
    >>> metrics.value("signaling_messages_total", type="join")
    1.0
    >>> metrics.gauge("peers", "Peers connected to signaling", lambda: 3.0)
    >>> "videostation_peers 3.0" in metrics.render().splitlines()
    True
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from . import __version__

Gauge = Callable[[], float]
Labels = tuple[tuple[str, str], ...]
LabelledGauge = Callable[[], dict[Labels, float]]
PREFIX = "videostation_"


class Metrics:
    """Counters are bumped by handlers; gauges are read when scraped. A labelled gauge
    has one sample per label set (``{}``: none, the series is absent — e.g. a Pi's
    temperature on other machines)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._counters: dict[tuple[str, Labels], float] = {}
        self._help: dict[str, str] = {}
        self._gauges: dict[str, tuple[str, Gauge]] = {
            "uptime_seconds": ("Seconds since the service started", lambda: self.uptime)
        }
        self._labelled: dict[str, tuple[str, LabelledGauge]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self.registry.register(_Collector(self))

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self._counters[key] = self._counters.get(key, 0.0) + amount

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def gauge(self, name: str, help_text: str, read: Gauge) -> None:
        self._gauges[name] = (help_text, read)

    def labelled_gauge(self, name: str, help_text: str, read: LabelledGauge) -> None:
        """A gauge with one sample per label set, e.g. one per viewer::

        metrics.labelled_gauge("viewer_loss", "Loss", lambda: {(("peer", "gA1"),): 0.03})
        """
        self._labelled[name] = (help_text, read)

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    def render(self) -> str:
        return generate_latest(self.registry).decode()

    def families(self) -> Iterator[Metric]:
        """This service's own metric families, as scraped now."""
        by_name: dict[str, list[tuple[Labels, float]]] = {}
        for (name, labels), value in sorted(self._counters.items()):
            by_name.setdefault(name, []).append((labels, value))
        for name in sorted(set(by_name) | set(self._help)):
            counter = CounterMetricFamily(PREFIX + name, self._help.get(name, name))
            for labels, value in by_name.get(name, [((), 0.0)]):
                counter.samples.append(Sample(counter.name + "_total", dict(labels), value))
            yield counter
        for name, (help_text, read) in sorted(self._gauges.items()):
            yield GaugeMetricFamily(PREFIX + name, help_text, value=read())
        for name, (help_text, read_all) in sorted(self._labelled.items()):
            samples = read_all()
            if not samples:  # absent (e.g. a Pi's temperature elsewhere), not zero
                continue
            gauge = GaugeMetricFamily(PREFIX + name, help_text)
            for labels, value in sorted(samples.items()):
                gauge.samples.append(Sample(gauge.name, dict(labels), value))
            yield gauge


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()


def one_hot(label: str, states: tuple[str, ...], read: Callable[[], str]) -> LabelledGauge:
    """A state as one sample per possible value, 1 on the current one (the Prometheus
    way to expose an enum)::

        >>> one_hot("state", ("idle", "ringing"), lambda: "ringing")()
        {(('state', 'idle'),): 0.0, (('state', 'ringing'),): 1.0}
    """

    def values() -> dict[Labels, float]:
        now = read()
        return {((label, state),): float(state == now) for state in states}

    return values


DEVICE_STATES = ("device", "stand_in", "none", "unknown")
CALL_STATES = ("idle", "ringing", "in-call")


def build_info() -> Labels:
    """The ``build_info`` gauge's labels: this version, Python, aiortc, the kernel."""
    try:
        aiortc = importlib.metadata.version("aiortc")
    except importlib.metadata.PackageNotFoundError:
        aiortc = "none"
    return (
        ("aiortc", aiortc),
        ("kernel", platform.release()),
        ("python", platform.python_version()),
        ("version", __version__),
    )


def pi_gauges() -> list[tuple[str, str, LabelledGauge]]:
    """A Raspberry Pi's throttling flags and temperature, from ``vcgencmd`` where it
    exists (none elsewhere: absent, not zero)."""
    if shutil.which("vcgencmd") is None:
        return []

    def read(command: str, pattern: str, base: int) -> LabelledGauge:
        def value() -> dict[Labels, float]:
            try:
                out = subprocess.run(
                    ["vcgencmd", command], capture_output=True, text=True, timeout=2, check=True
                ).stdout
            except (OSError, subprocess.SubprocessError):
                return {}
            found = re.search(pattern, out)
            if found is None:
                return {}
            number = int(found[1], base) if base != 10 else float(found[1])
            return {(): float(number)}

        return value

    return [
        (
            "pi_throttled",
            "vcgencmd get_throttled: under-voltage, frequency capping and throttling bits "
            "(now: 0x1-0x8; since boot: 0x10000-0x80000)",
            read("get_throttled", r"throttled=0x([0-9a-fA-F]+)", 16),
        ),
        (
            "pi_temperature_celsius",
            "The SoC's temperature (vcgencmd measure_temp)",
            read("measure_temp", r"temp=([0-9.]+)", 10),
        ),
    ]
