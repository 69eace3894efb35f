"""Counters and gauges, rendered in the Prometheus text format at /api/metrics/."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Gauge = Callable[[], float]
Labels = tuple[tuple[str, str], ...]
LabelledGauge = Callable[[], dict[Labels, float]]


@dataclass(slots=True)
class Metrics:
    """Counters are bumped by handlers; gauges are read when scraped.

    Example::

        >>> metrics = Metrics()
        >>> metrics.inc("signaling_messages_total", type="join")
        >>> metrics.value("signaling_messages_total", type="join")
        1.0
        >>> metrics.gauge("peers", "Peers connected to signaling", lambda: 3.0)
        >>> "videostation_peers 3" in metrics.render().splitlines()
        True
    """

    started: float = field(default_factory=time.monotonic)
    _counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    _help: dict[str, str] = field(default_factory=dict)
    _gauges: dict[str, tuple[str, Gauge]] = field(default_factory=dict)
    _labelled: dict[str, tuple[str, LabelledGauge]] = field(default_factory=dict)

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
        lines: list[str] = []
        by_name: dict[str, list[tuple[tuple[tuple[str, str], ...], float]]] = {}
        for (name, labels), value in sorted(self._counters.items()):
            by_name.setdefault(name, []).append((labels, value))
        for name in sorted(set(by_name) | set(self._help) - set(self._gauges)):
            full = f"videostation_{name}"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} counter")
            for labels, value in by_name.get(name, [((), 0.0)]):
                lines.append(f"{full}{_labels(labels)} {value:g}")
        gauges: dict[str, tuple[str, Gauge]] = {
            "uptime_seconds": ("Seconds since the service started", lambda: self.uptime)
        }
        gauges.update(self._gauges)
        for name, (help_text, read) in sorted(gauges.items()):
            full = f"videostation_{name}"
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge", f"{full} {read():g}"]
        for name, (help_text, read_all) in sorted(self._labelled.items()):
            full = f"videostation_{name}"
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge"]
            for labels, value in sorted(read_all().items()):
                lines.append(f"{full}{_labels(labels)} {value:g}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + ",".join(escaped) + "}"
