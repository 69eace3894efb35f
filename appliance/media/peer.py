"""The station peer: sends the station's camera and microphone to each viewer.

One ``RTCPeerConnection`` per viewer (each remote participant, and the kiosk screen
for its local preview). The station only sends, and is always the offerer (the
impolite side of perfect negotiation). It is transport-agnostic: ``send(peer_id,
offer, session)`` carries its offer to the browser, and the browser's ``signal``
payloads (typed by :mod:`appliance.protocol`) come back through
:meth:`StationPeers.handle_signal`::

    peers = StationPeers(media, ice_servers=[], send=offer_to_browser)
    peers.on_lost(lambda peer_id: station.media_changed())   # ICE failed, say
    await peers.open("gA1", audio=True)    # send("gA1", Description("offer", ...), 1)
    await peers.handle_signal("gA1", Description("answer", sdp))
    await peers.close_all()                # hang-up: camera closes after the linger

aiortc does not trickle: the offer carries the station's gathered candidates. The
browser's candidates go to ``addIceCandidate`` (buffered until its answer is set).

aiortc, PyAV and numpy (the media stack, ~45 MB) are imported only when a call needs
them: :meth:`StationPeers.prepare` starts loading them in a worker thread as soon as
a call is in sight (a guest traded a link for the station's room, a ring), and
:meth:`StationPeers.open` waits for that load, so the idle service stays small and the
event loop (the systemd watchdog, the signaling) never stalls on the import.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

from ..errors import MalformedMessage, UnknownPeer
from ..logs import IdsAdapter, with_ids
from ..protocol import Candidate, Description, EndOfCandidates, Restart, SignalPayload
from .ice import path_of
from .nack import seconds_since
from .station import StationMedia

if TYPE_CHECKING:
    from aiortc import RTCIceCandidate, RTCPeerConnection

    from .audio import AudioFanoutTrack
    from .video import EncodedVideoTrack, RawVideoTrack

log = logging.getLogger(__name__)

IceServer = dict[str, Any]
"""An RTCIceServer dictionary (``urls``, and ``username``/``credential`` for TURN), as
:func:`appliance.turn.ice_servers` makes them."""

IceServers = Callable[[], list[IceServer]]
"""Makes the ICE servers for one new connection: TURN credentials are minted then (they
expire; a station runs for months)."""

MEDIA_STACK = ("aiortc", "appliance.media.video", "appliance.media.audio")
"""What a call imports: aiortc, and through the fan-outs PyAV and numpy."""


def load_media_stack() -> None:
    """Import :data:`MEDIA_STACK` (about half a second on a small machine) and make
    its ICE keep the best path it finds (``ice.py``)."""
    for name in MEDIA_STACK:
        importlib.import_module(name)
    from .ice import keep_the_best_nominated_pair, wait_for_peer_reflexive

    keep_the_best_nominated_pair()
    wait_for_peer_reflexive()


Send = Callable[[str, Description, int], Awaitable[None]]
"""Carries the station's offer (and its session number) to the browser ``peer_id``."""
OnClosed = Callable[[str], Awaitable[None] | None]

MAX_PENDING_CANDIDATES = 64
REOFFER_DELAYS = (1.0, 2.0, 4.0)
"""Seconds before each new offer the station makes when a connection to a viewer failed
by itself (ICE found no working pair), one per failure in a row; after the last the
station waits for the browser's own restart request. A call is never left with a
viewer who gets nothing and no retry (issue #27)."""
"""Candidates a browser may send before its answer (a real browser sends a handful)."""

# Constrained baseline first (what every browser decodes in hardware), then
# baseline, then VP8 for the rare peer without H.264.
VIDEO_PREFERENCE = (("video/H264", "42e01f"), ("video/H264", "42001f"), ("video/VP8", None))


async def close_connection(pc: Any) -> None:
    """Close an aiortc peer connection whole, even when the caller is cancelled.

    aiortc closes a connection itself when the far side ends it; a second ``close()``
    waits on that close's own future, so cancelling the waiter (a hang-up cut short)
    cancelled the future and aiortc's close then failed half done
    (``InvalidStateError`` at its end). Shielded, the waiter goes and the close stays.
    """
    await asyncio.shield(pc.close())


def video_codec_preferences() -> list[Any]:
    """aiortc codec capabilities in the station's order of preference, RTX included."""
    from aiortc import RTCRtpSender

    available = RTCRtpSender.getCapabilities("video").codecs
    chosen = []
    for mime, profile in VIDEO_PREFERENCE:
        for codec in available:
            if codec.mimeType == mime and (
                profile is None or codec.parameters.get("profile-level-id") == profile
            ):
                chosen.append(codec)
    chosen += [c for c in available if c.mimeType == "video/rtx"]
    return chosen


def negotiated_codec(transceiver: Any) -> str:
    """``"H264"`` or ``"VP8"``: the codec the transceiver's sender uses (after the answer)."""
    # aiortc keeps the negotiated list, preferred first, in the transceiver; the
    # sender sends with codecs[0]. (Private RTCRtpTransceiver._codecs: checked by
    # tests/test_seams.py.)
    codecs = getattr(transceiver, "_codecs", [])
    if not codecs:
        raise MalformedMessage("the answer has no video codec in common")
    return str(codecs[0].mimeType.split("/", 1)[1]).upper()


OPUS_BITRATE = 48_000  # aiortc's 96 kbit/s is a quarter of a weak 4G uplink
OPUS_EXPECTED_LOSS = "10"  # percent: libopus spends bits on in-band FEC for this much loss


def fec_opus_encoder() -> Any:
    """aiortc's Opus encoder with in-band FEC (the receiver rebuilds a lost 20 ms
    packet from the next one) and a bitrate a weak link can carry."""
    from aiortc.codecs.opus import OpusEncoder

    # aiortc's private OpusEncoder and its unopened ``codec``: checked by tests/test_seams.py
    encoder = OpusEncoder()
    encoder.codec.bit_rate = OPUS_BITRATE
    encoder.codec.options = {
        "application": "voip",
        "fec": "1",
        "packet_loss": OPUS_EXPECTED_LOSS,
    }
    return encoder


def use_fec_opus(transceiver: Any) -> bool:
    """Give an audio sender that negotiated Opus the FEC encoder (before it sends)."""
    codecs = getattr(transceiver, "_codecs", [])
    sender = transceiver.sender
    if not codecs or codecs[0].mimeType.lower() != "audio/opus":
        return False
    # aiortc creates its encoder lazily on the first frame; set ours before that
    # (private RTCRtpTransceiver._codecs and RTCRtpSender.__encoder: tests/test_seams.py)
    if getattr(sender, "_RTCRtpSender__encoder", None) is not None:
        return False
    sender._RTCRtpSender__encoder = fec_opus_encoder()
    return True


@dataclass(slots=True)
class _Peer:
    peer_id: str
    pc: RTCPeerConnection
    session: int
    audio: bool
    video: bool
    log: IdsAdapter
    """Logs with this viewer's ``peer_id`` (and the station's ``room_id``) as fields."""
    video_track: EncodedVideoTrack | RawVideoTrack | None = None
    audio_track: AudioFanoutTrack | None = None
    answered: bool = False
    pending: list[Candidate | EndOfCandidates] = field(default_factory=list)
    codec: str | None = None
    ice_servers: list[IceServer] = field(default_factory=list)
    """The servers this connection was made with (for saying why it failed)."""
    resolving: set[asyncio.Task[None]] = field(default_factory=set)
    """mDNS candidates being looked up (up to a second each), off the signal path."""


def relay_gathered(pc: RTCPeerConnection) -> bool:
    """Did this connection get a relay address from a TURN server?"""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None and any(
            c.type == "relay" for c in dtls.transport.iceGatherer.getLocalCandidates()
        ):
            return True
    return False


def one_network(a: str, b: str) -> bool:
    """The same address, or private IPv4 addresses in one /24 (a home network).

    >>> one_network("192.168.1.20", "192.168.1.7"), one_network("93.184.216.4", "93.184.216.9")
    (True, False)
    """
    if a == b:
        return True
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False  # an mDNS name tells nothing
    if x.version != 4 or y.version != 4 or not x.is_private:
        return False
    return ipaddress.ip_network(f"{a}/24", strict=False) == ipaddress.ip_network(
        f"{b}/24", strict=False
    )


@dataclass(frozen=True)
class IceSeen:
    """What a failed connection's ICE had (the page's IceEvidence, web/js/protocol.js)."""

    remote: bool
    """The browser named an address of its own (or one was learned from its checks)."""
    one_network: bool
    """A host address of each end is the same, or in one private /24."""


def ice_seen(pc: RTCPeerConnection) -> IceSeen:
    """The candidates of ``pc``'s ICE transports, as :class:`IceSeen`."""
    local: list[str] = []
    remote: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        local += [c.ip for c in dtls.transport.iceGatherer.getLocalCandidates() if c.type == "host"]
        remote += dtls.transport.getRemoteCandidates()
    hosts = [c.ip for c in remote if c.type == "host"]
    return IceSeen(bool(remote), any(one_network(a, b) for a in local for b in hosts))


def why_unreachable(
    ice_servers: list[IceServer], relayed: bool, seen: IceSeen | None = None
) -> str:
    """The operator's words for a connection that failed (the pages say the same in
    theirs: web/js/ui/unreachable.js). A missing TURN server is blamed only when the
    candidates leave it possible: not when the browser named no address at all (its
    answer went astray: nothing to connect to), nor when both ends are on one network
    (issue 27: a guest on the station's own machine was told to set one up).

    >>> why_unreachable([], relayed=False).split(":")[0]
    'no TURN server is configured (ice.turn_urls)'
    >>> why_unreachable([], relayed=False, seen=IceSeen(True, True)).split(":")[0]
    'no path although both ends are on one network (a TURN server would not help)'
    >>> turn = {"urls": ["turn:turn.example.net:3478"], "username": "u", "credential": "p"}
    >>> why_unreachable([turn], relayed=False).split(":")[0]
    'the TURN server gave no relay address'
    """
    urls = [
        url
        for server in ice_servers
        for url in ([server["urls"]] if isinstance(server["urls"], str) else server["urls"])
    ]
    if not any(url.startswith(("turn:", "turns:")) for url in urls):
        if seen is not None and not seen.remote:
            return (
                "the browser named no address of its own and none of its checks arrived "
                "(its answer lost its candidates?): not a missing TURN server"
            )
        if seen is not None and seen.one_network:
            return (
                "no path although both ends are on one network (a TURN server would not "
                "help): a firewall between them, or the browser's checks did not arrive"
            )
        return (
            "no TURN server is configured (ice.turn_urls): callers behind a symmetric "
            "NAT (most mobile networks) cannot reach the station without one"
        )
    if not relayed:
        return (
            "the TURN server gave no relay address: it does not answer or refused the "
            "credentials (check ice.turn_urls and ice.turn_secret against the TURN "
            "server's static-auth-secret)"
        )
    return "no path even through the TURN server (the caller's network blocks it)"


class StationPeers:
    """Every station peer connection of the current call, keyed by the viewer's peer id."""

    def __init__(
        self,
        media: StationMedia,
        *,
        ice_servers: IceServers | list[IceServer],
        send: Send,
        on_closed: OnClosed | None = None,
        room_id: str = "",
    ) -> None:
        self._media = media
        self._log = with_ids(log, room_id=room_id)
        """Every line carries ``room_id`` (the station's room), a peer's also ``peer_id``."""
        self._ice_servers: IceServers = (
            ice_servers if callable(ice_servers) else lambda: list(ice_servers)
        )
        """Called for every new connection (a plain list: the same every time)."""
        self._send = send
        self._lost_subscribers: list[OnClosed] = [on_closed] if on_closed is not None else []
        self._connected_subscribers: list[Callable[[str], None]] = []
        self._peers: dict[str, _Peer] = {}
        self._sessions = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self._epoch = 0
        """Bumped by :meth:`close_all`: an :meth:`open` that began before it gives up."""
        self._unreachable: set[str] = set()
        """Viewers whose connection was logged as failing, until one of theirs connects."""
        self._failures: dict[str, int] = {}
        """Failed connections in a row per viewer, until one of theirs connects."""
        self._reoffers: dict[str, asyncio.Task[None]] = {}
        """The new offer waiting for its delay, per viewer (:data:`REOFFER_DELAYS`)."""
        self._loading: asyncio.Future[None] | None = None

    def ice_servers(self) -> list[IceServer]:
        """The ICE servers a connection opened now gets (TURN credentials minted now)."""
        return self._ice_servers()

    def prepare(self) -> None:
        """A call is in sight: start importing the media stack in a worker thread
        (idempotent; once loaded it stays)."""
        self._media_stack()

    def _media_stack(self) -> asyncio.Future[None]:
        """Done once the media stack is imported (the import starts here if need be)."""
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(None, load_media_stack)
        return self._loading

    def on_lost(self, subscriber: OnClosed) -> None:
        """Call ``subscriber(peer_id)`` whenever a connection ends by itself (ICE
        failed, the browser went away); not for the ones :meth:`close` ends."""
        self._lost_subscribers.append(subscriber)

    def on_connected(self, subscriber: Callable[[str], None]) -> None:
        """Call ``subscriber(peer_id)`` whenever a connection to a caller (one sent the
        microphone) connects: :attr:`live` may have turned true."""
        self._connected_subscribers.append(subscriber)

    @property
    def live(self) -> bool:
        """True while the station's camera and microphone reach someone: a connection
        that carries the microphone (a caller's; not the kiosk's own preview) is
        connected. Not while it is still being made, nor after it failed: the kiosk's
        LIVE and the live LED say what goes out, not what was meant to (issue #27)."""
        return any(p.audio and p.pc.connectionState == "connected" for p in self._peers.values())

    @property
    def unreached(self) -> frozenset[str]:
        """The viewers whose connection failed and none of whose has connected since
        (the new offers of :data:`REOFFER_DELAYS` may be under way): nothing of the
        station reaches them. The kiosk names them, their pages say so (issue #27)."""
        return frozenset(self._unreachable)

    def set_muted(self, *, audio: bool, video: bool) -> None:
        """Silence the microphone / black the camera for every viewer (the kiosk's
        controls); opens nothing."""
        self._media.set_muted(audio=audio, video=video)

    def take_level(self) -> float | None:
        """The level (dBFS) of the sound sent since the last call, None if none was."""
        return self._media.take_level()

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    async def open(self, peer_id: str, *, audio: bool, video: bool = True) -> None:
        """Connect to ``peer_id``: build a send-only connection and send it an offer.

        The screen gets ``audio=False`` (its preview needs no sound). If
        :meth:`close_all` runs meanwhile (the call ended), nothing stays open."""
        epoch = self._epoch
        await asyncio.shield(self._media_stack())
        if peer_id in self._peers:
            await self.close(peer_id)
        if epoch != self._epoch:
            with_ids(self._log, peer_id=peer_id).info("not opened, the call ended")
            return
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self._sessions += 1
        ice_servers = self.ice_servers()
        servers = [RTCIceServer(**server) for server in ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers or None))
        peer_log = with_ids(self._log, peer_id=peer_id)
        peer = _Peer(peer_id, pc, self._sessions, audio, video, peer_log, ice_servers=ice_servers)
        self._peers[peer_id] = peer  # registered before the first await
        pc.on("connectionstatechange", lambda: self._state_changed(peer))
        try:
            if video:
                track = peer.video_track = self._media.video_track()
                transceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(video_codec_preferences())
                if shared(track):  # per-peer: aiortc answers PLI and REMB itself
                    self._hook_keyframe_requests(transceiver.sender, track)
                    self._hook_feedback(transceiver.sender, track)
            if audio:
                peer.audio_track = self._media.audio_track()
                sent = pc.addTransceiver(peer.audio_track, direction="sendonly")
                if shared(peer.video_track):
                    self._hook_audio_reports(sent.sender, peer.video_track)
            await pc.setLocalDescription(await pc.createOffer())
            if epoch != self._epoch or self._peers.get(peer_id) is not peer:
                peer.log.info("offer dropped, the call ended")
                await self._discard(peer)
                return
            offer = pc.localDescription
            peer.log.info("offer, session %d", peer.session)
            await self._send(peer_id, Description("offer", offer.sdp), peer.session)
        except BaseException:
            if self._peers.get(peer_id) is peer:
                await self._discard(peer)
            raise

    @staticmethod
    def _hook_keyframe_requests(sender: Any, track: EncodedVideoTrack) -> None:
        """Route this peer's PLI/FIR to the shared encoder.

        aiortc answers a PLI/FIR by calling ``sender._send_keyframe()``, which only
        flags the sender's own encoder, unused for pre-encoded packets.
        """
        original = sender._send_keyframe  # private: checked by tests/test_seams.py

        def send_keyframe() -> None:
            original()
            track.request_keyframe()

        sender._send_keyframe = send_keyframe

    @staticmethod
    def _hook_feedback(sender: Any, track: EncodedVideoTrack) -> None:
        """Feed this viewer's REMB and receiver reports to its link estimate, and
        resend only the lost packets that still help (``nack.py``).

        aiortc hands REMB only to its own encoder (unused for pre-encoded packets)
        and keeps receiver reports in its stats; the shared encoder needs both. It
        resends every packet a NACK names; the viewer's :class:`Retransmissions`
        strikes those resent a round trip ago, too old, or of a rung it left.
        """
        from aiortc.rtp import (
            RTCP_PSFB_APP,
            RTCP_RTPFB_NACK,
            RtcpPsfbPacket,
            RtcpRtpfbPacket,
            unpack_remb_fci,
        )

        # private RTCRtpSender._handle_rtcp_packet, _ssrc, __rtt and the aiortc.rtp
        # packets: checked by tests/test_seams.py
        original = sender._handle_rtcp_packet
        ssrc = sender._ssrc
        history = _rtp_history(sender)

        async def handle_rtcp_packet(packet: Any) -> None:
            now = time.monotonic()
            if (
                isinstance(packet, RtcpRtpfbPacket)
                and packet.fmt == RTCP_RTPFB_NACK
                and history is not None
            ):
                sent_ago = history.sent_ago()
                # how old the newest packet first asked for is: the queue on the way (a
                # packet asked for again says only how long it has been missing)
                new = track.retransmissions.first_asked(packet.lost, now=now)
                ages = [age for age in map(sent_ago, new) if age is not None]
                track.link.on_nack(len(new), age=min(ages, default=None), now=now)
                lost = track.retransmissions.choose(
                    packet.lost, sent_ago=sent_ago, rtt=track.link.rtt, now=now,
                    rung_since=track.rung_since,
                )  # fmt: skip
                packet = dataclasses.replace(packet, lost=lost)
            await original(packet)
            for report in reports_on(packet, ssrc):
                rtt = getattr(sender, "_RTCRtpSender__rtt", None)
                track.link.on_report(
                    report.fraction_lost, rtt=rtt, now=now, highest=report.highest_sequence
                )
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if ssrc in ssrcs:
                    track.link.on_remb(bitrate, now=now)

        sender._handle_rtcp_packet = handle_rtcp_packet

    @staticmethod
    def _hook_audio_reports(sender: Any, track: EncodedVideoTrack) -> None:
        """Feed the loss the viewer reports for the station's *audio* to its video link.

        Audio has no resends, so its reports count every packet the path lost, and at
        50 packets a second they say 3 % from 0 % within one report; the low rung's
        ~12 video packets a second, their losses mostly repaired, often cannot.
        """
        # private RTCRtpSender._handle_rtcp_packet and _ssrc: checked by tests/test_seams.py
        original = sender._handle_rtcp_packet
        ssrc = sender._ssrc

        async def handle_rtcp_packet(packet: Any) -> None:
            await original(packet)
            for report in reports_on(packet, ssrc):
                track.link.on_audio_report(report.fraction_lost)

        sender._handle_rtcp_packet = handle_rtcp_packet

    def _state_changed(self, peer: _Peer) -> None:
        state = peer.pc.connectionState
        peer.log.info("connection %s", state)
        if state == "connected":
            self._unreachable.discard(peer.peer_id)
            self._failures.pop(peer.peer_id, None)
            if peer.audio and self._peers.get(peer.peer_id) is peer:
                for subscriber in list(self._connected_subscribers):
                    subscriber(peer.peer_id)
        elif state == "failed":
            self._log_unreachable(peer)
        if state in ("failed", "closed") and self._peers.get(peer.peer_id) is peer:
            task = asyncio.ensure_future(self._lost(peer, failed=state == "failed"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _log_unreachable(self, peer: _Peer) -> None:
        """Why this viewer cannot be reached, once until it connects (browsers restart
        ICE every few seconds: the log says it once, not at every attempt)."""
        if peer.peer_id in self._unreachable:
            return
        self._unreachable.add(peer.peer_id)
        peer.log.warning(
            "could not connect: %s",
            why_unreachable(peer.ice_servers, relay_gathered(peer.pc), ice_seen(peer.pc)),
        )

    async def _lost(self, peer: _Peer, *, failed: bool = False) -> None:
        if self._peers.get(peer.peer_id) is not peer:
            return
        if failed:  # before the first await: a close() from now on cancels it
            self._reoffer_later(peer)
        await self._discard(peer)
        for subscriber in list(self._lost_subscribers):
            result = subscriber(peer.peer_id)
            if result is not None:
                await result

    def _reoffer_later(self, peer: _Peer) -> None:
        """A new offer to a viewer whose connection failed, after the next of
        :data:`REOFFER_DELAYS`: unless the call ends, the viewer is closed, or a new
        connection (the browser's restart request) is opened meanwhile."""
        failures = self._failures.get(peer.peer_id, 0)
        if failures >= len(REOFFER_DELAYS):
            peer.log.warning("connection failed %d times in a row: no new offer", failures)
            return
        self._failures[peer.peer_id] = failures + 1
        delay, epoch = REOFFER_DELAYS[failures], self._epoch

        async def reoffer() -> None:
            await asyncio.sleep(delay)
            if epoch != self._epoch or peer.peer_id in self._peers:
                return  # the call ended, or a connection was opened meanwhile
            peer.log.info("a new offer %.0f s after the connection failed", delay)
            await self.open(peer.peer_id, audio=peer.audio, video=peer.video)

        self._cancel_reoffer(peer.peer_id)
        task = self._reoffers[peer.peer_id] = asyncio.ensure_future(reoffer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._reoffer_done(peer.peer_id, done))

    def _reoffer_done(self, peer_id: str, task: asyncio.Task[None]) -> None:
        if self._reoffers.get(peer_id) is task:
            del self._reoffers[peer_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            with_ids(self._log, peer_id=peer_id).warning("the new offer failed: %s", exc)

    def _cancel_reoffer(self, peer_id: str) -> None:
        task = self._reoffers.pop(peer_id, None)
        if task is not None:
            task.cancel()

    async def handle_signal(self, peer_id: str, payload: SignalPayload) -> None:
        """A ``signal`` from the browser: its answer, a candidate (or end-of-candidates),
        or a restart request (:func:`appliance.protocol.parse` checked the fields)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            raise UnknownPeer(f"no station connection to peer {peer_id!r}")
        match payload:
            case Restart():
                peer.log.info("restart requested")
                if peer.pc.connectionState != "connected":
                    self._log_unreachable(peer)  # the browser gave up before aiortc did
                await self.open(peer_id, audio=peer.audio, video=peer.video)
            case Description():
                await self._answer(peer, payload)
            case Candidate() | EndOfCandidates():
                if peer.answered:
                    await self._add_candidate(peer, payload)
                elif len(peer.pending) >= MAX_PENDING_CANDIDATES:
                    raise MalformedMessage(
                        f"at most {MAX_PENDING_CANDIDATES} candidates before the answer"
                    )
                else:
                    peer.pending.append(payload)

    async def _answer(self, peer: _Peer, description: Description) -> None:
        if description.type != "answer":
            raise MalformedMessage(f"the station only takes answers, got {description.type!r}")
        if peer.pc.signalingState != "have-local-offer":
            raise MalformedMessage(f"unexpected answer in state {peer.pc.signalingState}")
        from aiortc import RTCSessionDescription

        try:
            await peer.pc.setRemoteDescription(
                RTCSessionDescription(sdp=description.sdp, type="answer")
            )
        except Exception as exc:  # aiortc raises ValueError, OperationError...
            raise MalformedMessage(f"cannot use the answer: {exc}") from exc
        peer.answered = True
        for transceiver in peer.pc.getTransceivers():
            if transceiver.kind == "video" and peer.video_track is not None:
                peer.codec = negotiated_codec(transceiver)
                if shared(peer.video_track):
                    peer.video_track.set_codec(peer.codec)
            elif transceiver.kind == "audio":
                use_fec_opus(transceiver)
        peer.log.info("answered, video codec %s", peer.codec)
        pending, peer.pending = peer.pending, []
        for candidate in pending:
            await self._add_candidate(peer, candidate)

    async def _add_candidate(self, peer: _Peer, init: Candidate | EndOfCandidates) -> None:
        if isinstance(init, EndOfCandidates) or not init.candidate:
            return  # end-of-candidates: aiortc needs nothing
        if init.sdp_mid is None and init.sdp_mline_index is None:
            raise MalformedMessage("candidate needs sdpMid or sdpMLineIndex")
        from aiortc.sdp import candidate_from_sdp  # not exported: tests/test_seams.py

        try:
            candidate = candidate_from_sdp(init.candidate.removeprefix("candidate:"))
        except (AssertionError, ValueError, IndexError) as exc:
            raise MalformedMessage(f"cannot parse candidate {init.candidate!r}") from exc
        candidate.sdpMid = init.sdp_mid
        candidate.sdpMLineIndex = init.sdp_mline_index
        if candidate.ip.endswith(".local"):
            # an mDNS name: looked up in the background (aioice waits up to 1 s for an
            # answer), so the peer's next messages, a hang-up too, are not held up
            task = asyncio.create_task(self._add_named(peer, candidate))
            peer.resolving.add(task)
            task.add_done_callback(peer.resolving.discard)
            return
        try:
            await peer.pc.addIceCandidate(candidate)
        except ValueError as exc:
            raise MalformedMessage(f"candidate refused: {exc}") from exc

    @staticmethod
    async def _add_named(peer: _Peer, candidate: RTCIceCandidate) -> None:
        try:
            await peer.pc.addIceCandidate(candidate)
        except Exception as exc:  # nobody to answer an error to any more: say it here
            peer.log.info("mDNS candidate %s not used: %s", candidate.ip, exc)

    async def close(self, peer_id: str) -> None:
        """End the connection to ``peer_id`` (nothing happens for an unknown id), and
        any new offer it was to get."""
        if asyncio.current_task() is not self._reoffers.get(peer_id):
            self._cancel_reoffer(peer_id)
            self._failures.pop(peer_id, None)
            self._unreachable.discard(peer_id)
        peer = self._peers.get(peer_id)
        if peer is not None:
            await self._discard(peer)

    async def _discard(self, peer: _Peer) -> None:
        if self._peers.get(peer.peer_id) is peer:
            del self._peers[peer.peer_id]
        for task in list(peer.resolving):
            task.cancel()
        for track in (peer.video_track, peer.audio_track):
            if track is not None:
                track.stop()
        await close_connection(peer.pc)
        peer.log.info("closed, session %d", peer.session)

    async def close_all(self) -> None:
        """Hang-up: close every connection at once; an :meth:`open` still under way
        closes its own connection instead of registering it."""
        self._epoch += 1
        for peer_id in list(self._reoffers):
            self._cancel_reoffer(peer_id)
        self._failures.clear()
        self._unreachable.clear()
        await asyncio.gather(*(self._discard(p) for p in list(self._peers.values())))

    def stats(self) -> dict[str, Any]:
        """Per peer: session, connection state, video codec, packets handed to the
        sender and dropped (slow peer), audio frames, the path (``direct``/``relay``);
        plus the media counters."""
        return {
            "peers": {
                peer_id: {
                    "session": peer.session,
                    "state": peer.pc.connectionState,
                    "codec": peer.codec,
                    "video_packets": peer.video_track.sent if peer.video_track else 0,
                    "video_dropped": peer.video_track.dropped if peer.video_track else 0,
                    "audio_frames": peer.audio_track.sent if peer.audio_track else 0,
                    "path": path_of(peer.pc),
                    **(link_stats(peer.video_track) if shared(peer.video_track) else {}),
                }
                for peer_id, peer in self._peers.items()
            },
            "media": self._media.counters(),
        }


def shared(track: EncodedVideoTrack | RawVideoTrack | None) -> TypeGuard[EncodedVideoTrack]:
    """Is ``track`` a viewer of the shared encoder (not per-peer encoding)?"""
    from .video import EncodedVideoTrack  # loaded with the media stack, as any track

    return isinstance(track, EncodedVideoTrack)


def reports_on(packet: Any, ssrc: int) -> list[Any]:
    """The report blocks of an RTCP receiver or sender report about stream ``ssrc``."""
    from aiortc.rtp import RtcpRrPacket, RtcpSrPacket  # not exported: tests/test_seams.py

    if not isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
        return []
    return [report for report in packet.reports if report.ssrc == ssrc]


@dataclass(frozen=True, slots=True)
class _RtpHistory:
    """The copies of sent packets aiortc keeps for resending, by sequence number."""

    packets: dict[int, Any]

    def sent_ago(self) -> Callable[[int], float | None]:
        """How long ago, as of now, each packet was sent (from its abs-send-time
        stamp; None for one no longer kept)."""
        # aiortc.clock, aiortc.rtp and its history's keys: checked by tests/test_seams.py
        from aiortc import clock
        from aiortc.rtp import RTP_HISTORY_SIZE

        ntp_now = clock.current_ntp_time()

        def ago(seq: int) -> float | None:
            packet = self.packets.get(seq % RTP_HISTORY_SIZE)
            if packet is None or packet.sequence_number != seq:
                return None
            return seconds_since(packet.extensions.abs_send_time, ntp_now)

        return ago


def _rtp_history(sender: Any) -> _RtpHistory | None:
    """``sender``'s resend history (None if this aiortc keeps it elsewhere: then every
    NACK is answered, as aiortc does)."""
    # private RTCRtpSender.__rtp_history: checked by tests/test_seams.py
    packets = getattr(sender, "_RTCRtpSender__rtp_history", None)
    return _RtpHistory(packets) if isinstance(packets, dict) else None


def link_stats(track: EncodedVideoTrack) -> dict[str, Any]:
    """One viewer's rung and what its feedback says about its link."""
    link = track.link
    return {
        "rung": track.rung,
        "estimated_bitrate": round(link.estimate) if link.estimate is not None else None,
        "loss": round(link.loss, 4),
        "rtt": round(link.rtt, 4) if link.rtt is not None else None,
        "rung_switches": link.switches,
        "resent": track.retransmissions.resent,
        "resend_refused": track.retransmissions.refused,
    }
