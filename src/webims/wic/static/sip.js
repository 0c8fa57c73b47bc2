// SIP over secure WebSocket (RFC 7118) towards the eP-CSCF, with JsSIP.
//
// TS 24.371 web authentication: every SIP request carries the access token
// in `Authorization: Bearer <token>` (RFC 8898); JsSIP's `authorization_jwt`
// puts the value it is given verbatim into that header of every request.  The
// UA registers the first IMPU of the token response (To = From = IMPU,
// Request-URI = the home domain, Contact with transport=ws, +sip.instance and
// reg-id, Via transport WSS with a .invalid host: JsSIP's defaults).
//
// The registration state is reported through onState(state, detail, status),
// state one of "connecting", "registering", "registered", "unregistered",
// "failed"; detail is the human reason of a failure, status the SIP status
// of a refused REGISTER (0 when there was no answer).

import JsSIP from "./build/jssip.js";

function responseText(response) {
  return response ? `${response.status_code} ${response.reason_phrase}` : "";
}

// "until <time>" from the expires parameter of a 200 OK's Contact.
function until(text) {
  const expires = /;\s*expires=(\d+)/i.exec(text || "");
  if (!expires) return "";
  const at = new Date(Date.now() + 1000 * Number(expires[1])).toLocaleTimeString();
  return `until ${at} (JsSIP refreshes it before then)`;
}

// JsSIP reports the first successful REGISTER only, not the later ones; the
// page wants to see the re-REGISTER after a token refresh succeed too, so
// every frame from the eP-CSCF is shown to `watch` before JsSIP parses it.
class WatchedSocket extends JsSIP.WebSocketInterface {
  constructor(url, watch) {
    super(url);
    this.watch = watch;
  }

  _onMessage(event) {
    this.watch(event.data);
    super._onMessage(event);
  }
}

export class SipLine {
  constructor({ url, impu, token, onState, instanceId, expires = 600 }) {
    this.url = url;
    this.onState = onState;
    this.stopped = false;
    this.reregistering = false;
    const socket = new WatchedSocket(url, (data) => this.watch(data));
    this.ua = new JsSIP.UA({
      sockets: [socket],
      uri: impu,
      authorization_jwt: `Bearer ${token}`,
      register: true,
      register_expires: expires,
      instance_id: instanceId,
      session_timers: false,
      user_agent: "webims-wic (JsSIP)",
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    this.ua.on("connecting", () => this.onState("connecting", url));
    this.ua.on("connected", () => this.onState("registering", ""));
    this.ua.on("disconnected", (event) => {
      if (this.stopped) return;
      const why = event && event.error ? `cannot reach ${url} (WebSocket failed; retrying)` : `connection to ${url} closed`;
      this.onState("failed", why);
    });
    this.ua.on("registered", (event) => {
      this.reregistering = false;
      this.onState("registered", until(event.response && event.response.getHeader("Contact")));
    });
    this.ua.on("unregistered", (event) => {
      this.onState("unregistered", responseText(event && event.response));
    });
    this.ua.on("registrationFailed", (event) => {
      this.reregistering = false;
      const text = responseText(event.response);
      const status = event.response ? event.response.status_code : 0;
      this.onState("failed", text ? `${event.cause} (${text})` : String(event.cause), status);
    });
  }

  // A 2xx to the REGISTER sent after a token refresh: registered again.
  watch(data) {
    if (this.stopped || !this.reregistering || typeof data !== "string") return;
    if (!/^SIP\/2\.0 2\d\d /.test(data) || !/\r\nCSeq:\s*\d+\s+REGISTER\r\n/i.test(data)) return;
    this.reregistering = false;
    this.onState("registered", `again with the refreshed token, ${until(data)}`);
  }

  start() {
    this.onState("connecting", this.url);
    this.ua.start();
  }

  // After a token refresh: the new token goes into every later request, and
  // a REGISTER now carries it to the network.
  reauthorise(token) {
    this.ua.set("authorization_jwt", `Bearer ${token}`);
    if (this.ua.isConnected()) {
      this.reregistering = true;
      this.onState("registering", "again, with the refreshed token");
      this.ua.register();
    }
  }

  // Unregister (when registered), then close the WebSocket.  Resolves once
  // the REGISTER with Expires: 0 is answered, or after `timeoutMs`.
  stop(timeoutMs = 2000) {
    this.stopped = true;
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.ua.stop();
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      if (this.ua.isRegistered()) {
        this.ua.once("unregistered", finish);
        this.ua.unregister();
      } else {
        finish();
      }
    });
  }
}
