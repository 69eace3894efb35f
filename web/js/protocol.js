// Video Station signaling client and peer-connection manager (docs/signaling.md).
//
// This module never touches the DOM or the page's location: the UI passes in the
// WebSocket URL and a local MediaStream, and learns about everything through the
// documented on<event> callbacks of SignalingClient (the same split as Galène's
// protocol.js / galene.js).
//
//   const client = new SignalingClient(wsUrl);
//   client.onwelcome = (msg) => ...;
//   client.ontrack = (peerId, participantId, stream) => video.srcObject = stream;
//   client.setLocalStream(await navigator.mediaDevices.getUserMedia({audio: true, video: true}));
//   client.join('station', 'Grandma');

export const PROTOCOL_VERSION = 1;

/** The id of the service's own camera/microphone peer (aiortc, always impolite). */
export const STATION_PEER = 'station';

/** WebSocket.OPEN, spelled out so that a WebSocket stand-in can be injected. */
const OPEN = 1;

/**
 * @typedef {{audio: boolean, video: boolean}} Muted
 * @typedef {{
 *   id: string, name: string, role: string, kind: string, participant: string,
 *   sends?: string[], receives?: string[], muted?: Muted
 * }} PeerInfo
 * @typedef {{id: string, name?: string}} CallMember
 * @typedef {{
 *   state: 'idle'|'ringing'|'in-call', callers: CallMember[], in_call: (CallMember|string)[],
 *   knocking?: CallMember[], live: boolean, unreached?: string[], since?: number|null, ring_timeout_at?: number|null,
 *   auto_answer_at?: number|null, ended?: 'hangup'|'declined'|'missed'|'cancelled'|'quiet'|null,
 *   quiet?: boolean, quiet_until?: number|null, audio_muted?: boolean, video_muted?: boolean
 * }} CallInfo
 * @typedef {{
 *   type: 'welcome', version: number, peer_id: string, role: string,
 *   room: {id: string, name: string, is_station: boolean},
 *   ice_servers?: RTCIceServer[], peers?: PeerInfo[], call: CallInfo|null,
 *   station?: {name: string}
 * }} WelcomeMessage
 * @typedef {'connecting'|'connected'|'reconnecting'|'closed'} Status
 * @typedef {{
 *   peerId: string, participant: string, connectionState: string,
 *   framesDecoded: number, framesReceived: number, bytesReceived: number,
 *   audioBytesReceived: number, framesSent: number, bytesSent: number
 * }} PeerStats
 * @typedef {{
 *   WebSocket?: typeof WebSocket,
 *   RTCPeerConnection?: typeof RTCPeerConnection,
 *   pingInterval?: number, backoffMin?: number, backoffMax?: number,
 *   stationAnswerTimeout?: number, unreachableAfter?: number
 * }} ClientOptions
 * @typedef {'no-relay'|'direct'|'relay-unreachable'|'relay-refused'|'network'} Unreachable
 */

/** Join errors after which reconnecting cannot help. */
const FATAL_JOIN_ERRORS = new Set(['unsupported_version', 'forbidden', 'room_not_found', 'room_full', 'already_joined']);
/**
 * `bye` reasons after which the client reconnects by itself: the service is restarting.
 * Every other reason is final: those of FINAL_BYE, and any a newer server adds.
 */
export const RETRIED_BYE = new Set(['shutdown']);
/**
 * The final `bye` reasons this page knows (appliance/protocol.py's `ByeReason` but
 * `shutdown`; tests/test_protocol_contract.py keeps the two in step).
 */
export const FINAL_BYE = new Set(['left', 'room_deleted', 'room_full', 'replaced', 'refused', 'revoked', 'session_ended', 'expired']);
/** How long signals from a peer without a `connect` are held before they are dropped (ms). */
const EARLY_SIGNAL_MS = 2000;
/** At most this many held signals per peer, and held peers at once. */
const EARLY_SIGNAL_MAX = 40;
const EARLY_PEERS_MAX = 8;

/** How long a connection may stay unconnected before the page says why (ms). */
const UNREACHABLE_AFTER_MS = 10000;
/** TURN/STUN error codes that mean "these credentials are refused" (RFC 8489/8656). */
const REFUSED_CODES = new Set([401, 403, 431, 437, 438, 441]);

/**
 * What a connection's ICE saw, for the diagnosis (from getStats; see iceEvidence).
 * - remote: the other side's candidates were known (its offer or answer carried some);
 * - answered: a connectivity check got through, either way (a request came in, or a
 *   response to ours): some direct path exists;
 * - relay: either side had a relay (TURN) candidate;
 * - oneNetwork: a host address of each side is the same, or in one private IPv4 /24
 *   (both ends at home, or on one machine).
 * @typedef {{remote: boolean, answered: boolean, relay: boolean, oneNetwork: boolean}} IceEvidence
 */

/**
 * Why a connection did not come up, from what the browser saw (pure: no DOM).
 * - 'no-relay': no TURN server is configured and the candidates show one was needed;
 * - 'direct': no TURN server is configured, and nothing shows one would have helped
 *   (only a direct connection was tried; the page says so, and blames no one);
 * - 'relay-refused': the TURN server answered with an error (wrong credentials);
 * - 'relay-unreachable': the TURN server never answered (701: no response);
 * - 'network': the relay worked here; the other side or the network is the problem.
 *
 * A missing TURN server is blamed only on evidence (issue 27: a guest on the
 * station's own machine was told it had none): the other side's candidates were
 * known, yet no check got through in either direction, no relay candidate existed on
 * either side, and the two ends share no network. A check that got through means a
 * direct path exists (a relay is not what is missing); one network needs no relay;
 * without candidates from the other side, its offer or answer went astray, not a path.
 *
 * @param {RTCIceServer[]} iceServers  what the page was given
 * @param {{url: string, code: number}[]} errors  its `icecandidateerror`s
 * @param {IceEvidence|null} [evidence]  what its ICE saw (null: unknown, never blamed on TURN)
 * @returns {Unreachable}
 */
export function diagnoseUnreachable(iceServers, errors, evidence = null) {
  const isTurn = (/** @type {string} */ url) => /^turns?:/i.test(url);
  const turnUrls = iceServers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])).filter(isTurn);
  if (!turnUrls.length) {
    const needed = !!evidence && evidence.remote && !evidence.answered && !evidence.relay && !evidence.oneNetwork;
    return needed ? 'no-relay' : 'direct';
  }
  const turnErrors = errors.filter((e) => isTurn(e.url));
  if (turnErrors.some((e) => REFUSED_CODES.has(e.code))) return 'relay-refused';
  if (turnErrors.length) return 'relay-unreachable';
  return 'network';
}

/**
 * Do two candidate addresses say "one network"? The same address, or private IPv4
 * addresses in one /24 (a home network). mDNS names (`.local`) tell nothing.
 * @param {string} a
 * @param {string} b
 */
export function oneNetwork(a, b) {
  if (!a || !b || a.endsWith('.local') || b.endsWith('.local')) return false;
  if (a === b) return true;
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.\d+$/;
  const ma = v4.exec(a);
  const mb = v4.exec(b);
  if (!ma || !mb) return false;
  const [, x, y] = ma;
  const privateNet = x === '10' || x === '127' || (x === '192' && y === '168') || (x === '172' && Number(y) >= 16 && Number(y) < 32);
  return privateNet && ma.slice(1, 4).join('.') === mb.slice(1, 4).join('.');
}

/**
 * What `pc`'s ICE saw so far (IceEvidence), from its statistics.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<IceEvidence>}
 */
export async function iceEvidence(pc) {
  /** @type {IceEvidence} */
  const e = { remote: false, answered: false, relay: false, oneNetwork: false };
  let report;
  try {
    report = await pc.getStats();
  } catch {
    return e; // closed meanwhile: nothing known
  }
  /** @type {string[]} */ const localHosts = [];
  /** @type {string[]} */ const remoteHosts = [];
  report.forEach((r) => {
    const address = r.address || r.ip || '';
    if (r.type === 'local-candidate' || r.type === 'remote-candidate') {
      if (r.candidateType === 'relay') e.relay = true;
      if (r.type === 'remote-candidate') e.remote = true;
      if (r.candidateType === 'host') (r.type === 'local-candidate' ? localHosts : remoteHosts).push(address);
    } else if (r.type === 'candidate-pair') {
      if (r.state === 'succeeded' || (r.requestsReceived || 0) > 0 || (r.responsesReceived || 0) > 0) e.answered = true;
    }
  });
  // The remote description's candidates count too (getStats lists only paired ones).
  const sdp = pc.remoteDescription?.sdp || '';
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ (\S+)/.exec(line);
    if (!m) continue;
    e.remote = true;
    if (m[2] === 'relay') e.relay = true;
    if (m[2] === 'host') remoteHosts.push(m[1]);
  }
  e.oneNetwork = localHosts.some((a) => remoteHosts.some((b) => oneNetwork(a, b)));
  return e;
}

/**
 * One RTCPeerConnection to one peer, negotiated with perfect negotiation
 * (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example).
 */
export class PeerLink {
  /**
   * @param {SignalingClient} client
   * @param {string} peerId
   * @param {{polite: boolean, send: boolean, session?: number|null}} opts
   */
  constructor(client, peerId, { polite, send, session = null }) {
    this.client = client;
    this.id = peerId;
    this.polite = polite;
    this.send = send;
    /** The station's `session` this connection belongs to (station peer only). */
    this.session = session;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.isSettingRemoteDescription = false;
    this.closed = false;
    /** @type {RTCIceCandidateInit[]} candidates that arrived before a remote description */
    this.pendingCandidates = [];
    /** @type {MediaStream|null} */
    this.remoteStream = null;
    this.lastRestart = 0;
    const Impl = client.options.RTCPeerConnection || RTCPeerConnection;
    this.pc = new Impl({ iceServers: client.iceServers });
    this.pc.onnegotiationneeded = () => { void this.negotiate(); };
    this.pc.onicecandidate = ({ candidate }) => {
      // aiortc takes the whole candidate list inside the answer (see answerStation).
      if (this.id === STATION_PEER) return;
      client.sendRaw({ type: 'signal', to: this.id, candidate: candidate ? candidate.toJSON() : null });
    };
    this.pc.ontrack = (ev) => {
      const tracks = this.remoteStream ? this.remoteStream.getTracks().filter((t) => t.id !== ev.track.id) : [];
      // A new MediaStream object each time, so UIs can simply reassign srcObject.
      this.remoteStream = new MediaStream([...tracks, ev.track]);
      ev.track.addEventListener('ended', () => {
        if (this.remoteStream) this.remoteStream.removeTrack(ev.track);
      });
      client.emitTrack(this);
    };
    this.pc.oniceconnectionstatechange = () => {
      if (this.pc.iceConnectionState === 'failed') this.restart();
    };
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      client.onpeerstate?.(this.id, state);
      if (state === 'connected') this.reported = false;
      if (state === 'failed') {
        void this.reportUnreachable();
        this.restart();
      }
    };
    /** @type {{url: string, code: number}[]} the relay/STUN servers' errors, for the diagnosis */
    this.iceErrors = [];
    this.pc.onicecandidateerror = (ev) => {
      const e = /** @type {RTCPeerConnectionIceErrorEvent} */ (ev);
      if (this.iceErrors.length < 20) this.iceErrors.push({ url: e.url || '', code: e.errorCode });
    };
    /** whether the page has been told this connection is unreachable (until it connects) */
    this.reported = false;
    // A connection that is not up after a while gets a diagnosis even before the
    // browser gives up (Chromium says 'failed' only after about 30 s).
    this.unreachableTimer = setTimeout(() => {
      if (!this.closed && this.pc.connectionState !== 'connected') void this.reportUnreachable();
    }, client.options.unreachableAfter ?? UNREACHABLE_AFTER_MS);
    /** @type {Map<string, RTCRtpSender>} our senders, by track kind */
    this.senders = new Map();
    if (send && client.localStream) {
      for (const track of client.localStream.getTracks()) {
        const sender = this.pc.addTrack(track, client.localStream);
        this.senders.set(track.kind, sender);
        if (track.kind === 'video' && client.muted.video) void sender.replaceTrack(null);
      }
    }
  }

  get participant() {
    return this.client.participantOf(this.id);
  }

  async negotiate() {
    if (this.closed || this.id === STATION_PEER) return; // the station always offers
    // The first offer comes from the impolite side. Perfect negotiation would survive a
    // glare here too, but the rolled-back first offer costs a round trip, and Chromium
    // sometimes leaves the pair without a working ICE transport after it. Once the pair
    // has negotiated, either side offers (and glare is handled as usual).
    if (this.polite && !this.pc.remoteDescription) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (this.pc.localDescription) {
        this.client.sendRaw({ type: 'signal', to: this.id, description: this.pc.localDescription.toJSON() });
      }
    } catch (err) {
      this.client.reportError('negotiation', `offer to ${this.id} failed: ${errorText(err)}`);
    } finally {
      this.makingOffer = false;
    }
  }

  /** @param {RTCSessionDescriptionInit} description */
  async gotDescription(description) {
    const pc = this.pc;
    const readyForOffer = !this.makingOffer &&
      (pc.signalingState === 'stable' || this.isSettingRemoteDescription);
    const offerCollision = description.type === 'offer' && !readyForOffer;
    this.ignoreOffer = !this.polite && offerCollision;
    if (this.ignoreOffer) return;
    this.isSettingRemoteDescription = description.type === 'answer';
    try {
      await pc.setRemoteDescription(description); // implicit rollback when polite
    } finally {
      this.isSettingRemoteDescription = false;
    }
    await this.flushCandidates();
    if (description.type === 'offer') {
      await pc.setLocalDescription();
      if (this.id === STATION_PEER) await this.waitForGathering();
      if (this.closed || !pc.localDescription) return;
      this.client.sendRaw({ type: 'signal', to: this.id, description: pc.localDescription.toJSON() });
    }
  }

  /** @param {RTCIceCandidateInit|null} candidate */
  async gotCandidate(candidate) {
    if (!this.pc.remoteDescription) {
      if (candidate) this.pendingCandidates.push(candidate);
      return;
    }
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
    } catch (err) {
      if (!this.ignoreOffer) throw err;
    }
  }

  async flushCandidates() {
    const queued = this.pendingCandidates.splice(0);
    for (const c of queued) {
      try {
        await this.pc.addIceCandidate(c);
      } catch (err) {
        this.client.reportError('candidate', `bad candidate from ${this.id}: ${errorText(err)}`);
      }
    }
  }

  /** Resolves once ICE gathering is complete (or after a timeout). */
  waitForGathering() {
    const pc = this.pc;
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener('icegatheringstatechange', check);
        clearTimeout(timer);
        resolve(undefined);
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const timer = setTimeout(done, this.client.options.stationAnswerTimeout ?? 3000);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  /** ICE restart after a failure; at most one every 5 s. */
  restart() {
    if (this.closed) return;
    const now = Date.now();
    if (now - this.lastRestart < 5000) return;
    this.lastRestart = now;
    if (this.id === STATION_PEER) {
      this.client.sendRaw({ type: 'signal', to: STATION_PEER, restart: true });
    } else {
      this.pc.restartIce();
    }
  }

  /** Replaces (or adds) the local tracks sent on this connection. */
  async setLocalStream(/** @type {MediaStream|null} */ stream) {
    if (!this.send || this.closed) return;
    const tracks = stream ? stream.getTracks() : [];
    for (const kind of ['audio', 'video']) {
      const track = tracks.find((t) => t.kind === kind) || null;
      // Camera off sends no video at all (not black frames): the sender holds no track.
      const sent = kind === 'video' && this.client.muted.video ? null : track;
      const sender = this.senders.get(kind);
      if (sender) {
        if (sender.track !== sent) await sender.replaceTrack(sent);
      } else if (track && stream) {
        const added = this.pc.addTrack(track, stream); // fires negotiationneeded
        this.senders.set(kind, added);
        if (!sent) await added.replaceTrack(null);
      }
    }
  }

  /** Tells the page once, until the connection comes up, why it does not. */
  async reportUnreachable() {
    if (this.closed || this.reported) return;
    this.reported = true;
    const why = await this.diagnose();
    if (!this.closed && this.reported) this.client.onpeerunreachable?.(this.id, why);
  }

  /** @returns {Promise<Unreachable>} why this connection is not up, on the evidence so far */
  async diagnose() {
    return diagnoseUnreachable(this.client.iceServers, this.iceErrors, await iceEvidence(this.pc));
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.unreachableTimer);
    this.pc.onicecandidateerror = null;
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

/**
 * The signaling client. One instance per page that is in a room.
 *
 * Callbacks (all optional; assign functions to them):
 * - `onwelcome(msg)`: joined (also after every reconnect); `msg` is the `welcome` message.
 * - `onpeerjoined(peer)`, `onpeerupdated(peer)`: a peer object arrived / changed its `muted`.
 * - `onpeerleft(peerId, peer)`: a peer left the room (`peer` is the last known object, if any).
 * - `oncallstate(call)`: the station's call object (from `welcome` and `call-state`).
 * - `ontrack(peerId, participantId, stream)`: a remote track arrived; `stream` is a new
 *   MediaStream holding every track of that connection so far.
 * - `onpeerclosed(peerId, participantId)`: the connection to a peer was closed.
 * - `onmiclevel(dbfs, muted)` (the kiosk only): the level of what the station's
 *   microphone sends, about 8 times a second in a call; `dbfs` is null while muted.
 * - `onstation(name, language)`: the household changed the station's name or the
 *   kiosk's language in the app (`station`).
 * - `onpeerstate(peerId, connectionState)`: RTCPeerConnection.connectionState changed.
 * - `onpeerunreachable(peerId, why)`: a connection is not up after `unreachableAfter`
 *   ms (10 s) or failed; `why` is an Unreachable (see diagnoseUnreachable). Once per
 *   connection until it connects (`onpeerstate(peerId, 'connected')`).
 * - `onerror(code, message, ref)`: an `error` from the server, or a local failure.
 * - `onbye(reason)`: the server is about to close the socket. Unless the reason is in
 *   RETRIED_BYE (`shutdown`), the client has already stopped: no reconnect follows.
 * - `onstatus(status, detail)`: 'connecting' | 'connected' | 'reconnecting' | 'closed';
 *   `detail` is the retry delay in ms for 'reconnecting', the reason for 'closed'.
 *   While reconnecting, `reachable` says whether the last attempt reached the service.
 *   On any status but 'connected' every peer connection is already closed.
 *
 * Signals are only ever answered from peers the server sent a `connect` for: an
 * offer from anyone else opens nothing and sends nothing.
 */
export class SignalingClient {
  /**
   * @param {string} url  the WebSocket URL, e.g. "wss://station.local/ws/"
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** @type {Status} */
    this.status = 'closed';
    /** @type {string|null} */
    this.peerId = null;
    /** @type {string|null} */
    this.role = null;
    /** @type {{room: string, name: string}|null} */
    this.joinArgs = null;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {Map<string, PeerInfo>} everyone in the room, by peer id */
    this.roster = new Map();
    /** @type {Map<string, PeerLink>} open peer connections, by peer id */
    this.peers = new Map();
    /** Incoming messages are handled one after another along this chain. */
    this.inbox = Promise.resolve();
    /** @type {CallInfo|null} the station's call object (null outside the station room) */
    this.callState = null;
    /** Were we in the station's call, as last heard? Then a rejoin asks to resume it. */
    this.inStationCall = false;
    /**
     * Does joining the station's room ring it (or knock)? The page sets false while it
     * shows a finished call ("Call ended", "You cancelled"…): a rejoin after a lost
     * socket is then silent (`join` `ring: false`), and only `call('ring')` rings.
     */
    this.ringOnJoin = true;
    /**
     * Did the last socket open? False once an attempt failed without ever reaching
     * the service: the station is offline (or the network is), not merely restarting.
     */
    this.reachable = true;
    /** @type {MediaStream|null} */
    this.localStream = null;
    /** @type {Muted} */
    this.muted = { audio: false, video: false };
    this.attempt = 0;
    this.closing = false;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.retryTimer = null;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.pingTimer = null;
    this.lastHeard = 0;
    /** @type {Map<string, {at: number, msgs: any[]}>} signals from peers with no `connect` yet */
    this.early = new Map();

    /** @type {((msg: WelcomeMessage) => void)|null} */ this.onwelcome = null;
    /** @type {((peer: PeerInfo) => void)|null} */ this.onpeerjoined = null;
    /** @type {((peerId: string, peer: PeerInfo|undefined) => void)|null} */ this.onpeerleft = null;
    /** @type {((peer: PeerInfo) => void)|null} */ this.onpeerupdated = null;
    /** @type {((call: CallInfo|null) => void)|null} */ this.oncallstate = null;
    /** @type {((peerId: string, participantId: string, stream: MediaStream) => void)|null} */ this.ontrack = null;
    /** @type {((peerId: string, participantId: string) => void)|null} */ this.onpeerclosed = null;
    /** @type {((dbfs: number|null, muted: boolean) => void)|null} */ this.onmiclevel = null;
    /** @type {((name: string, language: string) => void)|null} */ this.onstation = null;
    /** @type {((peerId: string, state: string) => void)|null} */ this.onpeerstate = null;
    /** @type {((peerId: string, why: Unreachable) => void)|null} */ this.onpeerunreachable = null;
    /** @type {((code: string, message: string, ref: string|null) => void)|null} */ this.onerror = null;
    /** @type {((reason: string) => void)|null} */ this.onbye = null;
    /** @type {((status: Status, detail?: number|string) => void)|null} */ this.onstatus = null;
  }

  /**
   * Connects (if needed) and joins `room` as `name`; rejoins by itself after a reconnect.
   * @param {string} room
   * @param {string} [name]
   */
  join(room, name = '') {
    this.joinArgs = { room, name };
    this.closing = false;
    if (this.ws && this.ws.readyState === OPEN) {
      this.sendJoin();
    } else if (!this.ws) {
      this.connect();
    }
  }

  /**
   * @param {'ring'|'answer'|'decline'|'hangup'|'admit'|'refuse'} action
   * @param {string} [peer]  for `admit` / `refuse` (the kiosk): the knocking peer's id
   */
  call(action, peer) {
    this.sendRaw(peer === undefined ? { type: 'call', action } : { type: 'call', action, peer });
  }

  /**
   * Mutes/unmutes the local tracks and tells the others (`media`).
   * @param {boolean} audio  true: audio muted
   * @param {boolean} video  true: video muted
   */
  setMuted(audio, video) {
    this.muted = { audio, video };
    this.applyMuted();
    // Camera on/off swaps the video sender's track (no renegotiation).
    for (const p of this.peers.values()) void p.setLocalStream(this.localStream);
    this.sendRaw({ type: 'media', audio, video });
  }

  /**
   * The kiosk mutes the station's microphone / turns its camera off (in a call only;
   * the service answers with `call-state`, or `error` `call_state` / `forbidden`).
   * @param {boolean} audio  true: the station's microphone is muted
   * @param {boolean} video  true: the station's camera is off
   */
  setStationMedia(audio, video) {
    this.sendRaw({ type: 'station-media', audio, video });
  }

  /**
   * Sets the camera/microphone stream sent to peers (`send: true`): replaces the
   * tracks on existing senders, adds them where there are none yet.
   * @param {MediaStream|null} stream
   */
  async setLocalStream(stream) {
    this.localStream = stream;
    this.applyMuted();
    await Promise.all([...this.peers.values()].map((p) => p.setLocalStream(stream)));
  }

  /** Leaves the room and closes everything; no reconnect afterwards. */
  close() {
    this.closing = true;
    this.inStationCall = false;
    if (this.ws && this.ws.readyState === OPEN && this.peerId) this.sendRaw({ type: 'leave' });
    this.teardown();
    this.setStatus('closed', 'left');
  }

  /**
   * Why the connection to `peerId` is not up, on what its ICE saw (the station's
   * `call-state` may say so before this page's own connection gives up).
   * @param {string} peerId
   * @returns {Promise<Unreachable>}
   */
  async diagnose(peerId) {
    const link = this.peers.get(peerId);
    return link ? link.diagnose() : diagnoseUnreachable(this.iceServers, [], null);
  }

  /**
   * Receive statistics per open connection (inbound video `framesDecoded` etc.).
   * @returns {Promise<Record<string, PeerStats>>}
   */
  async stats() {
    /** @type {Record<string, PeerStats>} */
    const out = {};
    await Promise.all([...this.peers.values()].map(async (link) => {
      const s = {
        peerId: link.id, participant: link.participant, connectionState: link.pc.connectionState,
        framesDecoded: 0, framesReceived: 0, bytesReceived: 0, audioBytesReceived: 0, framesSent: 0, bytesSent: 0,
      };
      const report = await link.pc.getStats();
      report.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          s.framesDecoded += r.framesDecoded || 0;
          s.framesReceived += r.framesReceived || 0;
          s.bytesReceived += r.bytesReceived || 0;
        } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
          s.audioBytesReceived += r.bytesReceived || 0;
        } else if (r.type === 'outbound-rtp' && r.kind === 'video') {
          s.framesSent += r.framesSent || 0;
          s.bytesSent += r.bytesSent || 0;
        }
      });
      out[link.id] = s;
    }));
    return out;
  }

  /** @param {string} peerId */
  participantOf(peerId) {
    const p = this.roster.get(peerId);
    if (p && p.participant) return p.participant;
    return peerId;
  }

  // ---- internals -------------------------------------------------------

  connect() {
    const Impl = this.options.WebSocket || WebSocket;
    this.setStatus(this.attempt ? 'reconnecting' : 'connecting');
    const ws = new Impl(this.url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      opened = true;
      this.reachable = true;
      this.lastHeard = Date.now();
      this.startPing();
      this.sendJoin();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
      } catch {
        this.reportError('bad_frame', 'unparsable frame from the server');
        return;
      }
      // One message at a time, in order: an offer is answered (and its answer sent)
      // before the candidates and descriptions behind it are looked at.
      this.inbox = this.inbox
        .then(() => this.dispatch(msg))
        .catch((err) => this.reportError('internal', errorText(err)));
    };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (!opened) this.reachable = false;
      this.stopPing();
      this.dropPeers();
      this.peerId = null;
      if (this.closing) {
        this.setStatus('closed', 'closed');
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  scheduleReconnect() {
    // Gentle growth and a low ceiling: after a restart of the service a call resumes
    // within seconds, while a station that stays away is asked every few seconds only.
    const min = this.options.backoffMin ?? 400;
    const max = this.options.backoffMax ?? 4000;
    const delay = Math.min(max, min * 1.6 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.setStatus('reconnecting', Math.round(delay));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closing) this.connect();
    }, delay);
  }

  sendJoin() {
    if (!this.joinArgs) return;
    /** @type {Record<string, unknown>} */
    const join = { type: 'join', version: PROTOCOL_VERSION, room: this.joinArgs.room, name: this.joinArgs.name };
    // After a lost connection (the service restarted) the call we were in resumes
    // without ringing; the server decides whether it may.
    if (this.inStationCall) join.resume = true;
    else if (!this.ringOnJoin) join.ring = false;
    this.sendRaw(join);
  }

  startPing() {
    this.stopPing();
    const every = this.options.pingInterval ?? 15000;
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > every * 2.5) {
        // The socket looks dead (e.g. Wi-Fi dropped without a FIN): start over.
        this.ws?.close();
        return;
      }
      this.sendRaw({ type: 'ping' });
    }, every);
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  teardown() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.dropPeers();
    this.peerId = null;
  }

  dropPeers() {
    this.early.clear();
    for (const id of [...this.peers.keys()]) this.closePeer(id);
  }

  /**
   * Holds a signal from `from`, which has no connection (no `connect` yet), for
   * EARLY_SIGNAL_MS; {@link replayEarlySignals} applies it if the `connect` follows.
   * Nothing is answered for a peer the server did not connect us to.
   * @param {string} from
   * @param {any} msg
   */
  holdEarlySignal(from, msg) {
    const now = Date.now();
    for (const [id, held] of this.early) if (now - held.at > EARLY_SIGNAL_MS) this.early.delete(id);
    let held = this.early.get(from);
    if (!held) {
      if (this.early.size >= EARLY_PEERS_MAX) return;
      held = { at: now, msgs: [] };
      this.early.set(from, held);
    }
    if (held.msgs.length < EARLY_SIGNAL_MAX) held.msgs.push(msg);
  }

  /** @param {string} peerId  a `connect` for it just arrived */
  async replayEarlySignals(peerId) {
    const held = this.early.get(peerId);
    this.early.delete(peerId);
    if (!held || Date.now() - held.at > EARLY_SIGNAL_MS) return;
    for (const msg of held.msgs) await this.gotSignal(msg);
  }

  /** @param {Record<string, unknown>} msg */
  sendRaw(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * @param {Status} status
   * @param {number|string} [detail]
   */
  setStatus(status, detail) {
    this.status = status;
    this.onstatus?.(status, detail);
  }

  /**
   * @param {string} code
   * @param {string} message
   * @param {string|null} [ref]
   */
  reportError(code, message, ref = null) {
    console.warn("VSERR", code, message);
    this.onerror?.(code, message, ref);
  }

  applyMuted() {
    if (!this.localStream) return;
    for (const t of this.localStream.getAudioTracks()) t.enabled = !this.muted.audio;
    for (const t of this.localStream.getVideoTracks()) t.enabled = !this.muted.video;
  }

  /** @param {PeerLink} link */
  emitTrack(link) {
    if (link.remoteStream) this.ontrack?.(link.id, link.participant, link.remoteStream);
  }

  /**
   * @param {string} peerId
   * @param {{polite: boolean, send: boolean, session?: number|null}} opts
   */
  openPeer(peerId, opts) {
    this.closePeer(peerId);
    const link = new PeerLink(this, peerId, opts);
    this.peers.set(peerId, link);
    return link;
  }

  /** @param {string} peerId */
  closePeer(peerId) {
    const link = this.peers.get(peerId);
    if (!link) return;
    this.peers.delete(peerId);
    link.close();
    this.onpeerclosed?.(peerId, link.participant);
  }

  /** @param {any} msg */
  async dispatch(msg) {
    switch (msg.type) {
      case 'welcome': {
        this.attempt = 0;
        this.peerId = msg.peer_id;
        this.role = msg.role;
        this.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
        this.roster = new Map((msg.peers || []).map((/** @type {PeerInfo} */ p) => [p.id, p]));
        this.callState = msg.call ?? null;
        this.setStatus('connected');
        if (this.muted.audio || this.muted.video) {
          this.sendRaw({ type: 'media', audio: this.muted.audio, video: this.muted.video });
        }
        this.onwelcome?.(msg);
        this.oncallstate?.(this.callState);
        break;
      }
      case 'peer-joined':
        this.roster.set(msg.peer.id, msg.peer);
        this.onpeerjoined?.(msg.peer);
        break;
      case 'peer-updated':
        this.roster.set(msg.peer.id, msg.peer);
        this.onpeerupdated?.(msg.peer);
        break;
      case 'peer-left': {
        const peer = this.roster.get(msg.peer_id);
        this.early.delete(msg.peer_id);
        this.closePeer(msg.peer_id);
        this.roster.delete(msg.peer_id);
        this.onpeerleft?.(msg.peer_id, peer);
        break;
      }
      case 'connect':
        this.openPeer(msg.peer_id, { polite: !!msg.polite, send: !!msg.send });
        await this.replayEarlySignals(msg.peer_id);
        break;
      case 'disconnect':
        this.early.delete(msg.peer_id);
        this.closePeer(msg.peer_id);
        break;
      case 'signal':
        await this.gotSignal(msg);
        break;
      case 'call-state':
        this.callState = msg.call ?? null;
        this.inStationCall = !!this.callState && this.callState.state === 'in-call'
          && (this.callState.in_call || []).some((m) => (typeof m === 'string' ? m : m.id) === this.peerId);
        this.oncallstate?.(this.callState);
        break;
      case 'error':
        if (msg.ref === 'join' && FATAL_JOIN_ERRORS.has(msg.code)) this.closing = true;
        this.reportError(msg.code, msg.message || msg.code, msg.ref ?? null);
        if (this.closing) this.teardown();
        if (this.closing) this.setStatus('closed', msg.code);
        break;
      case 'bye':
        if (!RETRIED_BYE.has(msg.reason)) {
          // Final: stop here, so that the socket closing next is not taken for a lost
          // connection (no "reconnecting…" for a withdrawn invitation).
          this.closing = true;
          this.teardown();
          this.setStatus('closed', String(msg.reason));
        }
        this.onbye?.(String(msg.reason));
        break;
      case 'ice-servers':
        // let in after knocking (the relay, before the first `connect`), or a fresh
        // credential before the last one runs out: for new connections and restarts
        if (Array.isArray(msg.ice_servers)) {
          this.iceServers = msg.ice_servers;
          for (const link of this.peers.values()) {
            try {
              link.pc.setConfiguration({ ...link.pc.getConfiguration(), iceServers: this.iceServers });
            } catch (err) {
              console.warn('ice servers not updated', err);
            }
          }
        }
        break;
      case 'mic-level':
        this.onmiclevel?.(typeof msg.dbfs === 'number' ? msg.dbfs : null, !!msg.muted);
        break;
      case 'station':
        this.onstation?.(String(msg.name ?? ''), String(msg.language ?? 'auto'));
        break;
      case 'pong':
        break;
      default:
        // Newer servers may add messages; ignoring them keeps old pages working.
        break;
    }
  }

  /** @param {any} msg */
  async gotSignal(msg) {
    const from = msg.from;
    if (typeof from !== 'string') return;
    let link = this.peers.get(from);
    const session = typeof msg.session === 'number' ? msg.session : null;
    if (from === STATION_PEER && session !== null && link && link.session !== null && link.session !== session) {
      // The station restarted its side: answer the new offer on a fresh connection.
      link = this.openPeer(from, { polite: true, send: false, session });
    }
    if (!link) {
      // No `connect` for this peer (yet): never answer it. An offer may overtake its
      // `connect` by a hair (the server tells both sides one after the other), so a few
      // signals are held for a moment and replayed if the `connect` follows.
      this.holdEarlySignal(from, msg);
      return;
    }
    if (link.session === null && session !== null) link.session = session;
    try {
      if (msg.description) {
        await link.gotDescription(msg.description);
      } else if ('candidate' in msg) {
        await link.gotCandidate(msg.candidate);
      }
    } catch (err) {
      this.reportError('negotiation', `signal from ${from}: ${errorText(err)}`);
    }
  }
}

/** @param {unknown} err */
function errorText(err) {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
