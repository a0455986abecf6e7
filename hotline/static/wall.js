// The wallboard (大屏). The controller pushes a board over a websocket (GET /api/v1/wallboard;
// the supervisor's token is the socket's first message, never in the URL). No polling: if the
// controller goes away, a banner says so, the figures are greyed out (they are old) and the
// page reconnects by itself. Everything is written with textContent (no HTML from data).
"use strict";

const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = sessionStorage.getItem("hotline-token") || "";
const wall = { socket: null, delay: 500, lost: false, boards: 0, refused: false };
const FIGURES = ["waiting", "longest_wait_s", "service_level_15s", "answer_rate", "abandon_rate", "satisfaction_rate"];

function pct(value) { return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%"; }
function secs(value) {
  if (value === null || value === undefined) return "—";
  const s = Math.round(value);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
function show(figure, value) {
  if (figure === "waiting") return String(value);
  if (figure === "longest_wait_s") return secs(value);
  return pct(value);
}
function status(text) { $("status").textContent = text; }

function lost(why) {
  if (!wall.lost) {
    wall.lost = true;
    document.body.classList.add("stale");
  }
  const banner = $("offline");
  banner.hidden = false;
  banner.textContent = `与控制器的连接已断开 Connection to the controller lost (${why}): 正在重连 reconnecting…`;
}

function found() {
  wall.lost = false;
  document.body.classList.remove("stale");
  $("offline").hidden = true;
}

function alerting(board, queue, figure) {
  return (board.alerts || []).some((a) => a.queue === queue && a.figure === figure);
}

function cell(row, text, alert) {
  const td = row.insertCell();
  td.textContent = text;
  if (alert) td.className = "alert-cell";
  return td;
}

function render(board) {
  found();
  wall.boards += 1;
  document.body.dataset.boards = String(wall.boards);
  $("platform-name").textContent = board.name || board.platform;
  $("clock").textContent = new Date(board.at).toLocaleTimeString("zh-CN", { hour12: false });
  $("since").textContent = `今日 since ${new Date(board.since).toLocaleString("zh-CN", { hour12: false })}`;
  for (const figure of FIGURES) {
    const value = board.totals[figure];
    $(`t-${figure}`).textContent = show(figure, value);
    const tile = document.querySelector(`.tile[data-figure="${figure}"]`);
    tile.dataset.level = alerting(board, "all", figure) ? "alert" : value === null ? "none" : "ok";
  }
  const alerts = $("alerts");
  alerts.replaceChildren(...(board.alerts || []).map((a) => {
    const div = document.createElement("div");
    div.className = "alert";
    div.dataset.alert = a.alert;
    div.dataset.queue = a.queue;
    const value = show(a.figure, a.value);
    const limit = show(a.figure, a.threshold);
    div.textContent = `⚠ ${a.alert} · ${a.queue === "all" ? "全部 all" : a.queue}: ${value} (${a.direction} ${limit})`;
    return div;
  }));
  const tbody = document.querySelector("#queues tbody");
  tbody.replaceChildren();
  for (const q of board.queues) {
    const row = tbody.insertRow();
    row.dataset.queue = q.queue;
    cell(row, q.queue);
    cell(row, String(q.waiting), alerting(board, q.queue, "waiting"));
    cell(row, secs(q.longest_wait_s), alerting(board, q.queue, "longest_wait_s"));
    cell(row, String(q.offered));
    cell(row, String(q.answered));
    cell(row, pct(q.service_level_15s), alerting(board, q.queue, "service_level_15s"));
    cell(row, pct(q.answer_rate), alerting(board, q.queue, "answer_rate"));
    cell(row, pct(q.abandon_rate), alerting(board, q.queue, "abandon_rate"));
    cell(row, pct(q.satisfaction_rate), alerting(board, q.queue, "satisfaction_rate"));
  }
  $("seat-states").textContent = Object.entries(board.seat_states).filter(([, n]) => n).map(([s, n]) => `${s} ${n}`).join(" · ");
  $("seats").replaceChildren(...board.seats.map((s) => {
    const div = document.createElement("div");
    div.className = "seat";
    div.dataset.state = s.state;
    div.dataset.seat = s.seat;
    div.textContent = `${s.seat} ${s.state}${s.reason ? " (" + s.reason + ")" : ""} ${secs(s.in_state_s)}`;
    return div;
  }));
  const panel = $("platforms-panel");
  panel.hidden = !Array.isArray(board.platforms);
  if (Array.isArray(board.platforms)) {
    const body = document.querySelector("#platforms tbody");
    body.replaceChildren();
    for (const p of board.platforms) {
      const row = body.insertRow();
      row.dataset.platform = p.platform;
      const t = p.totals || {};
      cell(row, (p.name || p.platform) + (p.reporting ? "" : " (未报告 not reporting)"), !p.reporting);
      cell(row, t.waiting === undefined ? "—" : String(t.waiting));
      cell(row, secs(t.longest_wait_s));
      cell(row, pct(t.service_level_15s));
      cell(row, pct(t.answer_rate));
      cell(row, pct(t.satisfaction_rate));
      cell(row, String((p.alerts || []).length), (p.alerts || []).length > 0);
    }
  }
}

function connect() {
  if (!tokenInput.value) { status("输入值班长令牌 Enter a supervisor token."); return; }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/wallboard`);
  wall.socket = socket;
  wall.refused = false;
  socket.onopen = () => socket.send(JSON.stringify({ token: tokenInput.value }));
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "hello") { wall.delay = 500; status(`${data.who}${data.province ? " · 全省 province" : ""}`); return; }
    if (data.type === "board") render(data);
  };
  socket.onclose = (event) => {
    if (wall.socket !== socket) return; // replaced by a new token
    if (event.code === 4401 || event.code === 4403) {
      wall.refused = true;
      status(event.code === 4401 ? "令牌无效 This token is not accepted." : `拒绝 Refused: ${event.reason}`);
      return;
    }
    lost(event.code === 1006 ? "no answer" : `closed ${event.code}`);
    setTimeout(connect, wall.delay);
    wall.delay = Math.min(wall.delay * 2, 10000);
  };
}

tokenInput.addEventListener("change", () => {
  sessionStorage.setItem("hotline-token", tokenInput.value);
  if (wall.socket) { const old = wall.socket; wall.socket = null; old.close(); }
  wall.delay = 500;
  connect();
});
connect();
