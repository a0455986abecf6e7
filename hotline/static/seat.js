"use strict";
// The seat's desk. Everything comes from the API with the seat's token (kept in this tab only);
// text is inserted with textContent, never as HTML. The screen pop and the seat's own events come
// over a websocket (the token is its first message, never in the URL); the seat's view is also
// re-read every 2 s, so a lost event never leaves the page wrong for long. A transfer's progress
// (whoever started it: the seat, a supervisor) is pushed too (transfer.state); the desk asks for it
// (GET …/transfer) only once after its socket (re)connects, for a call already on the phone — events
// missed while it was away. A controller that does
// not answer: a banner, the desk greyed out (what it shows is from before); the next answer
// clears both. The phone keeps working without this page: *1 cancel, *3 three-way, hang up.

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const tokenInput = $("token");
tokenInput.value = sessionStorage.getItem("hotline-token") || "";

const desk = {
  me: null, // GET /api/v1/me
  loaded: false, // codes, units, destinations read for this token
  mine: null, // this seat's view (GET /api/v1/seats)
  callId: null, // the call on the phone now
  caseCallId: null, // the call the case form is for (kept after the call ends, until its case is in)
  caseId: "", // the case registered or linked for caseCallId
  entry: null, // the knowledge entry chosen to answer the caller directly
  pop: null, // the screen pop of caseCallId (its whole number: the seat's own call only)
  matterLabels: new Map(), // matter type id → label (desk codes)
  socket: null,
  reconnectDelay: 500,
  lost: false,
  lastUpdate: null,
  waiting: 0, // inbound callers waiting (回拨 is refused while any wait)
  // the transfer of the seat's call under way, as its last transfer.state event said (or the one
  // look after the socket (re)connected): {call_id, to, mode, state}; null: none
  consult: null,
  consultLook: false, // the socket (re)connected: look once for a transfer begun meanwhile
  transferEvents: 0, // transfer.state events seen: a look answered after a newer event is stale
};

class Unreachable extends Error {} // no answer from the controller (down, restarting, network)
class Refused extends Error {} // 401: the token is not accepted
class Missing extends Error {} // 404: this controller does not serve that part (not configured)
class Loading extends Error {} // 503 {loading: true}: the controller has just started and is still loading it

async function api(path, body, signal) {
  const init = { headers: { Authorization: "Bearer " + tokenInput.value }, cache: "no-store" };
  if (signal) init.signal = signal; // an AbortController's: a search replaced by a newer one
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try { response = await fetch(path, init); } catch (e) { throw new Unreachable(String(e.message || e)); }
  if (response.status === 502 || response.status === 504) throw new Unreachable("HTTP " + response.status);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) throw new Refused(data.error || "401");
  if (response.status === 404) throw new Missing(data.error || path + ": 404");
  if (response.status === 503 && data.loading) throw new Loading(data.error);
  if (!response.ok) throw new Error(data.error || path + ": " + response.status);
  return data;
}

// ---- what the desk says ------------------------------------------------------------------------

// One line that says where the desk stands now (never a leftover of an earlier state).
function status(text, bad) {
  const box = $("status");
  box.textContent = text;
  box.className = bad ? "bad" : "";
}

// The outcome of the last action (one of the two lines, the other cleared).
function say(text, bad) {
  $(bad ? "error" : "notice").textContent = text;
  $(bad ? "notice" : "error").textContent = "";
}

function connection(nowLost, why) {
  const banner = $("offline");
  banner.hidden = !nowLost;
  document.querySelector("main").classList.toggle("stale", nowLost);
  if (nowLost) {
    const since = desk.lastUpdate ? desk.lastUpdate.toLocaleTimeString("zh-CN", { hour12: false }) : "—";
    banner.textContent = `与控制器的连接已断开 Connection to the controller lost (${why}). `
      + `What the desk shows is from ${since}, not current. Retrying… (the phone keeps working)`;
  } else if (desk.lost) {
    say("已重新连接 reconnected", false);
  }
  desk.lost = nowLost;
}

async function act(run, done) {
  try {
    const result = await run();
    if (done) say(done, false);
    return result;
  } catch (e) {
    if (e instanceof Unreachable) connection(true, e.message);
    say(String(e.message || e), true);
    return null;
  } finally {
    refresh();
  }
}

// ---- small DOM helpers -------------------------------------------------------------------------

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function button(label, onClick, cls, available, reason) {
  const b = el("button", label, cls);
  b.type = "button";
  if (available === false) {
    b.disabled = true;
    b.classList.add("unavailable");
    b.title = "不可用 unavailable: " + (reason || "no trunk for it in config.yaml (a transfer there is refused)");
    b.textContent += " (不可用 unavailable)";
  }
  b.addEventListener("click", onClick);
  return b;
}

function option(value, label) {
  const o = el("option", label);
  o.value = value;
  return o;
}

function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString("zh-CN", { hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function fmtSeconds(s) {
  s = Math.max(0, Math.floor(s));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const STATE_LABELS = {
  logged_out: "已签出", not_ready: "小休", ready: "就绪", ringing: "振铃", on_call: "通话中", wrap_up: "话后处理",
};
const CATEGORY_LABELS = { consultation: "咨询", service_request: "求助", complaint: "投诉", report: "举报", suggestion: "建议" };
const matterLabel = (id) => desk.matterLabels.get(id) || id || "";

// ---- the seat's state --------------------------------------------------------------------------

function showSeat(mine) {
  desk.mine = mine;
  const badge = $("state");
  document.dispatchEvent(new CustomEvent("seat-state", { detail: mine || null })); // phone.js (browser phone)
  if (!mine) { badge.textContent = "not a seat token"; badge.dataset.state = "unknown"; return; }
  badge.dataset.state = mine.state;
  badge.textContent = `${STATE_LABELS[mine.state] || mine.state} ${mine.state === "not_ready" && mine.reason ? mine.reason : ""}`.trim();
  const current = mine.current;
  if (current && current.call_id !== desk.callId) startCase(current.call_id, current);
  desk.callId = current ? current.call_id : null;
  if (current) showCall(current);
  const due = Boolean(mine.disposition_due) || mine.state === "wrap_up";
  $("wrapup-panel").classList.toggle("alert", due);
  $("btn-disposition").disabled = !due;
  $("wrapup-note").textContent = mine.disposition_due ? "须选择处置结果后才能接听下一个来电 a disposition is due before the next call" : "";
}

function tick() {
  const mine = desk.mine;
  const since = mine && mine.since ? Date.parse(mine.since) : null;
  $("state-timer").textContent = since ? fmtSeconds((Date.now() - since) / 1000) : "";
  $("wrapup-timer").textContent = mine && mine.state === "wrap_up" && since ? fmtSeconds((Date.now() - since) / 1000) : "";
}

async function start() {
  desk.me = await api("/api/v1/me");
  $("who").textContent = "· " + (desk.me.seat || desk.me.name);
}

async function loadOnce() {
  // each part is optional: a controller without a units directory or knowledge base still serves calls
  const parts = [loadDestinations(), loadCodes(), loadUnits(), searchKnowledge()];
  const results = await Promise.allSettled(parts);
  for (const r of results) if (r.status === "rejected" && r.reason instanceof Unreachable) throw r.reason;
  desk.loaded = true;
  connectEvents();
}

async function refresh() {
  if (!tokenInput.value) { status("Enter your seat token.", true); return; }
  try {
    const reconnected = desk.lost;
    if (!desk.me) await start();
    if (!desk.me.seat) { status(`${desk.me.name} (${desk.me.role}) is not a seat token: enter a seat's token.`, true); return; }
    if (!desk.loaded || reconnected) await loadOnce(); // availability may have changed meanwhile
    const { seats } = await api("/api/v1/seats");
    connection(false);
    desk.lastUpdate = new Date();
    const mine = seats.find((s) => s.seat === desk.me.seat);
    showSeat(mine);
    if (mine) status(`坐席 seat ${mine.seat}: ${mine.state}${mine.current ? " — " + mine.current.phase : ""}`, false);
    await loadMissed();
    await showConsultation();
  } catch (e) {
    if (e instanceof Unreachable) { connection(true, e.message); return; }
    connection(false);
    if (e instanceof Refused) { desk.me = null; desk.loaded = false; status("This token is not accepted (401): check it and enter it again.", true); return; }
    status(String(e.message || e), true);
  }
}

const TRANSFER_OVER = { completed: "已转出 handed on", back_to_caller: "已回到来电 back to your caller", failed: "转接失败 failed", ended: "已结束 over" };

async function showConsultation() {
  if (desk.consultLook) { // once per (re)connected socket, only with a call on the phone
    desk.consultLook = false;
    const callId = desk.callId, seen = desk.transferEvents;
    let found = callId ? await api(`/api/v1/calls/${enc(callId)}/transfer`).catch(() => null) : null;
    if (seen !== desk.transferEvents) found = null; // an event came meanwhile: it is newer
    if (found && found.state !== "none") desk.consult = found;
    else if (found && desk.consult && desk.consult.call_id === callId) desk.consult = null;
  }
  if (desk.consult && desk.callId && desk.consult.call_id !== desk.callId) desk.consult = null; // another call now
  drawConsultation();
}

function drawConsultation() {
  const c = desk.consult;
  $("consult").textContent = c ? `${c.to}: ${c.state} (${c.mode})` : "无 none";
}

function onTransfer(event) {
  desk.transferEvents += 1;
  if (Object.hasOwn(TRANSFER_OVER, event.state)) {
    if (!desk.consult || desk.consult.call_id === event.call_id) desk.consult = null;
    say(`转接 ${event.to}: ${TRANSFER_OVER[event.state]}${event.status ? " (" + event.status + ")" : ""}`, event.state === "failed");
  } else if (event.mode !== "blind") {
    desk.consult = { call_id: event.call_id, to: event.to, mode: event.mode, state: event.state };
  } else {
    say(`转接 ${event.to}: 盲转 handed on blind`, false);
  }
  drawConsultation();
}

function seatAction(action, body) {
  if (!desk.me || !desk.me.seat) return;
  act(() => api(`/api/v1/seats/${enc(desk.me.seat)}/${action}`, body || {}), `${STATE_LABELS[action] || action}: ok`);
}

function pause() {
  const reason = $("pause-reason").value;
  seatAction("pause", reason ? { reason } : {});
}

function finishWrapup() {
  const code = $("disposition").value;
  if (!code) { say("请选择处置结果 choose a disposition", true); $("disposition").focus(); return; }
  seatAction("disposition", { code });
}

// ---- the call and the screen pop ----------------------------------------------------------------

function showCall(current) {
  const box = $("call");
  box.replaceChildren();
  const add = (k, v) => box.append(el("dt", k), el("dd", v ?? ""));
  if (!current) { add("—", "暂无来电 no call"); return; }
  const pop = desk.pop && desk.pop.call_id === current.call_id ? desk.pop : {};
  add("来电号码", current.caller_number || pop.caller_number || current.caller);
  if (!current.queue && pop.queue) add("队列", pop.queue);
  if (current.queue) add("队列", current.queue);
  if (current.phase) add("状态", current.phase === "ringing" ? "振铃 ringing" : current.phase === "talking" ? "通话中 talking" : current.phase);
  const tags = Object.entries(current.tags || {}).map(([k, v]) => `${k}=${v}`).join("  ");
  if (tags) add("标签", tags);
  if (current.handoff) {
    add("转自", `${current.handoff.from_platform} (坐席 ${current.handoff.seat || "IVR"})`);
    add("备注", current.handoff.note);
    add("路径", (current.handoff.ivr_path || []).join(" › "));
  }
}

function showHistory(history, error) {
  const box = $("history");
  box.replaceChildren();
  if (!history) { box.append(el("p", error ? `历史暂不可用 history unavailable: ${error}` : "—", "muted")); return; }
  const open = history.open_cases || [];
  const calls = history.calls || [];
  if (!open.length && !calls.length) { box.append(el("p", "近90天无来电、无未办结工单 no earlier calls or open cases", "muted")); return; }
  if (open.length) {
    box.append(el("h3", `未办结工单 open cases (${open.length})`));
    const list = el("ul", null, "open-cases");
    for (const c of open) {
      const item = el("li");
      item.append(el("strong", c.id), el("span", ` · ${CATEGORY_LABELS[c.category] || c.category} · ${matterLabel(c.matter_type)} · ${c.state} · 办结时限 ${fmtTime(c.resolve_by)}`));
      if (c.request) item.append(el("div", c.request, "muted"));
      item.append(button("关联此工单 link this call (repeat request)", () => linkCase(c.id), "link-case"));
      item.append(button("回拨 call back", () => callBack({ ticket_id: c.id }), "callback", !desk.waiting, "callers are waiting: inbound first"));
      list.append(item);
    }
    box.append(list);
  }
  if (calls.length) {
    box.append(el("h3", `近90天来电 earlier calls (${calls.length})`));
    const list = el("ul");
    for (const c of calls) {
      const parts = [fmtTime(c.started_at), c.outcome || c.state, c.seat ? `坐席 ${c.seat}` : "", c.case_id ? `工单 ${c.case_id}` : ""];
      list.append(el("li", parts.filter(Boolean).join(" · ")));
    }
    box.append(list);
  }
}

// ---- missed calls: 回拨 (the seat's phone rings first, then the citizen's) --------------------------

async function loadMissed() {
  let data;
  try {
    data = await api(`/api/v1/seats/${enc(desk.me.seat)}/callbacks`);
  } catch (e) {
    if (e instanceof Missing) { $("missed-note").textContent = "此平台未启用回拨 callbacks are not served here"; return; }
    if (e instanceof Unreachable || e instanceof Refused) throw e;
    $("missed-note").textContent = `未接来电暂不可用 the list is unavailable: ${e.message || e}`; // e.g. Redis away
    return;
  }
  desk.waiting = data.inbound_waiting;
  const busy = data.in_progress.length > 0;
  const note = data.inbound_waiting
    ? `有 ${data.inbound_waiting} 位来电者在排队：先接来电 callers are waiting: inbound first`
    : busy ? `回拨中 calling ${data.in_progress[0].caller} (${data.in_progress[0].state})` : data.blended ? "空闲时自动回拨 blended: offered when idle" : "";
  $("missed-note").textContent = note;
  const list = $("missed");
  list.replaceChildren();
  if (!data.callbacks.length) { list.append(el("li", "无未接来电 none to call back", "muted")); return; }
  for (const c of data.callbacks) {
    const tries = c.tries ? ` · 已回拨 ${c.tries} 次 tried (${c.last_try_result})` : "";
    const item = el("li", `${c.caller} · 未接 ${c.attempts} 次 missed · ${fmtTime(c.last_missed_at)}${tries} `);
    const why = data.inbound_waiting ? "callers are waiting: inbound first" : "a callback is in progress";
    item.append(button("回拨 call back", () => callBack({ entry: c.entry }), "callback", !data.inbound_waiting && !busy, why));
    list.append(item);
  }
}

function callBack(body) {
  if (!desk.me || !desk.me.seat) return;
  act(() => api(`/api/v1/seats/${enc(desk.me.seat)}/callback`, body), "回拨：您的话机正在振铃 your phone rings: answer it");
}

function onSeatEvent(event) {
  switch (event.type) {
    case "call.offered":
      say(`来电振铃 incoming call ${event.caller_number || event.caller || ""}`, false);
      if (event.call_id === desk.caseCallId && !desk.pop) desk.caseCallId = null; // the seat view was first: pop now
      startCase(event.call_id, event);
      showCall({ ...event, phase: "ringing" });
      break;
    case "call.answered":
      if (event.call_id && event.call_id !== desk.caseCallId) startCase(event.call_id, event); // late binding: another caller
      refresh();
      break;
    case "case.registered":
    case "case.linked":
      if (event.call_id === desk.caseCallId) showCaseResult(event.ticket_id, event.type === "case.linked");
      break;
    case "transfer.state":
      onTransfer(event);
      break;
    case "hello":
      desk.consultLook = true; // (re)connected: a transfer may have begun while the socket was away
      break;
    case "callback.offered":
      say(`回拨 calling back ${event.caller || ""}: 请接听话机 answer your phone, then the citizen is rung`, false);
      break;
    case "callback.ended":
      say(event.reached ? "回拨已接通 the citizen answered: off the list" : `回拨未接通 not reached (${event.result}): kept on the list`, !event.reached);
      refresh();
      break;
    case "call.ended":
      if (desk.consult && desk.consult.call_id === event.call_id) { desk.consult = null; drawConsultation(); }
      refresh();
      break;
    case "seat.state":
    case "offer.missed":
      refresh();
      break;
    default:
      break;
  }
}

function connectEvents() {
  if (!desk.me || !desk.me.seat || desk.socket) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/seats/${enc(desk.me.seat)}/events`);
  desk.socket = socket;
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ token: tokenInput.value }));
  });
  socket.addEventListener("message", (message) => {
    desk.reconnectDelay = 500; // accepted (a socket refused at once, e.g. 4429, keeps backing off)
    let event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    onSeatEvent(event);
  });
  socket.addEventListener("close", () => {
    if (desk.socket !== socket) return; // replaced (a new token)
    desk.socket = null;
    if (!desk.me) return;
    setTimeout(connectEvents, desk.reconnectDelay);
    desk.reconnectDelay = Math.min(desk.reconnectDelay * 2, 10000);
  });
}

// ---- the case ------------------------------------------------------------------------------------

function startCase(callId, pop) {
  if (!callId || desk.caseCallId === callId) return;
  desk.caseCallId = callId;
  desk.pop = pop && pop.caller_number ? pop : null;
  desk.caseId = (pop && pop.case_id) || "";
  desk.entry = null;
  $("case-form").reset();
  $("kb-chosen").textContent = "";
  $("case-result").textContent = "";
  $("btn-case").disabled = false;
  $("case-for").textContent = `来电 call ${callId}`;
  if (pop && "history" in pop) showHistory(pop.history, pop.history_error);
  else api(`/api/v1/calls/${enc(callId)}/history`).then((h) => showHistory(h)).catch((e) => showHistory(null, e.message));
  if (desk.caseId) showCaseResult(desk.caseId, false);
}

function showCaseResult(ticketId, linked) {
  desk.caseId = ticketId;
  $("case-result").replaceChildren(el("span", `${linked ? "已关联" : "已登记"} 工单号 ${ticketId}`, "case-id"));
  $("btn-case").disabled = true;
  for (const b of document.querySelectorAll(".link-case")) b.disabled = true;
}

async function submitCase(event) {
  if (event) event.preventDefault();
  if (!desk.caseCallId) { say("没有可登记的来电 no call to register", true); return; }
  if (desk.caseId) { say(`此来电已有工单 this call already has case ${desk.caseId}`, true); return; }
  const outcome = document.querySelector("input[name=outcome]:checked").value;
  const body = {
    category: document.querySelector("input[name=category]:checked").value,
    matter_type: $("matter-type").value,
    location: $("location").value.trim(),
    request: $("request").value.trim(),
    unit: $("unit").value,
    outcome,
  };
  if (!body.request) { say("请填写诉求内容 write down the citizen's request", true); $("request").focus(); return; }
  if (!body.unit) { say("请选择承办单位 choose the responsible unit", true); $("unit").focus(); return; }
  if (outcome === "answered") {
    if (!desk.entry) { say("直接答复须选择所用的知识库条目 choose the knowledge entry you answered from", true); $("kb-query").focus(); return; }
    body.knowledge_entry = desk.entry.id;
  }
  const result = await act(() => api(`/api/v1/calls/${enc(desk.caseCallId)}/case`, body), null);
  if (result) {
    showCaseResult(result.case_id, false);
    say(`工单已登记 case registered: ${result.case_id}`, false);
    selectDisposition(outcome === "answered" ? "answered_directly" : "dispatched");
  }
}

async function linkCase(ticketId) {
  if (!desk.caseCallId) return;
  const result = await act(() => api(`/api/v1/calls/${enc(desk.caseCallId)}/link`, { ticket_id: ticketId }), `已关联工单 linked to ${ticketId}`);
  if (result) {
    showCaseResult(ticketId, true);
    selectDisposition("linked_to_open_case");
  }
}

function selectDisposition(code) {
  const select = $("disposition");
  if ([...select.options].some((o) => o.value === code)) select.value = code;
}

// ---- the knowledge base, the units, the codes, the destinations ------------------------------------

// The newest search wins: starting one aborts the one still on its way (its answer, should it come
// anyway, is dropped). A 503 "loading" (a controller that has just started) is no error: a calm
// note, and the same search asked again by itself after 0.5 s, 1 s, 2 s, 4 s, then every 5 s until
// the base has loaded (it always ends: loaded, or empty with the reason in its status) — unless
// the seat searched anew meanwhile (typing or a matter type cancels the pending try).
let kbTimer = null; // the next search: a debounced keystroke, or the next try while the base loads
let kbSearch = null; // the AbortController of the search on its way
let kbTries = 0; // "loading" answers in a row for this search
const KB_RETRY_MS = { first: 500, most: 5000 };

async function searchKnowledge(again = false) {
  clearTimeout(kbTimer);
  if (kbSearch) kbSearch.abort();
  const mine = new AbortController();
  kbSearch = mine;
  if (!again) kbTries = 0;
  const q = $("kb-query").value.trim();
  const matter = $("matter-type").value;
  const params = new URLSearchParams({ limit: "10" });
  if (q) params.set("q", q);
  else if (matter) params.set("matter_type", matter);
  let entries;
  try {
    ({ entries } = await api(`/api/v1/knowledge?${params}`, undefined, mine.signal));
  } catch (e) {
    if (kbSearch !== mine) return; // replaced by a newer search (this one aborted): that one shows
    kbSearch = null;
    if (e instanceof Missing) { $("kb-results").replaceChildren(el("li", "本平台未配置知识库 no knowledge base here", "muted")); return; }
    if (e instanceof Loading) {
      $("kb-results").replaceChildren(el("li", "知识库正在加载… knowledge base loading", "muted kb-loading"));
      const wait = Math.min(KB_RETRY_MS.first * 2 ** kbTries, KB_RETRY_MS.most);
      kbTries += 1;
      kbTimer = setTimeout(() => searchKnowledge(true).catch((err) => say(String(err.message || err), true)), wait);
      return;
    }
    throw e;
  }
  if (kbSearch !== mine) return;
  kbSearch = null;
  const list = $("kb-results");
  list.replaceChildren();
  for (const entry of entries) {
    const item = el("li");
    item.dataset.entry = entry.id;
    item.append(el("strong", entry.question));
    item.append(el("div", entry.answer, "answer"));
    item.append(el("div", [matterLabel(entry.matter_type), entry.unit, entry.uses ? `已用 ${entry.uses} 次` : ""].filter(Boolean).join(" · "), "muted"));
    item.append(button("用此条答复 answer with this", () => chooseEntry(entry), "use-entry"));
    list.append(item);
  }
  if (!entries.length) list.append(el("li", "没有找到 nothing found", "muted"));
}

async function chooseEntry(entry) {
  desk.entry = entry;
  document.querySelector("input[name=outcome][value=answered]").checked = true;
  $("kb-chosen").textContent = `知识库 knowledge: ${entry.question}`;
  if (!$("matter-type").value && entry.matter_type) $("matter-type").value = entry.matter_type;
  await loadUnits();
  if (entry.unit && [...$("unit").options].some((o) => o.value === entry.unit)) $("unit").value = entry.unit;
  if (!$("request").value) $("request").focus();
}

async function loadUnits() {
  const matter = $("matter-type").value;
  const params = new URLSearchParams();
  if (matter) params.set("matter_type", matter);
  let units;
  try {
    ({ units } = await api(`/api/v1/units?${params}`));
  } catch (e) {
    if (e instanceof Missing) return; // no units directory on this controller
    throw e;
  }
  const select = $("unit");
  const chosen = select.value;
  select.replaceChildren(option("", "— 请选择 —"), ...units.map((u) => option(u.id, u.name)));
  if (units.some((u) => u.id === chosen)) select.value = chosen;
}

async function loadCodes() {
  let codes;
  try {
    codes = await api("/api/v1/desk/codes");
  } catch (e) {
    if (e instanceof Missing) return; // no desk codes on this controller: pauses without a reason
    throw e;
  }
  $("disposition").replaceChildren(option("", "— 处置结果 —"), ...codes.dispositions.map((d) => option(d.id, d.label)));
  $("pause-reason").replaceChildren(...codes.pause_reasons.map((p) => option(p.id, p.label)));
  desk.matterLabels = new Map(codes.matter_types.map((m) => [m.id, m.label]));
  $("matter-type").replaceChildren(option("", "— 请选择 —"), ...codes.matter_types.map((m) => option(m.id, m.label)));
}

async function loadDestinations() {
  const { destinations } = await api("/api/v1/destinations");
  const emergency = $("emergency");
  const others = $("destinations");
  emergency.replaceChildren();
  others.replaceChildren();
  for (const d of destinations) {
    if (d.kind === "emergency") {
      const mode = d.modes.includes("three_way") ? "three_way" : "blind";
      emergency.append(button(d.name || d.number, () => transfer(d.to, mode), "emergency", d.available, d.unavailable_reason));
      continue;
    }
    const row = el("div", `${d.name || d.to} `);
    for (const mode of d.modes) row.append(button(mode, () => transfer(d.to, mode), "", d.available, d.unavailable_reason));
    others.append(row);
  }
}

function transfer(to, mode) {
  if (!desk.callId) { say("没有可转接的来电 no call to hand on", true); return; }
  const callId = desk.callId;
  act(async () => {
    return api(`/api/v1/calls/${enc(callId)}/transfer`, { to, mode, note: $("note").value }); // its progress: transfer.state events
  }, `${to}: ${mode} started`);
}

// ---- wiring and keys -------------------------------------------------------------------------------

tokenInput.addEventListener("change", () => {
  sessionStorage.setItem("hotline-token", tokenInput.value);
  desk.me = null;
  desk.loaded = false;
  desk.consult = null;
  const old = desk.socket;
  desk.socket = null;
  if (old) old.close();
  say("", false);
  refresh();
});
for (const b of document.querySelectorAll("[data-act]")) b.addEventListener("click", () => seatAction(b.dataset.act));
for (const b of document.querySelectorAll("[data-consult]")) {
  b.addEventListener("click", () => act(() => api(`/api/v1/calls/${enc(desk.callId)}/transfer/${b.dataset.consult}`, {}), b.dataset.consult));
}
$("btn-pause").addEventListener("click", pause);
$("btn-disposition").addEventListener("click", finishWrapup);
$("case-form").addEventListener("submit", submitCase);
$("kb-query").addEventListener("input", () => {
  clearTimeout(kbTimer); // a pending try while the base loads is for the words before these
  if (kbSearch) { kbSearch.abort(); kbSearch = null; } // and so is a search on its way
  kbTimer = setTimeout(() => searchKnowledge().catch((e) => say(String(e.message || e), true)), 200);
});
$("matter-type").addEventListener("change", () => {
  loadUnits().catch((e) => say(String(e.message || e), true));
  if (!$("kb-query").value) searchKnowledge().catch((e) => say(String(e.message || e), true));
});

document.addEventListener("keydown", (event) => {
  if (event.key === "F2") { event.preventDefault(); seatAction("ready"); }
  else if (event.key === "F3") { event.preventDefault(); pause(); }
  else if (event.key === "F4") { event.preventDefault(); finishWrapup(); }
  else if (event.ctrlKey && event.key.toLowerCase() === "k") { event.preventDefault(); $("kb-query").focus(); $("kb-query").select(); }
  else if (event.ctrlKey && event.key === "Enter") { event.preventDefault(); submitCase(null); }
  else if (event.altKey && /^[1-5]$/.test(event.key)) {
    event.preventDefault();
    document.querySelectorAll("input[name=category]")[Number(event.key) - 1].checked = true;
  }
});

refresh();
setInterval(refresh, 2000);
setInterval(tick, 1000);
