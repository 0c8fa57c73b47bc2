// SIP over secure WebSocket (RFC 7118) towards the eP-CSCF, with JsSIP.
//
// TS 24.371 web authentication: every SIP request carries the access token
// in `Authorization: Bearer <token>` (RFC 8898); JsSIP's `authorization_jwt`
// puts the value it is given verbatim into that header of every request.  The
// UA registers the first IMPU of the token response (To = From = IMPU,
// Request-URI = the home domain, Contact with transport=ws, +sip.instance and
// reg-id, Via transport WSS with a .invalid host: JsSIP's defaults).
//
// After the initial registration the UA subscribes to the reg event package
// for its IMPU (TS 24.229 5.1.1.3, RFC 3680; SPEC §2.6): Request-URI = To =
// From = the IMPU, Event: reg, Accept: application/reginfo+xml, Expires:
// 600000; the eP-CSCF routes it by the Service-Route to the S-CSCF, and the
// NOTIFYs come back in the record-routed dialog.  What a NOTIFY says of this
// UA's contact decides (TS 24.229 5.1.1.7; SPEC §9.4 14):
//   deactivated, expired -- the registration is gone but may be made again:
//                           a fresh initial registration, with the token
//                           freshToken() gives (it may refresh it first),
//                           then a new subscription;
//   rejected             -- gone for good: no REGISTER any more, the UA stops;
//   unregistered         -- removed by a REGISTER of the user elsewhere: no
//                           registration fights it, the UA stops.
// Logging out ends the subscription (SUBSCRIBE Expires: 0) before the
// REGISTER with Expires: 0.
//
// The registration state is reported through onState(state, detail, status),
// state one of "connecting", "registering", "registered", "unregistered",
// "deregistered" (by the network; detail is the reg event's event), or
// "failed"; detail is the human reason of a failure, status the SIP status
// of a refused REGISTER (0 when there was no answer).

import JsSIP from "./build/jssip.js";

const REGINFO = "application/reginfo+xml";
// SPEC §2.6: the WIC asks for as long as the S-CSCF grants (the registration's).
const REG_EVENT_EXPIRES = 600000;
// Events of a terminated contact (RFC 3680 §5.1.2) that allow registering again.
const REREGISTER_EVENTS = new Set(["deactivated", "expired"]);

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

// "user@host" of a SIP URI, the host in lower case; null for anything else.
function userHost(text) {
  const match = /^\s*<?sips?:([^@;>?]+)@([^;:>?]+)/i.exec(text || "");
  return match ? `${match[1]}@${match[2].toLowerCase()}` : null;
}

// What a reginfo document (RFC 3680 §5.3) says happened to `contact` (a
// Contact URI) registered for `impu`: the event of its terminated contact
// element ("deactivated", "rejected", ...), "deactivated" when the IMPU's
// whole registration is terminated without listing it, null when it is
// still registered, the document names neither, or cannot be read.
export function contactEvent(xml, impu, contact) {
  const doc = new DOMParser().parseFromString(xml, "application/xml");
  if (doc.getElementsByTagName("parsererror").length > 0) return null;
  const me = userHost(contact);
  for (const registration of doc.getElementsByTagNameNS("*", "registration")) {
    if ((registration.getAttribute("aor") || "").trim() !== impu) continue;
    const mine = [...registration.getElementsByTagNameNS("*", "contact")].filter((element) => {
      const uri = element.getElementsByTagNameNS("*", "uri")[0];
      return uri && userHost(uri.textContent) === me;
    });
    if (mine.some((element) => element.getAttribute("state") === "active")) return null;
    if (mine.length > 0) return mine[0].getAttribute("event") || "deactivated";
    if (registration.getAttribute("state") === "terminated") return "deactivated";
  }
  return null;
}

export class SipLine {
  constructor({ url, impu, token, onState, instanceId, freshToken, expires = 600 }) {
    this.url = url;
    this.impu = impu;
    this.onState = onState;
    // Resolves to the token for a fresh initial registration (null: give up).
    this.freshToken = freshToken || (async () => null);
    this.stopped = false;
    this.reregistering = false;
    // A fresh initial registration after the network's deregistration.
    this.recovering = false;
    // The reg event subscription (a JsSIP Subscriber), while there is one.
    this.subscriber = null;
    // Set once the network ended the registration for good.
    this.networkEnded = false;
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
      this.subscribeRegEvent();
    });
    this.ua.on("unregistered", (event) => {
      if (this.networkEnded) return; // shown as "deregistered" already
      this.onState("unregistered", responseText(event && event.response));
    });
    this.ua.on("registrationFailed", (event) => {
      this.reregistering = false;
      this.recovering = false;
      const text = responseText(event.response);
      const status = event.response ? event.response.status_code : 0;
      this.onState("failed", text ? `${event.cause} (${text})` : String(event.cause), status);
    });
  }

  // A 2xx to the REGISTER sent after a token refresh, or to the fresh
  // initial registration after the network's deregistration: registered again.
  watch(data) {
    if (this.stopped || !this.reregistering || typeof data !== "string") return;
    if (!/^SIP\/2\.0 2\d\d /.test(data) || !/\r\nCSeq:\s*\d+\s+REGISTER\r\n/i.test(data)) return;
    this.reregistering = false;
    if (this.recovering) {
      this.recovering = false;
      this.onState("registered", `again after the network's deregistration, ${until(data)}`);
    } else {
      this.onState("registered", `again with the refreshed token, ${until(data)}`);
    }
    // A new subscription when there is none (after the network's
    // deregistration, or a refused one); JsSIP takes the 200 after this.
    setTimeout(() => this.subscribeRegEvent(), 0);
  }

  // SPEC §2.6: the reg event subscription for the IMPU, once per registration.
  subscribeRegEvent() {
    if (this.stopped || this.subscriber) return;
    // Request-URI and To the IMPU, From the UA's URI (the same IMPU).
    const subscriber = this.ua.subscribe(this.impu, "reg", REGINFO, { expires: REG_EVENT_EXPIRES });
    this.subscriber = subscriber;
    subscriber.on("notify", (isFinal, request, body, contentType) => {
      if (/^application\/reginfo\+xml\b/i.test(contentType || "")) this.regInfo(body);
    });
    subscriber.on("terminated", (code, reason) => {
      if (this.subscriber !== subscriber) return;
      this.subscriber = null;
      // RFC 6665 §4.1.3: a subscription the notifier ended while the
      // registration lives on (it timed out) is made again; a refused
      // SUBSCRIBE is not retried.
      const final = code === subscriber.C.FINAL_NOTIFY_RECEIVED;
      if (final && (reason === "timeout" || reason === "deactivated")) {
        setTimeout(() => {
          if (!this.recovering && this.ua.isRegistered()) this.subscribeRegEvent();
        }, 1000);
      }
    });
    subscriber.subscribe();
  }

  // A reginfo document of the subscription: act on what it says of us.
  regInfo(body) {
    if (this.stopped || this.recovering) return;
    const event = contactEvent(body, this.impu, this.ua.contact.uri.toString());
    if (event === null) return;
    if (REREGISTER_EVENTS.has(event)) {
      this.registerAfresh(event);
    } else {
      this.end(event);
    }
  }

  // TS 24.229 5.1.1.7 / SPEC §9.4 14 (deactivated): a fresh initial
  // registration, with a token good for it.
  async registerAfresh(event) {
    this.recovering = true;
    this.onState("deregistered", event);
    this.onState("registering", `again: deregistered by the network (${event})`);
    let token = null;
    try {
      token = await this.freshToken();
    } catch {
      token = null;
    }
    if (this.stopped) return;
    if (!token) {
      this.recovering = false;
      this.onState("failed", "deregistered by the network, and no token to register again");
      return;
    }
    this.ua.set("authorization_jwt", `Bearer ${token}`);
    this.reregistering = true;
    this.ua.register();
  }

  // rejected (SPEC §9.4 14), unregistered: the registration is over and
  // stays so.  JsSIP forgets it without an un-REGISTER (the network has none
  // left), then the UA stops: no refresh, no REGISTER on a reconnection.
  end(event) {
    this.stopped = true;
    this.networkEnded = true;
    this.ua.registrator().onTransportClosed();
    this.ua.stop();
    this.onState("deregistered", event);
  }

  start() {
    this.onState("connecting", this.url);
    this.ua.start();
  }

  // After a token refresh: the new token goes into every later request, and
  // a REGISTER now carries it to the network.
  reauthorise(token) {
    if (this.stopped) return;
    this.ua.set("authorization_jwt", `Bearer ${token}`);
    // A fresh registration under way takes the new token with it.
    if (this.recovering) return;
    if (this.ua.isConnected()) {
      this.reregistering = true;
      this.onState("registering", "again, with the refreshed token");
      this.ua.register();
    }
  }

  // End the reg event subscription: SUBSCRIBE with Expires: 0, done at its
  // final NOTIFY (RFC 6665 §4.1.2.3) or after `timeoutMs`.
  unsubscribe(timeoutMs) {
    const subscriber = this.subscriber;
    this.subscriber = null;
    const C = subscriber && subscriber.C;
    if (!subscriber || subscriber.state === C.STATE_INIT || subscriber.state === C.STATE_TERMINATED) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      subscriber.once("terminated", () => {
        clearTimeout(timer);
        resolve();
      });
      subscriber.terminate();
    });
  }

  // Unsubscribe, unregister (when registered), then close the WebSocket.
  // Resolves once the REGISTER with Expires: 0 is answered, or after `timeoutMs`.
  async stop(timeoutMs = 2000) {
    const ended = this.stopped;
    this.stopped = true;
    if (!ended) await this.unsubscribe(timeoutMs / 2);
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
