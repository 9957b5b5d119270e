// The playground's two audio processors, in the AudioContext's rendering thread.
//
// zapvoice-capture: the microphone at the context's rate, averaged down to 16 kHz (each output sample is
// the mean of the input samples it covers: a box low-pass, enough for speech recognition), posted as s16le
// frames of `frameSamples` with their level and the context time, for the page to send and to time turns.
//
// zapvoice-player: the bot's 16 kHz speech, resampled to the context's rate by linear interpolation, through
// a jitter buffer: after running dry it waits until `prebufferMs` of audio is queued (or the oldest queued
// sample has waited that long, so the end of a reply is not held back), then plays. It tells the page when
// each burst of speech starts and ends, and how much it has played.

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameSamples } = options.processorOptions;
    this.ratio = sampleRate / targetRate;
    this.frameSamples = frameSamples;
    this.frame = new Int16Array(frameSamples);
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.seen = 0; // input samples so far
    this.boundary = this.ratio; // where the current output sample's span ends, in input samples
    this.energy = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count++;
      this.seen++;
      if (this.seen >= this.boundary) {
        const value = Math.max(-1, Math.min(1, this.sum / this.count));
        this.sum = 0;
        this.count = 0;
        this.boundary += this.ratio;
        this.energy += value * value;
        this.frame[this.filled++] = Math.round(value * 32767);
        if (this.filled === this.frame.length) this.flush();
      }
    }
    return true;
  }

  flush() {
    const rms = Math.sqrt(this.energy / this.frameSamples);
    const pcm = this.frame.buffer;
    this.port.postMessage({ pcm, rms, at: currentTime }, [pcm]);
    this.frame = new Int16Array(this.frameSamples); // the old one went with its buffer
    this.filled = 0;
    this.energy = 0;
  }
}

const RING = 1 << 19; // 32 s at 16 kHz: more than the server ever sends ahead

class Player extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { sourceRate, prebufferMs } = options.processorOptions;
    this.step = sourceRate / sampleRate;
    this.prebuffer = Math.round(sourceRate * prebufferMs / 1000);
    this.waitS = prebufferMs / 1000;
    this.ring = new Float32Array(RING);
    this.written = 0; // source samples ever queued
    this.read = 0; // the play position, in source samples (fractional)
    this.playing = false;
    this.queuedAt = null; // context time the oldest unplayed audio arrived while waiting
    this.played = 0;
    this.peak = 0;
    this.reported = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(data) {
    const pcm = new Int16Array(data);
    for (let i = 0; i < pcm.length; i++) this.ring[(this.written + i) % RING] = pcm[i] / 32768;
    this.written += pcm.length;
    if (this.written - this.read > RING - 2) this.read = this.written - (RING - 2);
    if (this.queuedAt === null) this.queuedAt = currentTime;
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const queued = this.written - this.read;
    if (!this.playing && queued > 0 && (queued >= this.prebuffer || currentTime - this.queuedAt >= this.waitS)) {
      this.playing = true;
      this.port.postMessage({ type: "start", at: currentTime });
    }
    let i = 0;
    if (this.playing) {
      for (; i < out.length; i++) {
        const whole = Math.floor(this.read);
        if (whole + 1 >= this.written) break;
        const frac = this.read - whole;
        const value = this.ring[whole % RING] * (1 - frac) + this.ring[(whole + 1) % RING] * frac;
        out[i] = value;
        this.peak = Math.max(this.peak, Math.abs(value));
        this.read += this.step;
      }
      this.played += i * this.step;
      if (i < out.length) { // ran dry: the burst is over (or the network is late)
        this.playing = false;
        this.read = this.written;
        this.queuedAt = null;
        this.port.postMessage({ type: "end", at: currentTime + i / sampleRate });
      }
    }
    out.fill(0, i);
    if (this.played - this.reported >= 1600 || (!this.playing && this.played !== this.reported)) {
      this.reported = this.played;
      this.port.postMessage({ type: "played", samples: Math.round(this.played), peak: this.peak });
    }
    return true;
  }
}

registerProcessor("zapvoice-capture", Capture);
registerProcessor("zapvoice-player", Player);
