"""Which rung each viewer gets, and how fast the high rung runs.

The camera is encoded at most twice (``high``: camera size, ``camera.bitrate``;
``low``: ``camera.low_width`` x ``low_height`` at ``camera.low_bitrate``). Every viewer
has a :class:`ViewerLink` fed with the RTCP its browser sends (``peer.py`` routes
them here): REMB, the receiver's estimate of what its link carries, and receiver
reports (fraction lost; the sender's round-trip time). :class:`RungPolicy` moves the
viewer between rungs with hysteresis; :func:`high_bitrate` makes the high rung follow
the weakest viewer still on it, between ``camera.min_bitrate`` and ``camera.bitrate``::

    policy = RungPolicy.from_config(camera)
    link = ViewerLink()
    link.on_remb(250_000, now=10.0)     # a phone on a weak link
    policy.choose(link, now=10.0)       # -> "low" (and link.rung is "low")

Going down is quick: heavy loss, or an estimate falling below ``min_bitrate`` and
below what is sent while the link shows it too (loss, or round trips a queue longer
than the link's best), for ``down_hold`` seconds. A receiver's estimate alone is not
enough: Chromium's falls on any jitter of a busy phone, with nothing lost and no
queue. Going up needs ``up_hold`` seconds of a clean link: loss below ``up_loss`` and
the estimate a quarter above what the viewer receives (:attr:`ViewerLink.has_room`);
or, since a receiver estimator grows only slowly past what it is sent (Chromium's
adds a packet per round trip once it has backed off), no loss — also none asked for
again (NACK) — and no queue at all (a trial climb). A climb that the link does not
carry is undone within ``trial`` seconds, at the first loss or queue it causes, and
doubles the wait before the next one, so a viewer capped near a rung does not
oscillate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import CameraConfig

Rung = Literal["high", "low"]

LOSS_ALPHA = 0.5
"""Weight of the newest receiver report in the smoothed loss."""
REMB_ALPHA = 0.6
"""Weight of the newest REMB in the smoothed estimate."""
CONGESTED = 0.95
"""An estimate below this share of the sent rate means the link is full."""
FALLING = 0.9
"""An estimate below this share of its peak since the last switch is falling."""


ROOM_TO_CLIMB = 1.25
"""A viewer climbs on its estimate only while it is this share above what it receives."""


@dataclass(slots=True)
class ViewerLink:
    """What one viewer's feedback says about its link (updated from RTCP)."""

    rung: Rung = "high"
    """The rung this viewer should get (the encoder switches on the next keyframe)."""
    estimate: float | None = None
    """Smoothed REMB in bit/s; None until the first REMB."""
    loss: float = 0.0
    """Smoothed fraction of packets lost (0..1), from receiver reports."""
    rtt: float | None = None
    """Round-trip time in seconds (aiortc's sender computes it from the reports)."""
    rtt_floor: float | None = None
    """Shortest round trip seen: the link without a queue."""
    remb_count: int = 0
    """REMB messages received."""
    reports: int = 0
    """Receiver reports received."""
    switches: int = 0
    """Rung changes so far."""
    changed_at: float = 0.0
    """When the rung last changed (monotonic seconds)."""
    clean_since: float | None = None
    """Since when the link looks good enough to climb (None: it does not)."""
    lossy_since: float | None = None
    """Since when loss has been above ``down_loss`` (None: it has not)."""
    weak_since: float | None = None
    """Since when the estimate has been falling below ``min_bitrate`` (None: it has not)."""
    up_wait: float = 0.0
    """Current wait before a climb; doubles after a climb that failed."""
    trial_until: float = 0.0
    """Until when a climb is on trial: the first loss or queue undoes it."""
    paused_until: float = 0.0
    """No video for this viewer until then (monotonic seconds): after a move down, the
    queue the old rung filled at the link's bottleneck drains first (see
    :meth:`RungPolicy.drain`)."""
    failed_climbs: int = field(default=0)
    """Climbs that had to come straight back down."""
    peak: float = 0.0
    """Highest estimate since the last switch: a receiver estimator in its increase
    state only grows (bounded by what it receives), so only a fall below the peak
    says the link is full; right after a climb the estimate is low but growing."""
    sent_rate: float | None = None
    """Video bit/s handed to this viewer's sender (over the last second)."""
    nack_loss: float = 0.0
    """Smoothed share of packets the viewer asked for again (NACK), between receiver
    reports: the loss *before* retransmission. Chromium counts a packet a resend
    recovered as received, so its reports say ~0 on a link that loses 3 % of what it
    carries; only this says such a link is not quiet."""
    audio_loss: float | None = None
    """The share of the station's audio the viewer's latest report says was lost (None:
    no report yet, or no audio). No resends repair audio, and it runs at 50 packets a
    second: a surer sign of random loss than the low rung's few video packets."""
    nack_age: float | None = None
    """How old (seconds since sent) the newest packet first asked for was, in the latest
    NACK that asked for one."""
    _nack_at: float = 0.0
    _nacked: int = 0
    _highest: int | None = None
    _window_bytes: int = 0
    _window_start: float | None = None

    def on_sent(self, nbytes: int, *, now: float) -> None:
        """Count video bytes handed to the sender; the rate is updated once a second."""
        if self._window_start is None:
            self._window_start = now
        self._window_bytes += nbytes
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self.sent_rate = self._window_bytes * 8 / elapsed
            self._window_bytes, self._window_start = 0, now

    @property
    def congested(self) -> bool:
        """Does the receiver estimate less than what it is sent?

        A receiver-side estimator (REMB) that sees no congestion stays above the
        incoming rate and grows; under congestion it drops below it. An estimate below
        ``min_bitrate`` while little is sent (a still picture) is no sign of a weak link.
        """
        if self.estimate is None or self.estimate > FALLING * self.peak:
            return False
        return self.sent_rate is None or self.estimate < CONGESTED * self.sent_rate

    @property
    def has_room(self) -> bool:
        """Does the estimate grow past what this viewer receives (room to climb)?

        A receiver's estimator grows to at most ~1.5 x what it receives (aiortc:
        1.5 x throughput + 10 kbit/s; Chromium's is similar) and stays at or below it
        while the link is full. Only an estimate well above the received rate says the
        link carries more; climbing on less floods a capped link with the high rung.

        >>> link = ViewerLink(estimate=348_000, sent_rate=240_000)  # a 400 kbit/s cap
        >>> link.has_room
        False
        >>> link.estimate = 480_000  # the cap lifted: the estimate grows past the rate
        >>> link.has_room
        True
        """
        if self.estimate is None or self.sent_rate is None:
            return True
        return self.estimate >= ROOM_TO_CLIMB * (self.sent_rate + AUDIO_SHARE)

    def on_remb(self, bitrate: float, *, now: float) -> None:
        self.remb_count += 1
        if self.estimate is None:
            self.estimate = float(bitrate)
        else:
            self.estimate = REMB_ALPHA * bitrate + (1 - REMB_ALPHA) * self.estimate
        self.peak = max(self.peak, self.estimate)

    def on_audio_report(self, fraction_lost: int) -> None:
        """A receiver report for the station's audio (``fraction_lost`` as in RTCP)."""
        self.audio_loss = fraction_lost / 256

    def on_nack(self, first_asked: int, *, age: float | None = None, now: float = 0.0) -> None:
        """The viewer asked for ``first_asked`` packets it had not asked for before;
        ``age``: seconds since the newest of them was sent."""
        self._nacked += first_asked
        if age is not None:
            self.nack_age, self._nack_at = age, now

    def queued(self, *, now: float) -> float:
        """Seconds of queue on the way to this viewer, as last seen: round trips above
        the link's best, or how old a lost packet was when the viewer first asked for it
        (within the last second: NACKs come a round trip after a loss, receiver reports
        only once a second, so on a link that has just filled the report's round trip
        may predate the queue).

        >>> link = ViewerLink()
        >>> link.on_report(0, rtt=0.01, now=0)
        >>> link.on_nack(2, age=0.4, now=0.5)   # asked for 0.4 s after it was sent
        >>> link.queued(now=1.0), link.queued(now=2.0)
        (0.39, 0.0)
        """
        floor = self.rtt_floor or 0.0
        queue = 0.0 if self.rtt is None else self.rtt - floor
        if self.nack_age is not None and now - self._nack_at <= 1.0:
            queue = max(queue, self.nack_age - floor)
        return round(queue, 3)

    def on_report(
        self, fraction_lost: int, *, rtt: float | None, now: float, highest: int | None = None
    ) -> None:
        """``fraction_lost`` as in RTCP: lost / expected * 256 since the last report;
        ``highest``: the report's extended highest sequence number received.

        >>> link = ViewerLink()
        >>> link.on_report(0, rtt=0.03, now=0, highest=1000)
        >>> link.on_nack(3)                              # 3 of the next 100 packets lost
        >>> link.on_report(0, rtt=0.03, now=1, highest=1100)  # all resent in time
        >>> link.loss, link.nack_loss
        (0.0, 0.015)
        """
        self.reports += 1
        self.loss = LOSS_ALPHA * (fraction_lost / 256) + (1 - LOSS_ALPHA) * self.loss
        if rtt is not None:
            self.rtt = rtt
            self.rtt_floor = rtt if self.rtt_floor is None else min(self.rtt_floor, rtt)
        if highest is not None:
            expected = highest - self._highest if self._highest is not None else 0
            if expected > 0:
                share = min(1.0, self._nacked / expected)
                self.nack_loss = LOSS_ALPHA * share + (1 - LOSS_ALPHA) * self.nack_loss
                self._nacked = 0
            self._highest = highest

    def queueing(self, *, over: float) -> bool:
        """Are round trips ``over`` seconds longer than the link's best (a queue)?

        >>> link = ViewerLink()
        >>> link.on_report(0, rtt=0.04, now=0)
        >>> link.on_report(0, rtt=0.09, now=1)
        >>> link.queueing(over=0.15)
        False
        >>> link.on_report(0, rtt=0.25, now=2)   # a full buffer on a capped link
        >>> link.queueing(over=0.15)
        True
        """
        if self.rtt is None or self.rtt_floor is None:
            return False
        return self.rtt - self.rtt_floor > over


@dataclass(frozen=True, slots=True)
class RungPolicy:
    """Thresholds and timings for moving viewers between rungs."""

    min_bitrate: float
    """An estimate below this moves the viewer to the low rung."""
    low_bitrate: float
    """The low rung's bitrate."""
    up_hold: float = 5.0
    """Seconds of a clean link before climbing to the high rung."""
    up_loss: float = 0.02
    """A link losing more than this never climbs."""
    quiet_loss: float = 0.005
    """A link losing less than this, with no queue, may try a climb (a trial); counted
    before retransmission too (:attr:`ViewerLink.nack_loss`), and on the audio."""
    queue_delay: float = 0.15
    """Round trips this much longer than the link's best mean a queue is building."""
    trial: float = 4.0
    """Seconds after a climb during which the first loss or queue undoes it."""
    down_loss: float = 0.10
    """Loss above this for ``loss_hold`` seconds moves the viewer down."""
    down_hold: float = 1.5
    """How long heavy loss or a congested estimate must last before a move down (one
    late REMB from a busy receiver is no weak link)."""
    min_dwell: float = 2.0
    """Seconds after a switch before the next one (the keyframe needs to arrive)."""
    max_drain: float = 1.0
    """Longest pause of a viewer's video after a move down (see :meth:`drain`)."""
    max_up_wait: float = 120.0
    """Longest wait before a climb after failed climbs (a capped link that shows no
    loss tries one climb in this long at most: a second or two of a full link)."""

    @classmethod
    def from_config(cls, cfg: CameraConfig, **timings: float) -> RungPolicy:
        return cls(min_bitrate=cfg.min_bitrate, low_bitrate=cfg.low_bitrate, **timings)

    def choose(self, link: ViewerLink, *, now: float) -> Rung:
        """Update ``link.rung`` from its feedback and return it."""
        if link.loss > self.down_loss:
            link.lossy_since = now if link.lossy_since is None else link.lossy_since
        else:
            link.lossy_since = None
        queue = link.queueing(over=self.queue_delay)
        shows_it = link.loss > self.up_loss or queue
        if (
            link.estimate is not None
            and link.estimate < self.min_bitrate
            and link.congested
            and shows_it
        ):
            link.weak_since = now if link.weak_since is None else link.weak_since
        else:
            link.weak_since = None
        if link.rung == "high" and now < link.trial_until and shows_it:
            # a climb the link does not carry: straight back, before the picture freezes
            self._climb_failed(link)
            self._switch(link, "low", now)
            return link.rung
        if now - link.changed_at < self.min_dwell:
            return link.rung
        if link.rung == "high":
            weak = link.weak_since is not None and now - link.weak_since >= self.down_hold
            lossy = link.lossy_since is not None and now - link.lossy_since >= self.down_hold
            if weak or lossy:
                if link.switches and now - link.changed_at < max(self.up_hold, link.up_wait) * 2:
                    # came up recently and went straight back: wait longer next time
                    self._climb_failed(link)
                else:
                    link.up_wait = 0.0
                self._switch(link, "low", now)
            return link.rung
        room = (
            link.loss <= self.up_loss
            and not queue
            and not (
                link.estimate is not None
                and (link.estimate < self.low_bitrate or not link.has_room)
            )
        )
        quiet = max(link.loss, link.nack_loss) <= self.quiet_loss and not queue
        if not (room or quiet):
            link.clean_since = None
            return link.rung
        link.clean_since = now if link.clean_since is None else link.clean_since
        # a trial also needs the latest audio report quiet: it covers seconds of 50
        # packets each, so one such report vouches for the wait it arrives in
        trial_ok = (link.audio_loss or 0.0) <= self.quiet_loss
        if now - link.clean_since >= max(self.up_hold, link.up_wait) and (room or trial_ok):
            self._switch(link, "high", now)
            link.trial_until = now + self.trial
        return link.rung

    def drain(self, link: ViewerLink, *, now: float) -> float:
        """Seconds of no video for a viewer that has just moved down: twice the queue
        its feedback shows (:meth:`ViewerLink.queued`), at most ``max_drain``.

        The old rung has filled the bottleneck's queue (a capped link's buffer holds a
        third of a second or more). The new rung's keyframe sent into that queue is cut
        at its tail or waits behind it, and every packet lost meanwhile is repaired a
        whole queue later: the first seconds of the low rung stall again and again.
        Sending nothing for a moment empties the queue first; the picture is frozen
        then anyway, and the low rung starts on a link that repairs a loss in one real
        round trip. Twice: the viewer's other streams (its sound, the other phones'
        pictures) keep arriving while it drains.

        >>> policy = RungPolicy(min_bitrate=600_000, low_bitrate=300_000)
        >>> link = ViewerLink()
        >>> link.on_report(0, rtt=0.01, now=0)
        >>> link.on_report(0, rtt=0.36, now=1)    # a full 400 kbit/s buffer
        >>> policy.drain(link, now=1)
        0.7
        >>> link.on_report(0, rtt=0.02, now=2)    # lossy, but no queue
        >>> policy.drain(link, now=2)
        0.0
        """
        queue = link.queued(now=now)
        if queue <= self.queue_delay:
            return 0.0
        return round(min(self.max_drain, 2 * queue), 3)

    def _climb_failed(self, link: ViewerLink) -> None:
        """The next climb waits twice as long (at most ``max_up_wait``)."""
        link.failed_climbs += 1
        link.up_wait = min(max(link.up_wait, self.up_hold) * 2, self.max_up_wait)

    def _switch(self, link: ViewerLink, rung: Rung, now: float) -> None:
        """Move ``link`` to ``rung``; a move down pauses its video while the queue drains."""
        link.rung = rung
        link.changed_at = now
        link.peak = link.estimate or 0.0
        link.clean_since = None
        link.switches += 1
        if rung == "low":
            link.paused_until = now + self.drain(link, now=now)


HEADROOM = 0.95
"""Share of a viewer's estimate the video may fill (RTP headers, retransmissions).

Not much less: a receiver estimator that backs off sets its estimate a little under
what it receives, so a sender that keeps a wide margin under the estimate spirals
down with every back-off (estimate, then rate, then estimate)."""


def high_bitrate(links: list[ViewerLink], *, cfg: CameraConfig, headroom: float = HEADROOM) -> int:
    """The high rung's bitrate: what the weakest viewer on it carries, within bounds.

    ``headroom`` leaves room for headers and retransmissions; REMB covers the whole
    connection, so the audio's share (:data:`AUDIO_SHARE`) is taken off too.

    >>> from appliance.config import CameraConfig
    >>> cam = CameraConfig(bitrate=1_500_000, min_bitrate=600_000)
    >>> high_bitrate([ViewerLink(estimate=1_000_000), ViewerLink()], cfg=cam)
    886000
    >>> high_bitrate([ViewerLink(estimate=300_000)], cfg=cam)
    600000
    >>> high_bitrate([], cfg=cam)
    1500000
    """
    return _follow(links, "high", floor=cfg.min_bitrate, ceiling=cfg.bitrate, headroom=headroom)


def low_bitrate(links: list[ViewerLink], *, cfg: CameraConfig, headroom: float = HEADROOM) -> int:
    """The low rung's bitrate: ``camera.low_bitrate``, less when a viewer on it carries
    less (down to a third of it), so a weak link is not kept full.

    >>> from appliance.config import CameraConfig
    >>> cam = CameraConfig(low_bitrate=300_000)
    >>> low_bitrate([ViewerLink(rung="low", estimate=330_000)], cfg=cam)
    249500
    >>> low_bitrate([ViewerLink(rung="low", estimate=2_000_000)], cfg=cam)
    300000
    """
    floor = cfg.low_bitrate // 3
    return _follow(links, "low", floor=floor, ceiling=cfg.low_bitrate, headroom=headroom)


AUDIO_SHARE = 64_000
"""Opus at 48 kbit/s plus its packet headers, in bit/s."""


def _follow(
    links: list[ViewerLink], rung: Rung, *, floor: int, ceiling: int, headroom: float
) -> int:
    estimates = [link.estimate for link in links if link.rung == rung and link.estimate]
    if not estimates:
        return ceiling
    budget = min(estimates) * headroom - AUDIO_SHARE
    return int(max(floor, min(ceiling, budget)))
