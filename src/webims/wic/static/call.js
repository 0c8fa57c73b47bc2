// Audio calls of the WIC (SPEC.md §9.7, §9.9): one call at a time, over the
// registered SipLine's JsSIP UA.
//
// Outgoing: the INVITE goes over the eP-CSCF's WebSocket with the page's
// Bearer token (JsSIP's authorization_jwt) and a WebRTC offer of audio only
// (UDP/TLS/RTP/SAVPF, ICE, DTLS, rtcp-mux: the browser's own).  Incoming: the
// page shows who calls (the P-Asserted-Identity the network asserted, else
// the From URI) with "Answer" and "Decline" (603); a second call while one is
// under way gets 486 Busy Here.  The remote audio plays in the page's
// <audio> element.
//
// The call's state is reported through onState(state, detail):
//   idle      -- no call;
//   calling   -- INVITE sent, no answer yet (detail: "ringing" after a 180);
//   incoming  -- an INVITE waits for Answer or Decline (detail: the caller);
//   answering -- Answer pressed, the 200 OK on its way;
//   in-call   -- the call is confirmed (detail: the peer);
//   ended     -- the call is over (detail: why: "hung up", "the other side
//                hung up", "486 Busy Here", "no answer", ...).

const AUDIO_ONLY = { audio: true, video: false };

// The SIP URI to call for what a person typed: a sip:, sips: or tel: URI as
// it is; user@host gets "sip:"; a bare user part is in the home domain.
// Null for nothing or for text that cannot be a SIP user part.
export function callTarget(text, domain) {
  const target = (text || "").trim();
  if (!target) return null;
  if (/^(sips?|tel):\S+$/i.test(target)) return target;
  if (/^[^\s@<>"]+@[^\s@<>"]+$/.test(target)) return `sip:${target}`;
  if (/^[\w.!~*'()&=+$,;?/%-]+$/.test(target) && domain) return `sip:${target}@${domain}`;
  return null;
}

// "sip:user@host" of a JsSIP NameAddrHeader or URI.
function uriText(identity) {
  if (!identity) return "";
  const uri = identity.uri || identity;
  return uri && typeof uri.toString === "function" ? uri.toString() : String(identity);
}

// Who calls, as the network asserted it (TS 24.229: the P-Asserted-Identity
// the eP-CSCF of the caller set), else the From URI.
function caller(request) {
  const asserted = request.getHeader("P-Asserted-Identity");
  const match = asserted && /<([^>]+)>|^\s*(\S+)/.exec(asserted);
  return match ? match[1] || match[2] : uriText(request.from);
}

function why(event, local) {
  if (event.cause === "Terminated" || event.cause === "BYE") return local ? "hung up" : "the other side hung up";
  const response = event.message && event.message.status_code ? event.message : null;
  if (response) return `${response.status_code} ${response.reason_phrase}`;
  return String(event.cause || "ended").toLowerCase();
}

export class Calls {
  constructor({ audio, onState }) {
    this.audio = audio;
    this.onState = onState;
    this.session = null;
    this.ua = null;
  }

  // Follow the calls of a (new) JsSIP UA.
  attach(ua) {
    this.ua = ua;
    ua.on("newRTCSession", ({ session, originator, request }) => {
      if (originator !== "remote") return;
      if (this.session) {
        session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
        return;
      }
      this.follow(session);
      this.onState("incoming", caller(request));
    });
  }

  // An outgoing call to `target` (a SIP or tel URI).
  call(target) {
    if (!this.ua || this.session) return false;
    let session;
    try {
      session = this.ua.call(target, {
        mediaConstraints: AUDIO_ONLY,
        rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      });
    } catch (err) {
      this.onState("ended", `cannot call ${target}: ${err.message}`);
      return false;
    }
    this.follow(session);
    this.onState("calling", target);
    return true;
  }

  answer() {
    if (!this.session || this.session.direction !== "incoming" || this.session.isEstablished()) return;
    this.onState("answering", "");
    this.session.answer({ mediaConstraints: AUDIO_ONLY });
  }

  // Decline an incoming call (603), cancel an outgoing one, or hang up.
  hangUp() {
    const session = this.session;
    if (!session || session.isEnded()) return;
    this.localEnd = true;
    if (session.direction === "incoming" && !session.isEstablished()) {
      session.terminate({ status_code: 603, reason_phrase: "Decline" });
    } else {
      session.terminate();
    }
  }

  // The RTCPeerConnection of the call under way, if any.
  get connection() {
    return this.session ? this.session.connection : null;
  }

  follow(session) {
    this.session = session;
    this.localEnd = false;
    const peer = () => uriText(session.remote_identity);
    session.on("progress", (event) => {
      if (session.direction === "outgoing" && event.response && event.response.status_code === 180) {
        this.onState("calling", "ringing");
      }
    });
    session.on("confirmed", () => this.onState("in-call", peer()));
    session.on("peerconnection", ({ peerconnection }) => this.play(peerconnection));
    if (session.connection) this.play(session.connection);
    const over = (event) => {
      if (this.session !== session) return;
      this.session = null;
      this.audio.srcObject = null;
      const declined = this.localEnd && session.direction === "incoming" && event.cause !== "Terminated";
      this.onState("ended", declined ? "declined" : why(event, this.localEnd));
    };
    session.on("ended", over);
    session.on("failed", over);
  }

  play(connection) {
    connection.addEventListener("track", (event) => {
      this.audio.srcObject = event.streams[0] || new MediaStream([event.track]);
    });
  }

  // End the call under way (logging out, the UA stopping).
  close() {
    if (this.session) this.hangUp();
  }
}
