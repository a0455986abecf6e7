"use strict";
// The seat's phone in the browser (seats[].phone: browser in config.yaml): JsSIP (npm, served at
// /static/vendor/jssip.min.js) registers as the seat over Asterisk's secure websocket, rings on an
// offer, answers, hangs up, mutes, holds and sends DTMF (RFC 4733). The settings, the seat's SIP
// password among them, come from GET /api/v1/seats/{seat}/phone with the seat's own token and stay
// in this page's memory. A phone that cannot take calls (microphone blocked, password refused,
// websocket down) says so and puts a ready seat on pause: the ACD offers it nothing it cannot answer.
(() => {
  const $ = (id) => document.getElementById(id);
  const phone = {
    seat: null, // the seat whose settings were read
    settings: null,
    ua: null,
    session: null, // the call on this phone (ringing or talking)
    problem: "", // why the phone cannot take calls now ("" when it can)
    registered: false,
    seatState: null,
    muted: false,
    held: false,
  };
  const audio = new Audio();
  audio.autoplay = true;

  function show(text, bad) {
    const line = $("phone-status");
    line.textContent = text;
    line.className = bad ? "bad" : "";
  }

  function buttons() {
    const s = phone.session;
    const ringing = Boolean(s && s.direction === "incoming" && !s.isEstablished() && !s.isEnded());
    const talking = Boolean(s && s.isEstablished() && !s.isEnded());
    $("phone-answer").disabled = !ringing;
    $("phone-hangup").disabled = !(ringing || talking);
    $("phone-mute").disabled = !talking;
    $("phone-hold").disabled = !talking;
    $("phone-mute").textContent = phone.muted ? "取消静音 unmute" : "静音 mute";
    $("phone-hold").textContent = phone.held ? "恢复 resume" : "保持 hold";
    for (const key of document.querySelectorAll("#phone-keys button")) key.disabled = !talking;
    $("phone-panel").classList.toggle("alert", ringing);
  }

  // A phone that cannot answer must not be offered calls: a ready seat is paused (its own token).
  async function cannotTakeCalls(why) {
    phone.problem = why;
    show(why, true);
    if (phone.seatState === "ready" && phone.seat) {
      await fetch(`/api/v1/seats/${encodeURIComponent(phone.seat)}/pause`, {
        method: "POST",
        headers: { Authorization: "Bearer " + $("token").value, "Content-Type": "application/json" },
        body: "{}",
      }).catch(() => {});
    }
  }

  async function microphone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return "此页面不能使用麦克风 no microphone here: open the desk over https (or on this machine)";
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      for (const track of stream.getTracks()) track.stop();
      return "";
    } catch (e) {
      if (e && (e.name === "NotAllowedError" || e.name === "SecurityError")) {
        return "麦克风被浏览器禁止 microphone blocked: allow it for this site in the browser, then reload the desk. No calls are offered until then.";
      }
      return `没有可用的麦克风 no usable microphone (${e && e.name ? e.name : e}): plug one in, then reload the desk.`;
    }
  }

  function callerOf(session) {
    const who = session.remote_identity;
    const number = who && who.uri ? who.uri.user : "";
    const name = who && who.display_name && who.display_name !== number ? ` ${who.display_name}` : "";
    return `${number}${name}`.trim() || "unknown";
  }

  function track(session) {
    phone.session = session;
    phone.muted = false;
    phone.held = false;
    const caller = callerOf(session);
    $("phone-caller").textContent = caller;
    show(`来电振铃 ringing: ${caller}`, false);
    session.on("peerconnection", (e) => {
      e.peerconnection.addEventListener("track", (t) => { audio.srcObject = t.streams[0]; });
    });
    session.on("confirmed", () => { show(`通话中 talking: ${caller}`, false); buttons(); });
    session.on("hold", () => { phone.held = true; buttons(); });
    session.on("unhold", () => { phone.held = false; buttons(); });
    const over = (e) => {
      if (phone.session === session) phone.session = null;
      $("phone-caller").textContent = "—";
      audio.srcObject = null;
      if (!phone.problem) show(`已挂断 call ended (${e.cause || "ok"}) · 已注册 registered as ${phone.seat}`, false);
      buttons();
    };
    session.on("ended", over);
    session.on("failed", over);
    buttons();
  }

  function register(settings) {
    if (typeof JsSIP === "undefined") {
      cannotTakeCalls("电话组件未安装 the phone library is missing on the controller (run make pages): no calls can be taken here");
      return;
    }
    const socket = new JsSIP.WebSocketInterface(settings.websocket_url);
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: settings.sip_uri,
      authorization_user: settings.authorization_user,
      password: settings.password,
      display_name: settings.display_name,
      register: true,
      register_expires: 120,
      session_timers: false,
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 10,
      user_agent: "hotline12345-seat-desk",
    });
    phone.ua = ua;
    ua.on("connected", () => show("已连接，正在注册 connected, registering…", false));
    ua.on("disconnected", () => {
      phone.registered = false;
      if (phone.session && !phone.session.isEnded()) phone.session.terminate(); // its signalling is gone
      cannotTakeCalls("电话连接断开 phone connection (websocket) lost: reconnecting… The seat is paused; press 就绪 once it is registered again.");
    });
    ua.on("registered", () => {
      phone.registered = true;
      phone.problem = "";
      show(`已注册 registered as ${phone.seat}: calls ring here`, false);
    });
    ua.on("unregistered", () => { phone.registered = false; });
    ua.on("registrationFailed", (e) => {
      phone.registered = false;
      const code = e.response ? e.response.status_code : 0;
      if (code === 401 || code === 403 || e.cause === JsSIP.C.causes.AUTHENTICATION_ERROR) {
        cannotTakeCalls(`注册被拒绝 registration refused (${code || e.cause}): wrong SIP password for seat ${phone.seat}. Ask an administrator to check seats[].secret.`);
        ua.stop(); // the same password would only be refused again
      } else {
        cannotTakeCalls(`注册失败 registration failed (${code || e.cause}): retrying…`);
      }
    });
    ua.on("newRTCSession", (e) => {
      if (e.originator !== "remote") return;
      if (phone.session && !phone.session.isEnded()) { e.session.terminate({ status_code: 486 }); return; }
      track(e.session);
    });
    show("正在连接 connecting to " + settings.websocket_url + " …", false);
    ua.start();
  }

  async function setUp(seat) {
    phone.seat = seat;
    const response = await fetch(`/api/v1/seats/${encodeURIComponent(seat)}/phone`, {
      headers: { Authorization: "Bearer " + $("token").value }, cache: "no-store",
    });
    if (!response.ok) { phone.seat = null; return; } // retried with the next state
    const settings = await response.json();
    if (settings.phone !== "browser") { $("phone-panel").hidden = true; return; }
    phone.settings = settings;
    $("phone-panel").hidden = false;
    show("检查麦克风 checking the microphone…", false);
    const blocked = await microphone();
    if (blocked) { cannotTakeCalls(blocked); return; }
    register(settings);
  }

  // seat.js tells each state it reads (every 2 s and on events)
  document.addEventListener("seat-state", (event) => {
    const mine = event.detail;
    if (!mine) return;
    phone.seatState = mine.state;
    if (phone.seat === null) setUp(mine.seat).catch((e) => show(String(e.message || e), true));
    else if (phone.problem && mine.state === "ready") cannotTakeCalls(phone.problem);
  });

  $("phone-answer").addEventListener("click", () => {
    const s = phone.session;
    if (!s) return;
    const ice = (phone.settings.ice_servers || []).map((url) => ({ urls: url }));
    s.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: ice } });
  });
  $("phone-hangup").addEventListener("click", () => { if (phone.session) phone.session.terminate(); });
  $("phone-mute").addEventListener("click", () => {
    if (!phone.session) return;
    if (phone.muted) phone.session.unmute({ audio: true }); else phone.session.mute({ audio: true });
    phone.muted = !phone.muted;
    buttons();
  });
  $("phone-hold").addEventListener("click", () => {
    if (!phone.session) return;
    if (phone.held) phone.session.unhold(); else phone.session.hold();
  });
  for (const key of document.querySelectorAll("#phone-keys button")) {
    key.addEventListener("click", () => { if (phone.session) phone.session.sendDTMF(key.dataset.key, { transportType: "RFC2833" }); });
  }
  // for tests and the curious: what the phone is doing, without the password
  window.seatPhone = {
    get registered() { return phone.registered; },
    get problem() { return phone.problem; },
    get inCall() { return Boolean(phone.session && phone.session.isEstablished() && !phone.session.isEnded()); },
    // the socket closes under JsSIP as on a network failure (it reconnects by itself)
    dropWebsocket() { if (phone.ua) phone.ua._transport.socket._ws.close(); },
  };
  buttons();
})();
