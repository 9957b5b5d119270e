"""One phone call's conversation: turn taking, the STT → LLM → TTS pipeline, barge-in and call end.

The transport feeds the caller's audio to `hear()` (and phone keys to `pressed()`) and gives
a `CallLine` to talk back on; `run()` greets, then answers every turn until the call ends. A
bot turn ("reply") is one task:

    transcribe ─ stream the LLM ─ cut sentences ─ synthesize sentence n+1 while n plays ─ drain

Replies start speaking after the first sentence, not the whole answer. When the caller pauses
the transcription starts early (speculative STT) and is thrown away if they go on. When the
caller talks over the bot, output pauses at the onset; if the speech lasts barge_in_min_ms
the reply is cancelled and only what the caller heard goes into the history, marked as
interrupted; if it was a cough or a click, output resumes as soon as it is over. With
turns.backchannels, speech that lasts barge_in_min_ms first contests the reply instead
(agent/backchannel.py): an "uh-huh" resumes it, other words cancel it. The bot's own echo on
the caller's line is removed first (agent/echo.py), so it interrupts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import numpy as np
from zapvoice.agent.backchannel import Backchannels, Contest, repeats_the_bot
from zapvoice.agent.call_record import CallRecord, TurnTimes
from zapvoice.agent.clock import Clock, MonotonicClock
from zapvoice.agent.echo import EchoCanceller
from zapvoice.agent.end_of_turn import EndOfTurn
from zapvoice.agent.line import CallInfo, CallLine
from zapvoice.agent.playout import Playout
from zapvoice.agent.sentences import SentenceSplitter, WholeText
from zapvoice.agent.vad import NoiseDropped, PauseStarted, SpeechResumed, SpeechStarted, TurnEnded, VadEvent
from zapvoice.providers.contracts import Engines, Message, Speech, ToolCall, Transcript
from zapvoice.providers.errors import ProviderError, UnknownVoice
from zapvoice.providers.spoken_text import to_spoken

from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import AgentSettings, TurnSettings, VadSettings

log = logging.getLogger(__name__)

INTERRUPTED = " [interrupted by the caller]"
KEYS_PRESSED = "[the caller pressed {digits} on the phone keypad]"
END_CALL_TOOL = {"type": "function", "function": {
    "name": "end_call",
    "description": "Hang up the phone call. Call it right after saying goodbye, when the caller says goodbye "
                   "or the conversation is over.",
    "parameters": {"type": "object", "properties": {}}}}
WATCH_S = 0.1  # how often the idle and call-length timers are checked
ECHO_REACH_S = (2.0, 0.5)  # the bot's words an echo may repeat: this long before the far end's position, and after


@dataclass(eq=False)
class _Reply:
    """One bot turn: what it answers, what it queued for playout, and its timings."""

    user: str = ""
    interruptible: bool = True
    times: TurnTimes | None = None
    sentences: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end) in the playout stream
    hang_up_after: str | None = None  # why the call ends once this reply has been heard
    task: asyncio.Task | None = None
    finished: bool = False


class Conversation:
    def __init__(self, line: CallLine, engines: Engines, info: CallInfo, *, agent: AgentSettings,
                 turns: TurnSettings, vad: VadSettings, language: str | None, clock: Clock | None = None):
        """Only the settings sections the conversation uses: the agent's phrases and limits, turn
        taking, the VAD's, and the transcription language (None: detected)."""
        self.agent = agent
        self.turns = turns
        self.language = language
        self.info = info
        self.line = line
        self.engines = engines
        self.clock = clock or MonotonicClock()
        self.record = CallRecord(info, agent.record_dir)
        self.end_of_turn = EndOfTurn(turns, vad, engines.turn, self._spawn, self._on_vad)
        self.vad = self.end_of_turn.vad
        self.echo = EchoCanceller(self.clock, (vad.band_low_hz, vad.band_high_hz)) if turns.echo_cancellation else None
        self.playout = Playout(line.send, self.clock, line.frame_samples, line.lead_frames,
                               on_sent=self.echo.played if self.echo is not None else None)
        self.system = agent.system_prompt.format_map(_Blank(info.prompt_fields()))
        self.history: list[Message] = []
        self.end_reason: str | None = None
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._reply: _Reply | None = None
        self._speculative: tuple[int, asyncio.Task] | None = None  # (utterance, its transcription)
        self._untranscribed: np.ndarray | None = None  # a turn whose reply was cancelled before STT finished
        self._interrupting = False  # output paused at a caller onset; barge-in not confirmed yet
        self._held = False  # output resumed over an open utterance too short to interrupt (so far)
        self._heard_alone = False  # the current utterance was heard when it could not be the bot's echo
        self._backchannels = Backchannels(turns.backchannels)
        self._contest: Contest | None = None  # the caller talks over a paused, live reply; their words decide
        self._ignoring = False  # the current utterance talks over a reply that cannot be interrupted
        self._closing = False  # the farewell is under way
        self._hanging_up = False  # the call ends from our side: run() hangs up the line
        self._idle_prompted = False
        self._voice: str | None = None  # the caller's language, to pick the voice
        self._started_at = self.clock.now()
        self._quiet_since = self._started_at
        self._tools = {tool.name: tool for tool in line.tools}
        self._tool_specs = ([END_CALL_TOOL] if agent.end_call_tool else []) + [t.spec for t in line.tools]
        self._goodbye = [re.compile(rf"\b{re.escape(p.lower())}\b") for p in agent.goodbye_phrases]

    # --- what the transport calls ------------------------------------------------------------

    async def run(self) -> str:
        """Greet, converse, and return why the call ended. Cancels everything it started."""
        self.record.started()
        self._spawn(self.playout.run(), on_error=lambda exc: self.stop(f"line lost: {exc}"))
        self._spawn(self._watch_timers(), on_error=lambda exc: self.stop(f"timer failed: {exc!r}"))
        if self.agent.greeting:
            self._say(self.agent.greeting)
        try:
            await self._done.wait()
        finally:
            if self._reply is not None:
                self._finish_reply(self._reply, interrupted=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._hanging_up:
                try:
                    await self.line.hang_up()
                except Exception as exc:  # noqa: BLE001 - the call is over either way
                    log.warning("call %s: hangup failed: %s", self.info.call_id, exc)
            reason = self.end_reason or "cancelled"  # set by stop() before _done, unless run() was cancelled
            self.record.ended(reason, self.clock.now() - self._started_at)
        return reason

    def hear(self, samples: np.ndarray) -> None:
        """The caller's audio, 16 kHz mono float32, in chunks of any size."""
        if self._done.is_set():
            return
        if self.echo is not None:
            samples = self.echo.cancel(samples)
        for event in self.end_of_turn.process(samples):
            self._on_vad(event)
        if self.vad.in_speech and self.vad.quiet_ms == 0 and not self._could_be_echo():
            self._heard_alone = True
        self._follow_short_sound()

    def stop(self, reason: str) -> None:
        """End the call now (the caller hung up, the line dropped): no farewell, no hangup request."""
        if not self._done.is_set():
            self.end_reason = reason
            self._done.set()

    def end(self, reason: str) -> None:
        """End the call from our side: the farewell over whatever was going on, then the hangup."""
        if self._closing or self._done.is_set():
            return
        self._closing = True
        if self._reply is not None:
            self._barge_in(by_caller=False)
        self._say(self.agent.farewell, hang_up_after=reason, interruptible=False)

    def pressed(self, digits: str) -> None:
        """The caller pressed phone keys (DTMF): a turn like speech, with no transcription. Keys
        interrupt the bot; keys pressed while the caller talks are answered with what they say."""
        if self._closing or self._done.is_set():
            return
        if self._reply is not None:
            self._barge_in()
        text = KEYS_PRESSED.format(digits=digits)
        self._add_user(text)
        self._quiet_since = self.clock.now()
        self._idle_prompted = False
        if not self.vad.in_speech:
            reply = _Reply(user=text, times=TurnTimes(speech_end=self.clock.now()))
            self._start(reply, self._answer(reply))

    # --- turn taking --------------------------------------------------------------------------

    def _on_vad(self, event: VadEvent) -> None:
        reply = self._reply
        match event:
            case SpeechStarted():
                self._quiet_since = self.clock.now()
                self._heard_alone = False
                if reply is None:
                    return
                if reply.interruptible and self.turns.barge_in:
                    self.playout.pause()
                    self._interrupting = True
                else:
                    self._ignoring = True
            case PauseStarted(audio=audio, utterance=utterance):
                contest = self._contest
                if self.turns.speculative_stt and (reply is None or contest is not None) and not self._ignoring:
                    self._drop_speculative()
                    self._speculative = (utterance, self._spawn(self._transcribe(audio)))
                    if contest is not None:
                        self._judge(contest)
            case SpeechResumed():
                self._drop_speculative()
                if self._contest is not None and self._contest.kept:  # more than a backchannel, maybe
                    self._contest.kept = False
                    self.playout.pause()
            case TurnEnded():
                self._quiet_since = self.clock.now()
                if self._closing:  # the farewell is under way: words after it are not answered
                    return
                if self._ignoring:
                    self._ignoring = False
                    return
                if (self._interrupting or self._held) and not self._heard_alone:
                    self._drop_echo()  # it died with the bot's audio: its echo, long enough to be a turn
                    return
                if self._held and self._backchannels.enabled:  # too short to contest, long enough to be a turn
                    self._held, self._contest = False, Contest()
                if self._contest is not None:
                    self._contest_ended(event)
                    return
                if self._interrupting or self._held:  # held: output resumed over it, but it became a turn
                    self._barge_in()
                self._idle_prompted = False
                self._answer_turn(event)
            case NoiseDropped():
                self._ignoring = False
                if self._contest is not None:
                    self._contest = None
                    self._drop_speculative()
                    self.playout.resume()
                if self._interrupting:
                    self._resume(held=False)

    def _follow_short_sound(self) -> None:
        """While output is paused at an onset: a barge-in once the sound lasts turns.barge_in_min_ms; output
        back once it has been quiet turns.resume_quiet_ms short of that (a cough costs the caller its length,
        not the VAD's end silence); paused again if the same utterance goes on. A contested reply is cancelled
        once the speech lasts turns.backchannel_max_ms, words or not. Before the echo canceller knows whether
        the line echoes, a sound counts only once it goes on after nothing the bot played can come back: the
        caller goes on talking, an echo dies with the bot's audio."""
        if self._contest is not None:
            if self.vad.speech_ms >= self.turns.backchannel_max_ms:
                self._barge_in()
        elif self._interrupting:
            if self.vad.speech_ms >= self.turns.barge_in_min_ms and self._heard_alone:
                if self._backchannels.enabled and self.vad.speech_ms < self.turns.backchannel_max_ms:
                    self._interrupting, self._contest = False, Contest()
                else:
                    self._barge_in()
            elif self.vad.quiet_ms >= self.turns.resume_quiet_ms and not self._could_be_echo():
                self._resume(held=True)
        elif self._held and (not self.vad.in_speech or self.vad.quiet_ms == 0):
            self._held = False  # the utterance ended (noise) or goes on (maybe speech after all)
            if self.vad.in_speech and self._reply is not None:
                self._interrupting = True
                self.playout.pause()

    def _could_be_echo(self) -> bool:
        return self.echo is not None and self.echo.could_be_echo()

    def _resume(self, held: bool) -> None:
        """Output back after a sound too short to interrupt; `held`: its utterance is still open. A sound never
        heard when it could not be the bot's echo (it died with the bot's audio) makes the canceller suspect one."""
        if not self._heard_alone and self.echo is not None:
            self.echo.suspect()
        self._interrupting, self._held = False, held
        self.playout.resume()

    def _drop_echo(self) -> None:
        if self._interrupting:
            self._resume(held=False)
        self._held = False

    def _barge_in(self, by_caller: bool = True) -> None:
        """The caller is really talking over the bot (or pressed keys; `by_caller` False: we end the call over
        it): cancel the reply, keep what was heard."""
        self._interrupting = self._held = False
        self._contest = None
        if by_caller:
            self.record.barged_in()
        reply = self._reply
        if reply is not None:
            self._finish_reply(reply, interrupted=True)
            if reply.task is not None:
                reply.task.cancel()
        self.playout.clear()

    # --- a contested reply: backchannel or barge-in --------------------------------------------

    def _judge(self, contest: Contest) -> None:
        """Decide the contest on the current transcription (self._speculative) once it is done."""
        assert self._speculative is not None
        utterance, task = self._speculative
        task.add_done_callback(lambda done: self._judged(contest, utterance, done))

    def _judged(self, contest: Contest, utterance: int, task: asyncio.Task) -> None:
        if self._contest is not contest or self._speculative != (utterance, task) or task.cancelled():
            return  # decided meanwhile (keys, a long utterance), or the caller went on: a later transcript decides
        text = "" if task.exception() is not None else task.result().text
        echo = self._reply is not None and repeats_the_bot(text, self._said_near(self._reply))
        if echo or self._backchannels.only_backchannels(text):
            contest.kept, contest.text, contest.echo = True, text.strip(), echo
            self.playout.resume()
            if echo:  # the utterance ends here, dropped; what the line brings next is judged as possible echo
                if self.echo is not None:
                    self.echo.heard_itself()
                if (ended := self.vad.end_turn(utterance)) is not None:
                    self._on_vad(ended)
                    return
            if contest.ended is not None:
                self._drop_backchannel(contest)
            return
        self._barge_in()
        if contest.ended is not None:
            self._idle_prompted = False
            self._answer_turn(contest.ended, decided_at=contest.ended_at)

    def _contest_ended(self, turn: TurnEnded) -> None:
        """The turn is over: a backchannel already heard is dropped; else its words, when known, decide."""
        contest = self._contest
        assert contest is not None
        if contest.kept:
            self._drop_backchannel(contest)
            return
        contest.ended, contest.ended_at = turn, self.clock.now()
        if self._speculative is None or self._speculative[0] != turn.utterance:
            self._drop_speculative()
            self._speculative = (turn.utterance, self._spawn(self._transcribe(turn.audio)))
            self._judge(contest)

    def _drop_backchannel(self, contest: Contest) -> None:
        """The caller only acknowledged the bot, or it was the bot's echo: no turn, nothing in the history."""
        self._contest = None
        self._speculative = None
        if contest.echo:
            self.record.own_echo(contest.text)
        else:
            self.record.backchannel(contest.text)

    def _answer_turn(self, turn: TurnEnded, decided_at: float | None = None) -> None:
        audio = turn.audio
        speculative = None
        if self._speculative is not None and self._speculative[0] == turn.utterance:
            speculative = self._speculative[1]
            self._speculative = None
        self._drop_speculative()
        if self._untranscribed is not None:  # the caller went on after a reply we cancelled unheard
            audio = np.concatenate([self._untranscribed, audio])
            speculative = None
        # The VAD decided at turn.at_s, which is now (or decided_at): speech ended that much audio earlier.
        decided_at = self.clock.now() if decided_at is None else decided_at
        times = TurnTimes(speech_end=decided_at - (turn.at_s - turn.speech_end_s),
                          speculative_stt=speculative is not None)
        reply = _Reply(times=times)
        self._start(reply, self._respond(reply, audio, speculative))

    def _drop_speculative(self) -> None:
        if self._speculative is not None:
            self._speculative[1].cancel()
            self._speculative = None

    # --- replies ------------------------------------------------------------------------------

    def _start(self, reply: _Reply, work) -> None:
        self._reply = reply
        reply.task = self._spawn(work)
        reply.task.add_done_callback(lambda task: self._reply_done(reply, task))

    def _say(self, text: str, hang_up_after: str | None = None, interruptible: bool = True) -> None:
        """A fixed phrase (greeting, idle prompt, farewell), as a reply."""
        reply = _Reply(interruptible=interruptible, hang_up_after=hang_up_after)
        self._start(reply, self._speak(reply, _once(text), whole=True))

    async def _respond(self, reply: _Reply, audio: np.ndarray, speculative: asyncio.Task | None) -> None:
        self._untranscribed = audio
        try:
            transcript = await (speculative or self._transcribe(audio))
        except ProviderError as exc:
            transcript = None
            log.warning("call %s: transcription failed: %s", self.info.call_id, exc.message)
        if reply.times is not None:  # always: _answer_turn gives the reply its times
            reply.times.stt_done = self.clock.now()
        self._untranscribed = None
        if transcript is None:
            await self._speak(reply, _once(self.agent.error_reply), whole=True)
            return
        text = transcript.text.strip()
        if not text:
            return
        self._voice = transcript.language
        self._add_user(text)
        reply.user = text
        await self._answer(reply)

    async def _answer(self, reply: _Reply) -> None:
        """The LLM's streamed answer to the conversation so far, spoken as it comes."""
        try:
            await self._speak(reply, self.engines.llm.stream(self.system, list(self.history), self._tool_specs))
        except ProviderError as exc:
            log.warning("call %s: the LLM failed: %s", self.info.call_id, exc.message)
            if not reply.sentences:
                await self._speak(reply, _once(self.agent.error_reply), whole=True)

    async def _transcribe(self, audio: np.ndarray) -> Transcript:
        return await self.engines.stt.transcribe(audio, self.language)

    async def _speak(self, reply: _Reply, pieces: AsyncGenerator[str | ToolCall, None], whole: bool = False) -> None:
        """Speak a streamed reply sentence by sentence, synthesizing the next while one plays.
        `whole`: a fixed phrase, synthesized in one piece so it comes from the TTS cache."""
        ready: asyncio.Queue[tuple[str, asyncio.Task] | None] = asyncio.Queue(maxsize=1)
        failure: list[Exception] = []

        async def produce() -> None:
            splitter = WholeText() if whole else SentenceSplitter()
            try:
                async for piece in pieces:
                    if isinstance(piece, ToolCall):
                        await self._use_tool(reply, piece)
                        continue
                    if reply.times is not None and reply.times.first_token is None:
                        reply.times.first_token = self.clock.now()
                    for sentence in splitter.feed(piece):
                        await self._queue_sentence(ready, sentence)
                for sentence in splitter.flush():
                    await self._queue_sentence(ready, sentence)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                failure.append(exc)
            finally:
                await pieces.aclose()
            await ready.put(None)

        producer = self._spawn(produce())
        try:
            while (item := await ready.get()) is not None:
                text, synthesis = item
                try:
                    speech: Speech = await synthesis
                except ProviderError as exc:
                    log.warning("call %s: cannot synthesize %r: %s", self.info.call_id, text, exc.message)
                    continue
                end = self.playout.enqueue(speech.pcm, on_start=self._first_audio(reply))
                reply.sentences.append((end - speech.pcm.size, end, text))
        finally:
            producer.cancel()
            while not ready.empty():
                if (item := ready.get_nowait()) is not None:
                    item[1].cancel()
        if failure:
            raise failure[0]
        if reply.sentences and self._says_goodbye(reply.sentences[-1][2]):
            reply.hang_up_after = reply.hang_up_after or "the bot said goodbye"
        await self.playout.drained()

    async def _use_tool(self, reply: _Reply, call: ToolCall) -> None:
        log.info("call %s: the LLM called %s(%s)", self.info.call_id, call.name, call.arguments)
        if call.name == "end_call":
            reply.hang_up_after = reply.hang_up_after or "the bot ended the call"
        elif call.name in self._tools:
            try:
                await self._tools[call.name].run(call.arguments)
            except (ValueError, TypeError) as exc:  # the model's arguments were unusable
                log.warning("call %s: %s(%s) failed: %s", self.info.call_id, call.name, call.arguments, exc)

    async def _queue_sentence(self, ready: asyncio.Queue, sentence: str) -> None:
        """Queue a sentence as it will be heard (no markdown, emoji, links); that is also what the history keeps."""
        spoken = to_spoken(sentence)
        if spoken:
            await ready.put((spoken, self._spawn(self._synthesize(spoken))))

    async def _synthesize(self, text: str) -> Speech:
        """Speech in the caller's language when a voice speaks it, else in the default voice."""
        if self._voice:
            try:
                return await self.engines.tts.speak(text, self._voice)
            except UnknownVoice:
                log.info("call %s: no voice for language %r, using the default", self.info.call_id, self._voice)
                self._voice = None
        return await self.engines.tts.speak(text)

    def _first_audio(self, reply: _Reply):
        times = reply.times
        if reply.sentences or times is None:
            return None

        def mark() -> None:
            times.first_audio = self.clock.now()
        return mark

    def _reply_done(self, reply: _Reply, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: reply failed", self.info.call_id, exc_info=task.exception())
        if reply.finished:
            return
        self._finish_reply(reply, interrupted=False)
        if reply.hang_up_after and not task.cancelled():
            self._spawn(self._hang_up(reply.hang_up_after))

    def _finish_reply(self, reply: _Reply, interrupted: bool) -> None:
        """Put what the caller heard of the reply into the history and the call record."""
        reply.finished = True
        if self._reply is reply:
            self._reply = None
        self._quiet_since = self.clock.now()
        queued = " ".join(text for _, _, text in reply.sentences)
        said = self._heard(reply) if interrupted else queued
        interrupted = interrupted and said != queued
        if said:
            self.history.append({"role": "assistant", "content": said + (INTERRUPTED if interrupted else "")})
        if reply.times is not None or said:
            self.record.turn(reply.user, said, interrupted, reply.times)

    def _said_near(self, reply: _Reply) -> str:
        """The reply's words the far end played from ECHO_REACH_S[0] before its position to ECHO_REACH_S[1] after
        (a word's place is estimated within its sentence): what an echo of the bot can bring back."""
        played = self.playout.played_samples
        low, high = played - ECHO_REACH_S[0] * PIPELINE_RATE, played + ECHO_REACH_S[1] * PIPELINE_RATE
        near = []
        for start, end, text in reply.sentences:
            words = text.split()
            places = (start + (end - start) * (k + 0.5) / len(words) for k in range(len(words)))
            near += [word for word, at in zip(words, places, strict=True) if low <= at <= high]
        return " ".join(near)

    def _heard(self, reply: _Reply) -> str:
        """The part of a cut reply the caller heard: whole sentences, then the words of the one cut
        in proportion to how much of its audio was played."""
        played = self.playout.played_samples
        heard = []
        for start, end, text in reply.sentences:
            if end <= played:
                heard.append(text)
            elif start < played:
                words = text.split()
                heard.append(" ".join(words[: round(len(words) * (played - start) / (end - start))]))
        return " ".join(part for part in heard if part)

    def _add_user(self, text: str) -> None:
        """A new user message, or more of the last one when the bot did not get to answer it."""
        if self.history and self.history[-1]["role"] == "user":
            self.history[-1] = {"role": "user", "content": f"{self.history[-1]['content']} {text}"}
        else:
            self.history.append({"role": "user", "content": text})

    def _says_goodbye(self, sentence: str) -> bool:
        lowered = sentence.lower()
        return any(pattern.search(lowered) for pattern in self._goodbye)

    # --- call end -------------------------------------------------------------------------------

    async def _watch_timers(self) -> None:
        """The idle prompt, the idle hangup and the call length limit."""
        s = self.agent
        while True:
            await self.clock.sleep(WATCH_S)
            if self._closing:
                continue
            now = self.clock.now()
            if now - self._started_at >= s.max_call_s:
                self.end("the call reached agent.max_call_s")
            elif self._reply is None and not self.vad.in_speech:
                quiet = now - self._quiet_since
                if not self._idle_prompted and quiet >= s.idle_prompt_s:
                    self._idle_prompted = True
                    self._say(s.idle_prompt)
                elif self._idle_prompted and quiet >= s.idle_hangup_s:
                    self.end("the caller stayed silent")

    async def _hang_up(self, reason: str) -> None:
        """End the call from our side once everything said has been heard; run() hangs up the line."""
        self._closing = True
        await self.playout.drained()
        self._hanging_up = True
        self.stop(reason)

    def _spawn(self, work, on_error=None) -> asyncio.Task:
        task = asyncio.create_task(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task) -> None:
            """Failures are the awaiter's to handle; a task nobody awaits reports to on_error."""
            self._tasks.discard(finished)
            error = None if finished.cancelled() else finished.exception()
            if error is not None and on_error is not None:
                on_error(error)
        task.add_done_callback(done)
        return task


async def _once(text: str) -> AsyncGenerator[str, None]:
    yield text


class _Blank(dict):
    """Placeholders the prompt uses but the call does not have become empty."""

    def __missing__(self, key: str) -> str:
        return ""
