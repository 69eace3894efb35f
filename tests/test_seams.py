"""The private names of aiortc, aioice and aiohttp the station leans on (STYLE.md 25).

Each :class:`Seam` is one name the product code reaches for that its package does not
promise to keep: a name-mangled sender attribute, a method aioice calls that ``ice.py``
replaces, a module aiortc does not export. Its test checks, on real objects, that the
name is still there with the shape the code relies on, and fails naming the package
and its version, the name, and who uses it for what. pyproject.toml bounds each of
these packages below the next release not checked here; when one is raised, this file
says what moved.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import textwrap
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aioice import Candidate, Connection
from aioice.ice import CandidatePair
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from packaging.requirements import Requirement

from appliance.http.connections import StationRequestHandler, StationRunner, StationServer
from appliance.media.audio import AudioFanoutTrack
from appliance.media.video import EncodedVideoTrack, RawVideoTrack
from appliance.signaling import Socket

ROOT = Path(__file__).resolve().parent.parent


class Unmade(Exception):
    """What a seam is checked on could not be made (another seam moved)."""


class World:
    """Real objects of each package, built the way the station builds them. One that
    could not be made raises when a check asks for it, so each seam's test still says
    which name moved."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}

    def record(self, name: str, value: Any) -> Any:
        """``value``: the object, or the exception making it raised."""
        self._made[name] = value
        return value

    def make(self, name: str, build: Callable[[], Any]) -> Any:
        try:
            return self.record(name, build())
        except Exception as exc:
            return self.record(name, exc)

    def _get(self, name: str) -> Any:
        value = self._made[name]
        if isinstance(value, Exception):
            raise Unmade(f"making the {name} failed: {type(value).__name__}: {value}")
        return value

    @property
    def video(self) -> RTCRtpTransceiver:
        """A send-only video transceiver of a new RTCPeerConnection (not negotiated)."""
        return self._get("video")  # type: ignore[no-any-return]

    @property
    def audio(self) -> RTCRtpTransceiver:
        return self._get("audio")  # type: ignore[no-any-return]

    @property
    def connection(self) -> Connection:
        """An aioice agent on the controlling side, as the station's (it offers)."""
        return self._get("connection")  # type: ignore[no-any-return]

    @property
    def pair(self) -> CandidatePair:
        return self._get("pair")  # type: ignore[no-any-return]

    @property
    def runner(self) -> StationRunner:
        """Set up: its server made, as ``app.serve`` makes it."""
        return self._get("runner")  # type: ignore[no-any-return]


Check = Callable[[World], object]
"""Raises (AttributeError, TypeError, AssertionError...) when the seam moved."""


@dataclass(frozen=True)
class Seam:
    package: str
    """The distribution whose private name this is (pyproject.toml bounds it)."""
    name: str
    """As a reader writes it: ``RTCRtpSender.__rtt``."""
    user: str
    """Where the product code uses it."""
    why: str
    """What for."""
    shape: str
    """What the code relies on."""
    check: Check


def attribute(owner: Callable[[World], Any], name: str, kind: type | tuple[type, ...]) -> Check:
    """``owner(world).name`` exists and is a ``kind`` (a mangled ``__name`` as Python
    spells it on the instance)."""

    def check(world: World) -> None:
        obj = owner(world)
        spelt = f"_{type(obj).__name__}{name}" if name.startswith("__") else name
        value = getattr(obj, spelt)
        if not isinstance(value, kind):
            raise TypeError(f"{spelt} is a {type(value).__name__}, not {kind}")

    return check


def unpatched(function: Any) -> Any:
    """aioice's own function under ``ice.py``'s wrapper (the patch lasts the session
    once any test or call loaded the media stack)."""
    while getattr(function, "__module__", None) == "appliance.media.ice":
        inner = [
            value
            for value in inspect.getclosurevars(function).nonlocals.values()
            if inspect.isfunction(value)
        ]
        assert len(inner) == 1, f"cannot see what {function.__qualname__} wraps"
        function = inner[0]
    return function


def method(
    owner: Callable[[World], Any], name: str, params: list[str], *, coroutine: bool
) -> Check:
    """``owner(world).name`` is a (coroutine) function taking exactly ``params``."""

    def check(world: World) -> None:
        function = unpatched(getattr(owner(world), name))
        found = list(inspect.signature(function).parameters)
        if found != params:
            raise TypeError(f"{name}{tuple(found)} takes other parameters than {tuple(params)}")
        if inspect.iscoroutinefunction(function) != coroutine:
            raise TypeError(f"{name} is {'not ' if coroutine else ''}a coroutine function")

    return check


def module_has(module: str, *names: str) -> Check:
    def check(world: World) -> None:
        loaded = importlib.import_module(module)
        missing = [name for name in names if not hasattr(loaded, name)]
        if missing:
            raise AttributeError(f"{module} has no {', '.join(missing)}")

    return check


def named(dotted: str) -> Callable[[World], Any]:
    """The module, or the module's class, ``dotted`` names (imported when checked)."""

    def get(world: World) -> Any:
        try:
            return importlib.import_module(dotted)
        except ModuleNotFoundError:
            module, _, name = dotted.rpartition(".")
            return getattr(importlib.import_module(module), name)

    return get


def fields_of(owner: str, *names: str) -> Check:
    """``module.Class`` is a dataclass with the fields ``names``."""

    def check(world: World) -> None:
        cls = named(owner)(world)
        found = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(set(names) - found)
        if missing:
            raise AttributeError(f"{owner} has no field {', '.join(missing)}")

    return check


def opus_encoder_unopened(world: World) -> None:
    from aiortc.codecs.opus import OpusEncoder

    codec = OpusEncoder().codec
    assert not codec.is_open, "aiortc opened the codec already: options set now are ignored"
    assert isinstance(codec.bit_rate, int) and isinstance(codec.options, dict)


def station_server_made(world: World) -> None:
    try:
        server = world.runner.server
    except Unmade as exc:  # this seam is what makes the runner
        raise AssertionError(str(exc)) from exc
    assert type(server) is StationServer, f"the runner's server is a {type(server).__name__}"


def history_keyed_by_sequence(world: World) -> None:
    from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

    assert isinstance(RTP_HISTORY_SIZE, int)
    assert RtpPacket().extensions.abs_send_time is None


SENDER_HOOKS = "appliance/media/peer.py (StationPeers._hook_feedback, _hook_audio_reports)"
PATCH = "appliance/media/ice.py (keep_the_best_nominated_pair)"
PRFLX = "appliance/media/ice.py (wait_for_peer_reflexive)"
HANDLER = "appliance/http/connections.py (StationRequestHandler)"

# fmt: off
SEAMS = [
    # --- aiortc: appliance/media/peer.py, ice.py, video.py -------------------------
    Seam(
        "aiortc", "RTCRtpTransceiver._codecs",
        "appliance/media/peer.py (negotiated_codec, use_fec_opus)",
        "the codec each sender negotiated", "a list, the negotiated codecs, preferred first",
        attribute(lambda w: w.video, "_codecs", list),
    ),
    Seam(
        "aiortc", "RTCRtpSender.__encoder", "appliance/media/peer.py (use_fec_opus)",
        "giving an Opus sender the FEC encoder before aiortc makes its own",
        "an attribute of every sender, None until aiortc creates it on the first frame",
        attribute(lambda w: w.audio.sender, "__encoder", type(None)),
    ),
    Seam(
        "aiortc", "aiortc.codecs.opus.OpusEncoder.codec",
        "appliance/media/peer.py (fec_opus_encoder)", "Opus in-band FEC at 48 kbit/s",
        "an av codec context, not opened yet, with bit_rate and options",
        opus_encoder_unopened,
    ),
    Seam(
        "aiortc", "RTCRtpSender._send_keyframe",
        "appliance/media/peer.py (StationPeers._hook_keyframe_requests)",
        "passing a viewer's PLI/FIR to the shared encoder",
        "a method without parameters, called for each PLI/FIR",
        method(lambda w: type(w.video.sender), "_send_keyframe", ["self"], coroutine=False),
    ),
    Seam(
        "aiortc", "RTCRtpSender._handle_rtcp_packet", SENDER_HOOKS,
        "reading each viewer's REMB, receiver reports and NACKs",
        "a coroutine method taking the packet, called for each RTCP packet",
        method(
            lambda w: type(w.video.sender), "_handle_rtcp_packet", ["self", "packet"],
            coroutine=True,
        ),
    ),
    Seam(
        "aiortc", "RTCRtpSender._ssrc", SENDER_HOOKS,
        "picking the reports about the station's own stream", "an int on every sender",
        attribute(lambda w: w.video.sender, "_ssrc", int),
    ),
    Seam(
        "aiortc", "RTCRtpSender.__rtt", "appliance/media/peer.py (StationPeers._hook_feedback)",
        "the round trip the rung policy and the resend guard use",
        "an attribute of every sender, None until a receiver report measures it",
        attribute(lambda w: w.video.sender, "__rtt", (float, type(None))),
    ),
    Seam(
        "aiortc", "RTCRtpSender.__rtp_history", "appliance/media/peer.py (_rtp_history)",
        "how long ago each NACKed packet was sent",
        "a dict of the sent packets kept for resending, on every sender",
        attribute(lambda w: w.video.sender, "__rtp_history", dict),
    ),
    Seam(
        "aiortc", "aiortc.rtp.RTP_HISTORY_SIZE, RtpPacket.extensions.abs_send_time",
        "appliance/media/peer.py (_RtpHistory.sent_ago)",
        "finding a NACKed packet in the history and its send time",
        "history keyed by sequence number modulo RTP_HISTORY_SIZE; packets stamped",
        history_keyed_by_sequence,
    ),
    Seam(
        "aiortc", "aiortc.rtp (RTCP packets)", SENDER_HOOKS,
        "telling NACKs, REMB and reports apart",
        "the module's packet classes, constants and unpack_remb_fci",
        module_has(
            "aiortc.rtp", "RTCP_PSFB_APP", "RTCP_RTPFB_NACK", "RtcpPsfbPacket",
            "RtcpRtpfbPacket", "RtcpRrPacket", "RtcpSrPacket", "unpack_remb_fci",
        ),
    ),
    Seam(
        "aiortc", "aiortc.rtp.RtcpRtpfbPacket.lost",
        "appliance/media/peer.py (StationPeers._hook_feedback)",
        "resending only the lost packets that still help",
        "a dataclass with fmt and lost (dataclasses.replace(packet, lost=...))",
        fields_of("aiortc.rtp.RtcpRtpfbPacket", "fmt", "lost"),
    ),
    Seam(
        "aiortc", "aiortc.rtp.RtcpPsfbPacket.fci", SENDER_HOOKS, "reading REMB",
        "a dataclass with fmt and fci", fields_of("aiortc.rtp.RtcpPsfbPacket", "fmt", "fci"),
    ),
    Seam(
        "aiortc", "aiortc.rtp.RtcpReceiverInfo", "appliance/media/peer.py (reports_on)",
        "each viewer's loss and highest sequence number",
        "report blocks (in RtcpRrPacket/RtcpSrPacket.reports) with ssrc, fraction_lost, "
        "highest_sequence",
        lambda w: [
            fields_of(
                "aiortc.rtp.RtcpReceiverInfo", "ssrc", "fraction_lost", "highest_sequence"
            )(w),
            fields_of("aiortc.rtp.RtcpRrPacket", "reports")(w),
            fields_of("aiortc.rtp.RtcpSrPacket", "reports")(w),
        ],
    ),
    Seam(
        "aiortc", "aiortc.clock.current_ntp_time", "appliance/media/peer.py (_RtpHistory)",
        "the NTP time the abs-send-time stamps are read against", "a function",
        module_has("aiortc.clock", "current_ntp_time"),
    ),
    Seam(
        "aiortc", "aiortc.sdp.candidate_from_sdp",
        "appliance/media/peer.py (StationPeers._add_candidate)",
        "parsing a browser's ICE candidate", "a function of the candidate line",
        module_has("aiortc.sdp", "candidate_from_sdp"),
    ),
    Seam(
        "aiortc", "H264Encoder.pack, Vp8Encoder.pack",
        "appliance/media/video.py (EncodedVideoTrack)",
        "sending the shared encoder's packets without encoding them again per viewer",
        "the sender packetizes an av.Packet from recv() with its encoder's pack(packet)",
        lambda w: [
            method(named("aiortc.codecs.h264.H264Encoder"), "pack", ["self", "packet"],
                   coroutine=False)(w),
            method(named("aiortc.codecs.vpx.Vp8Encoder"), "pack", ["self", "packet"],
                   coroutine=False)(w),
        ],
    ),
    Seam(
        "aiortc", "RTCIceTransport._connection", "appliance/media/ice.py (path_of)",
        "which path (direct or relay) media takes, in the stats",
        "the aioice Connection of the ICE transport",
        attribute(lambda w: w.video.sender.transport.transport, "_connection", Connection),
    ),
    # --- aioice: appliance/media/ice.py ---------------------------------------------
    Seam(
        "aioice", "Connection.check_complete", PATCH,
        "keeping the best nominated pair (ice.py replaces it)",
        "a method taking the pair whose check ended, called by aioice",
        method(lambda w: Connection, "check_complete", ["self", "pair"], coroutine=False),
    ),
    Seam(
        "aioice", "Connection.close", PATCH, "stopping the checks kept running (replaced)",
        "a coroutine method without parameters",
        method(lambda w: Connection, "close", ["self"], coroutine=True),
    ),
    Seam(
        "aioice", "Connection.check_start", "appliance/media/ice.py (keep_checking)",
        "starting the check of a better pair after completion",
        "a coroutine method taking the pair",
        method(lambda w: Connection, "check_start", ["self", "pair"], coroutine=True),
    ),
    Seam(
        "aioice", "Connection._nominated", "appliance/media/ice.py (check_complete, path_of)",
        "the pair media goes over", "a dict of nominated pairs by component",
        attribute(lambda w: w.connection, "_nominated", dict),
    ),
    Seam(
        "aioice", "Connection._check_list", PATCH, "the pairs still worth checking",
        "a list of every candidate pair", attribute(lambda w: w.connection, "_check_list", list),
    ),
    Seam(
        "aioice", "CandidatePair.task", "appliance/media/ice.py (keep_checking)",
        "taking a running check out of connect()'s hands",
        "an attribute of every pair, None or its check's task",
        attribute(lambda w: w.pair, "task", type(None)),
    ),
    Seam(
        "aioice", "aioice.ice.CandidatePair", PATCH, "comparing and tracking pairs",
        "State FROZEN, WAITING, IN_PROGRESS, SUCCEEDED; component, nominated, state, "
        "local_candidate, remote_candidate",
        lambda w: [
            CandidatePair.State[s] for s in ("FROZEN", "WAITING", "IN_PROGRESS", "SUCCEEDED")
        ] + [
            getattr(w.pair, a)
            for a in ("component", "nominated", "state", "local_candidate", "remote_candidate")
        ],
    ),
    Seam(
        "aioice", "Connection._end_remote_candidates", PRFLX,
        "holding end-of-candidates back while a hidden peer's checks may come (replaced)",
        "a method without parameters, run once the remote candidates ended and resolved",
        method(lambda w: Connection, "_end_remote_candidates", ["self"], coroutine=False),
    ),
    Seam(
        "aioice", "Connection._remote_candidates, _remote_candidates_resolving, "
        "_remote_candidates_end, _closing", PRFLX,
        "whether a usable remote candidate came; holding the end back as aioice does "
        "for an mDNS name being resolved",
        "a list of candidates, a count, two flags",
        lambda w: [
            attribute(lambda w: w.connection, "_remote_candidates", list)(w),
            attribute(lambda w: w.connection, "_remote_candidates_resolving", int)(w),
            attribute(lambda w: w.connection, "_remote_candidates_end", bool)(w),
            attribute(lambda w: w.connection, "_closing", bool)(w),
        ],
    ),
    Seam(
        "aioice", "aioice.ice.candidate_pair_priority", "appliance/media/ice.py (priority)",
        "RFC 8445's pair priority", "a function (local, remote, ice_controlling)",
        method(
            named("aioice.ice"), "candidate_pair_priority",
            ["local", "remote", "ice_controlling"], coroutine=False,
        ),
    ),
    # --- aiohttp: appliance/http/connections.py -------------------------------------
    Seam(
        "aiohttp", "AppRunner._make_server", "appliance/http/connections.py (StationRunner)",
        "installing the station's connection limits",
        "a coroutine method the runner's setup() calls; its web.Server keeps a __dict__ "
        "(StationRunner changes its __class__)",
        lambda w: [
            method(lambda _: web.AppRunner, "_make_server", ["self"], coroutine=True)(w),
            station_server_made(w),
        ],
    ),
    Seam(
        "aiohttp", "web.Server._loop, web.Server._kwargs",
        "appliance/http/connections.py (StationServer.__call__)",
        "making the station's handler as aiohttp makes its own",
        "the server's loop and the handler keyword arguments (a dict)",
        lambda w: [
            attribute(lambda w: w.runner.server, "_loop", object)(w),
            attribute(lambda w: w.runner.server, "_kwargs", dict)(w),
        ],
    ),
    Seam(
        "aiohttp", "RequestHandler._manager", HANDLER, "the server's counts per address",
        "the web.Server that made the handler",
        attribute(lambda w: w.runner.server(), "_manager", StationServer),
    ),
    Seam(
        "aiohttp", "RequestHandler._request_count", HANDLER,
        "closing a connection without a request head in time",
        "requests seen on the connection, 0 at first",
        attribute(lambda w: w.runner.server(), "_request_count", int),
    ),
    Seam(
        "aiohttp", "RequestHandler._lingering_time", HANDLER,
        "closing a refused or timed-out request without draining its slow body",
        "seconds an unread body is drained after the answer, a float (0: not at all)",
        attribute(lambda w: w.runner.server(), "_lingering_time", float),
    ),
    Seam(
        "aiohttp", "WebSocketResponse._on_data_received", "appliance/signaling.py (Socket)",
        "not re-arming the heartbeat timer (which holds the socket) after the close",
        "a method (self) the request's protocol calls for each chunk received; it "
        "arms the heartbeat timer when it is not already pending",
        method(lambda w: web.WebSocketResponse, "_on_data_received", ["self"], coroutine=False),
    ),
    Seam(
        "aiohttp", "RequestHandler.handle_error", HANDLER,
        "answering malformed requests briefly (overridden)",
        "a method (request, status, exc, message) returning the response",
        method(
            lambda w: RequestHandler, "handle_error",
            ["self", "request", "status", "exc", "message"], coroutine=False,
        ),
    ),
]
# fmt: on


@dataclass
class Endpoint:
    """What a pair needs of its STUN protocol: the local candidate it sends from."""

    local_candidate: Candidate


def host(address: str) -> Candidate:
    return Candidate(
        foundation="host", component=1, transport="udp", priority=1, host=address,
        port=5000, type="host",
    )  # fmt: skip


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = World()
    pc = world.make("peer connection", RTCPeerConnection)
    world.make("video", lambda: pc.addTransceiver(VideoStreamTrack(), direction="sendonly"))
    world.make("audio", lambda: pc.addTransceiver(AudioStreamTrack(), direction="sendonly"))
    world.make("connection", lambda: Connection(ice_controlling=True))
    world.make("pair", lambda: CandidatePair(Endpoint(host("10.0.0.1")), host("10.0.0.2")))  # type: ignore[arg-type]
    runner = StationRunner(web.Application())
    try:
        await runner.setup()
        world.record("runner", runner)
    except Exception as exc:
        world.record("runner", exc)
    try:
        yield world
    finally:
        if runner.server is not None:
            await runner.cleanup()
        if isinstance(pc, RTCPeerConnection):
            await pc.close()


NOT_INSTALLED = "(not installed)"


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return NOT_INSTALLED


@pytest.mark.parametrize("seam", SEAMS, ids=lambda seam: seam.name)
def test_seam_is_still_there(seam: Seam, world: World) -> None:
    package = f"{seam.package} {installed(seam.package)}"
    use = f"used by {seam.user} for {seam.why}"
    try:
        seam.check(world)
    except Unmade as exc:
        pytest.fail(f"{package}: {seam.name} ({use}) could not be checked: {exc}", pytrace=False)
    except Exception as exc:
        pytest.fail(
            f"{package} moved {seam.name} ({use}): pin {seam.package} or update the seam\n"
            f"  the code relies on: {seam.shape}\n"
            f"  found: {type(exc).__name__}: {exc}",
            pytrace=False,
        )


def own_private_names(cls: type) -> set[str]:
    """The ``_names`` ``cls`` itself defines: its methods and ``self._x =`` attributes."""
    (definition,) = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    assert isinstance(definition, ast.ClassDef)
    names = {
        node.name
        for node in definition.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    for node in ast.walk(definition):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


class BareTrack(MediaStreamTrack):
    """aiortc's track and nothing more."""

    async def recv(self) -> Any:
        raise NotImplementedError


OVERRIDDEN = {"_make_server", "_lingering_time", "_on_data_received"}
"""Private names our subclasses replace on purpose (seams above)."""


@pytest.mark.parametrize(
    ("ours", "theirs", "package"),
    [
        (StationRequestHandler, RequestHandler, "aiohttp"),
        (StationServer, web.Server, "aiohttp"),
        (StationRunner, web.AppRunner, "aiohttp"),
        (Socket, web.WebSocketResponse, "aiohttp"),
        (AudioFanoutTrack, MediaStreamTrack, "aiortc"),
        (EncodedVideoTrack, MediaStreamTrack, "aiortc"),
        (RawVideoTrack, MediaStreamTrack, "aiortc"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
async def test_our_subclasses_use_no_private_name_of_their_base(
    ours: type, theirs: type, package: str
) -> None:
    """A ``self._ready`` of ours would silently overwrite a ``_ready`` of aiortc's."""
    base_names = set(dir(theirs))
    if theirs is MediaStreamTrack:
        base_names |= set(vars(BareTrack()))  # what aiortc's __init__ sets
    clash = sorted((own_private_names(ours) & base_names) - OVERRIDDEN)
    assert not clash, (
        f"{package} {installed(package)} now uses {', '.join(clash)} in {theirs.__name__}, "
        f"which {ours.__module__}.{ours.__name__} also sets: rename ours"
    )


def dependencies() -> list[Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return [Requirement(line) for line in tomllib.load(file)["project"]["dependencies"]]


def test_installed_versions_lie_inside_the_bounds_of_pyproject() -> None:
    outside = [
        f"{req.name} {installed(req.name)} (pyproject.toml: {req})"
        for req in dependencies()
        if req.marker is None or req.marker.evaluate()
        if installed(req.name) == NOT_INSTALLED
        or not req.specifier.contains(installed(req.name), prereleases=True)
    ]
    assert not outside, "installed outside the declared bounds: " + "; ".join(outside)


def test_every_package_with_seams_is_bounded_above() -> None:
    """STYLE.md 25: a dependency whose private names we use stops below the next
    release these tests have not seen."""
    declared = {req.name.lower(): req for req in dependencies()}
    for package in sorted({seam.package for seam in SEAMS}):
        req = declared.get(package)
        assert req is not None, f"{package} has seams here but is not in [project].dependencies"
        assert any(spec.operator == "<" for spec in req.specifier), (
            f"{package} has seams here but pyproject.toml does not bound it above: {req}"
        )
