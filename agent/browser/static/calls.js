// /calls: the call records as a paged list, and one call (?id=DAY/NAME) as its transcript with a waterfall
// per turn: end of speech → transcript → first token → first audio, drawn as bars on one scale per call.
"use strict";

const params = new URLSearchParams(location.search);
const form = tokenForm(() => load());

async function api(path) {
  const response = await fetch(path, { headers: savedToken() ? { Authorization: `Bearer ${savedToken()}` } : {} });
  const body = await response.json();
  if (response.status === 401) {
    form.ask();
    throw new Error("the token is missing or wrong");
  }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "–";
}

function length(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

async function showList(page) {
  const listing = await api(`/calls/api?page=${page}`);
  const rows = document.getElementById("calls");
  rows.replaceChildren(...listing.calls.map((call) => {
    const link = el("a", { href: `/calls?id=${encodeURIComponent(call.id)}` }, when(call.started_at));
    return el("tr", {}, el("td", {}, link), el("td", {}, call.caller || call.called || "unknown"),
      el("td", {}, call.transport), el("td", {}, length(call.duration_s)), el("td", {}, String(call.turns)),
      el("td", {}, call.ended || "in progress"));
  }));
  document.getElementById("page").textContent = `page ${listing.page} of ${listing.pages} (${listing.total} calls)`;
  document.getElementById("newer").disabled = listing.page <= 1;
  document.getElementById("older").disabled = listing.page >= listing.pages;
  document.getElementById("newer").onclick = () => go(listing.page - 1);
  document.getElementById("older").onclick = () => go(listing.page + 1);
  document.getElementById("message").textContent = listing.note || (listing.total ? "" : "No calls recorded yet.");
  document.getElementById("list").hidden = false;
}

function go(page) {
  history.pushState(null, "", `/calls?page=${page}`);
  showList(page).catch(problem);
}

function waterfall(turn, scale) {
  const marks = [["stt", 0, turn.stt_ms], ["llm", turn.stt_ms, turn.first_token_ms], ["tts", turn.first_token_ms, turn.first_audio_ms]];
  const track = el("div", { class: "waterfall" });
  for (const [kind, from, to] of marks) {
    if (from === null || from === undefined || to === null || to === undefined) continue;
    track.append(el("div", { class: `bar ${kind}`, title: `${kind}: ${ms(from)} → ${ms(to)}`,
      style: { left: `${(100 * from) / scale}%`, width: `${Math.max(0.5, (100 * (to - from)) / scale)}%` } }));
  }
  const label = el("div", { class: "times" }, `transcript ${ms(turn.stt_ms)} · first token ${ms(turn.first_token_ms)} · ` +
    `first audio ${ms(turn.first_audio_ms)}${turn.speculative_stt ? " · speculative STT" : ""}`);
  return [track, label];
}

async function showCall(id) {
  const call = await api(`/calls/api/${id.split("/").map(encodeURIComponent).join("/")}`);
  document.getElementById("call-title").textContent = `${call.call_id}`;
  document.getElementById("call-summary").textContent = `${when(call.started_at)} · ${call.transport} ${call.direction} · ` +
    `${call.caller || call.called || "unknown"} · ${length(call.duration_s)} · ${call.ended || "in progress"}`;
  const scale = Math.max(1, ...call.turns.map((turn) => turn.first_audio_ms || turn.first_token_ms || turn.stt_ms || 0));
  document.getElementById("turns").replaceChildren(...call.turns.map((turn) => {
    const item = el("li", { class: "turn" });
    if (turn.user) item.append(el("p", { class: "caller" }, el("b", {}, "Caller "), turn.user));
    if (turn.stt_ms !== null && turn.stt_ms !== undefined) item.append(...waterfall(turn, scale));
    if (turn.assistant) item.append(el("p", { class: "bot" }, el("b", {}, "Bot "), turn.assistant + (turn.interrupted ? " (interrupted)" : "")));
    return item;
  }));
  document.getElementById("call").hidden = false;
}

function problem(error) {
  document.getElementById("message").textContent = error.message;
}

function load() {
  document.getElementById("message").textContent = "";
  const id = params.get("id");
  (id ? showCall(id) : showList(Number(params.get("page")) || 1)).catch(problem);
}

window.addEventListener("popstate", () => location.reload());
load();
