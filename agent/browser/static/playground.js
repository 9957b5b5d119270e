// The playground: the microphone to the agent over a WebSocket, the bot's speech back through a jitter
// buffer, the transcript of both sides and each turn's timings. Everything the page measured is kept in
// window.zapvoice (counters, the round trips, the bot's audio as received), for a person or a test to read.
"use strict";

const RATE = 16000;
const FRAME_SAMPLES = 960; // 1920 bytes of s16le: the frames ZuckZapGo's media socket carries
const PREBUFFER_MS = 100;
const VOICE_RMS = 0.02; // about -34 dBFS: louder mic frames count as the caller speaking
const KEEP_RECEIVED_S = 60;

const state = window.zapvoice = {
  status: "idle", callId: null, ended: null, error: null,
  framesSent: 0, bytesReceived: 0, samplesPlayed: 0, peakPlayed: 0, bursts: 0,
  turns: [], roundTrips: [], received: [],
  receivedBase64() { // the bot's audio as the page received it, s16le 16 kHz
    const bytes = new Uint8Array(state.received.reduce((n, chunk) => n + chunk.byteLength, 0));
    let at = 0;
    for (const chunk of state.received) { bytes.set(new Uint8Array(chunk), at); at += chunk.byteLength; }
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  },
};

let context = null, stream = null, socket = null, player = null;
let lastVoiceAt = null, lastBurstEndAt = -Infinity, pendingRoundTrip = null;
let keptBytes = 0; // of state.received, counted as it grows rather than summed for every frame
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
const form = tokenForm(() => start());

function show(status, detail) {
  state.status = status;
  document.getElementById("status").textContent = detail ? `${status}: ${detail}` : status;
  document.body.dataset.status = status;
}

function counters() {
  document.getElementById("sent").textContent = `${(state.framesSent * FRAME_SAMPLES / RATE).toFixed(1)} s`;
  document.getElementById("received").textContent = `${(state.bytesReceived / 2 / RATE).toFixed(1)} s`;
  document.getElementById("played").textContent = `${(state.samplesPlayed / RATE).toFixed(1)} s`;
  const trips = state.roundTrips;
  document.getElementById("round-trip").textContent = trips.length ? ms(trips[trips.length - 1]) : "–";
}

async function start() {
  startButton.disabled = true;
  state.error = state.ended = null;
  show("starting", "asking for the microphone");
  try {
    context = new AudioContext();
    await context.audioWorklet.addModule("/playground/static/worklet.js");
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
  } catch (error) {
    return fail(`no microphone (${error.message})`);
  }
  const capture = new AudioWorkletNode(context, "zapvoice-capture",
    { numberOfOutputs: 1, processorOptions: { targetRate: RATE, frameSamples: FRAME_SAMPLES } });
  const mute = context.createGain();
  mute.gain.value = 0; // the capture node must be pulled by the graph, but the caller must not hear themselves
  context.createMediaStreamSource(stream).connect(capture).connect(mute).connect(context.destination);
  player = new AudioWorkletNode(context, "zapvoice-player",
    { outputChannelCount: [1], processorOptions: { sourceRate: RATE, prebufferMs: PREBUFFER_MS } });
  player.connect(context.destination);
  player.port.onmessage = (event) => played(event.data);
  capture.port.onmessage = (event) => captured(event.data);

  show("connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/playground/ws`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => socket.send(JSON.stringify({ type: "start", token: savedToken() }));
  socket.onmessage = (event) => (typeof event.data === "string" ? control(JSON.parse(event.data)) : audio(event.data));
  socket.onclose = () => finish();
  stopButton.disabled = false;
}

function captured({ pcm, rms, at }) {
  if (rms >= VOICE_RMS) lastVoiceAt = at;
  if (socket && socket.readyState === WebSocket.OPEN && state.callId) {
    socket.send(pcm);
    state.framesSent++;
  }
}

function audio(data) {
  state.bytesReceived += data.byteLength;
  if (keptBytes < KEEP_RECEIVED_S * RATE * 2) {
    state.received.push(data.slice(0));
    keptBytes += data.byteLength;
  }
  player.port.postMessage(data, [data]);
}

// The player's reports. A burst that starts after the caller spoke (since the last burst ended) is an
// answer: its round trip runs from the last loud microphone frame to the first sample played.
function played(message) {
  if (message.type === "start") {
    state.bursts++;
    if (lastVoiceAt !== null && lastVoiceAt > lastBurstEndAt) {
      pendingRoundTrip = (message.at - lastVoiceAt) * 1000;
      state.roundTrips.push(pendingRoundTrip);
    }
  } else if (message.type === "end") {
    lastBurstEndAt = message.at;
  } else if (message.type === "played") {
    state.samplesPlayed = message.samples;
    state.peakPlayed = message.peak;
  }
  counters();
}

function control(message) {
  if (message.type === "ready") {
    state.callId = message.call_id;
    show("in call", message.call_id);
  } else if (message.type === "turn") {
    const turn = { ...message, page_round_trip_ms: message.user ? pendingRoundTrip : null,
      received_bytes: state.bytesReceived }; // the bot's audio so far: this turn's ends here
    if (message.user) pendingRoundTrip = null;
    state.turns.push(turn);
    transcript(turn);
  } else if (message.type === "ended") {
    state.ended = message.reason;
  } else if (message.type === "error") {
    state.error = message.error;
    if (/token/.test(message.error)) form.ask();
  }
}

function transcript(turn) {
  const list = document.getElementById("transcript");
  if (turn.user) list.append(el("li", { class: "caller" }, el("b", {}, "You "), turn.user));
  if (turn.assistant) {
    const said = el("li", { class: "bot" }, el("b", {}, "Bot "), turn.assistant + (turn.interrupted ? " …" : ""));
    if (turn.user) {
      said.append(el("div", { class: "timings" },
        `transcript ${ms(turn.stt_ms)} · first token ${ms(turn.first_token_ms)} · first audio ` +
        `${ms(turn.first_audio_ms)} after your speech ended (server) · heard ${ms(turn.page_round_trip_ms)} ` +
        "after your last word (this page)"));
    }
    list.append(said);
  }
  list.scrollTop = list.scrollHeight;
}

function hangUp() {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "hangup" }));
}

// The microphone and the AudioContext, at the end of a call or of a start that failed: a context left open
// keeps its audio rendering thread (and the device) for as long as the page stays.
function release() {
  if (stream) stream.getTracks().forEach((track) => track.stop());
  if (context) context.close();
  context = stream = null;
}

function finish() {
  release();
  socket = null;
  state.callId = null;
  if (state.error) show("refused", state.error);
  else show("ended", state.ended || "the connection closed");
  startButton.disabled = false;
  stopButton.disabled = true;
}

function fail(reason) {
  release();
  state.error = reason;
  show("failed", reason);
  startButton.disabled = false;
}

startButton.addEventListener("click", () => start());
stopButton.addEventListener("click", hangUp);
counters();
