"""Attacks on zapvoice from outside (issue 10, items 2, 6, 10 and 11), over real sockets on loopback.

    python benchmarks/hostile_upstream_gateway.py            # about 3 minutes
    python benchmarks/hostile_upstream_gateway.py --only gateway

Everything runs as a user runs it: the fake OpenAI upstream of the tests (tests/support/fake_llm.py,
uvicorn) and `zapvoice serve` / `zapvoice gateway` are child processes, on the test models (the
scripted Whisper and the sine voices, built on the spot). `zapvoice serve` faces the upstream in its
`per-request` mode, where the system prompt of each /llm request picks the upstream's behaviour, so
one service meets every attack; `--llm-timeout-s 5`.

Upstream attacks (/llm, the agent's stream, in this process, against the same upstream):
- trickle: a space (whole reply) or an SSE comment (stream) every second for 20 s, then the answer.
- pool: 110 /llm requests on a trickling upstream, each abandoned by its client after 1 s, then a
  normal /llm (the upstream answers at once): its status and time (the pool holds 100 connections).
- echo-auth: the upstream's 401 repeats the Authorization header it got; is the API key in the answer or
  in the service's log?
- nonstring: `message.content` is a list.
- gzip bomb: 256 MiB of spaces in ~250 KiB of gzip before the completion; the service's RSS.
- markdown: a 6 MiB markdown reply, and 48 KiB of "*a " (unclosed emphasis); time to answer and the
  worst /health latency meanwhile (the event loop's stall).

Gateway attacks (`zapvoice gateway` on the same models, LLM "echo"):
- nested JSON: `"[" * 100000` before `incoming_call` (is the call answered?) and during a call (is it
  still up a second later?).
- audio flood: another process sends 1 MiB audio messages as fast as it can for 20 s on one call while
  a second call speaks one turn; that call's reply time (end of speech to the bot's first audio, 600 ms
  of end-of-turn silence included), against the same turn without the flood, and the gateway's CPU
  (user + system, 100 % = one core) during the flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.providers.errors import ProviderError  # noqa: E402
from zapvoice.providers.llm import OpenAIChat  # noqa: E402

from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.support.gateway_caller import GatewayCaller  # noqa: E402
from zapvoice.settings import Settings  # noqa: E402

TOKEN = "bench-token"
API_KEY = "sk-hostile-bench-0123456789abcdef"
TIMEOUT_S = 5.0
ZAPVOICE = str(Path(sys.executable).parent / "zapvoice")


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:2]} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


class Child:
    def __init__(self, args: list[str], log: Path, ready_url: str):
        self.log = log
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
        wait_ready(ready_url, self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def fake_llm(port: int, log: Path, backlog: int = 2048) -> Child:
    """The tests' fake OpenAI upstream (tests/support/fake_llm.py) as a child process on `port`."""
    return Child([sys.executable, "-c", "import uvicorn; from tests.support.fake_llm import build_fake_llm; "
                  f"uvicorn.run(build_fake_llm(), port={port}, log_level='warning', backlog={backlog})"],
                 log, f"http://127.0.0.1:{port}")


def model_args(work: Path) -> list[str]:
    from tests.model_builders.piper_voice import build_sine_voice
    from tests.model_builders.whisper import build_scripted_whisper
    whisper = build_scripted_whisper(work / "whisper", text="olá, tudo bem?", language="pt")
    voices = [build_sine_voice(work / "voices", name="pt_BR-test-medium", espeak_voice="pt-br"),
              build_sine_voice(work / "voices", name="en_US-test-medium", espeak_voice="en-us")]
    return ["--whisper-model", str(whisper), "--voices", ",".join(map(str, voices)), "--no-auto-download",
            "--model-dir", str(work / "cache")]


def cell(answer: httpx.Response | None, error: str = "") -> str:
    if answer is None:
        return error
    return f"{answer.status_code} {answer.text[:110]}"


# --- the upstream attacks ---------------------------------------------------------------------------

def llm(http: httpx.Client, mode: str, timeout: float = 120) -> tuple[httpx.Response | None, float, str]:
    started = time.monotonic()
    try:
        answer = http.post("/llm", json={"system": mode, "messages": [{"role": "user", "content": "oi"}]},
                           timeout=timeout)
        return answer, time.monotonic() - started, ""
    except httpx.HTTPError as exc:
        return None, time.monotonic() - started, type(exc).__name__


async def health_stalls(url: str, stop: asyncio.Event) -> float:
    """The worst /health latency (ms) until `stop`, polling every 10 ms."""
    worst = 0.0
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while not stop.is_set():
            started = time.monotonic()
            await http.get("/health")
            worst = max(worst, time.monotonic() - started)
            await asyncio.sleep(0.01)
    return worst * 1000


def while_watching(url: str, work) -> tuple[object, float]:
    """`work()` in a thread, and the worst /health latency (ms) of the service meanwhile."""
    async def main():
        stop = asyncio.Event()
        watcher = asyncio.create_task(health_stalls(url, stop))
        await asyncio.sleep(0.1)
        try:
            result = await asyncio.to_thread(work)
        finally:
            stop.set()
        return result, await watcher
    return asyncio.run(main())


def agent_stream(fake_url: str, mode: str) -> tuple[str, float]:
    settings = Settings(_env_file=None, llm={"url": f"{fake_url}/v1", "model": mode, "timeout_s": TIMEOUT_S})

    async def main():
        chat = OpenAIChat(settings.llm)
        started = time.monotonic()
        try:
            text = "".join([piece async for piece in chat.stream("", [{"role": "user", "content": "oi"}])
                            if isinstance(piece, str)])
            return f"streamed {text!r}", time.monotonic() - started
        except ProviderError as exc:
            return f"{exc.status} {exc.message[:90]}", time.monotonic() - started
        finally:
            await chat.aclose()
    return asyncio.run(main())


def pool_exhaustion(url: str) -> tuple[str, float]:
    async def main():
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     limits=httpx.Limits(max_connections=200)) as http:
            async def abandoned():
                try:
                    await http.post("/llm", json={"system": "trickle-60-1000",
                                                  "messages": [{"role": "user", "content": "oi"}]}, timeout=1.0)
                except httpx.TimeoutException:
                    pass
            await asyncio.gather(*(abandoned() for _ in range(110)))
            started = time.monotonic()
            try:
                answer = await http.post("/llm", json={"system": "echo", "messages": [{"role": "user",
                                                                                     "content": "oi"}]}, timeout=60)
                return cell(answer), time.monotonic() - started
            except httpx.HTTPError as exc:
                return type(exc).__name__, time.monotonic() - started
    return asyncio.run(main())


def bench_upstream(work: Path, models: list[str]) -> list[str]:
    fake_port, port = free_port(), free_port()
    fake_url, url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{port}"
    fake = fake_llm(fake_port, work / "fake-llm.log", backlog=4096)
    service_log = work / "serve.log"
    service = Child([ZAPVOICE, "serve", "--port", str(port), "-c", f"service.token={TOKEN}", "--llm-url", f"{fake_url}/v1",
                     "--llm-model", "per-request", "-c", f"llm.api_key={API_KEY}", "-c", f"llm.timeout_s={TIMEOUT_S}",
                     *models], service_log, f"{url}/health")
    rows = ["| attack | answer | time s | effect |", "|---|---|---|---|"]
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            llm(http, "echo")
            answer, took, error = llm(http, "trickle-20-1000")
            rows.append(f"| trickle /llm (a space a second for 20 s) | {cell(answer, error)} | {took:.1f} | |")
            said, took = agent_stream(fake_url, "trickle-20-1000")
            rows.append(f"| trickle agent stream (an SSE comment a second for 20 s) | {said} | {took:.1f} | |")
            answer, took, error = llm(http, "echo-auth")
            logged = API_KEY in service_log.read_text(errors="replace")
            rows.append(f"| upstream 401 echoing Authorization | {cell(answer, error)} | {took:.2f} | key in answer: "
                        f"{answer is not None and API_KEY in answer.text}; key in log: {logged} |")
            answer, took, error = llm(http, "nonstring")
            rows.append(f"| non-string message.content | {cell(answer, error)} | {took:.2f} | |")
            before = memory_mb(service.pid)
            answer, took, error = llm(http, "gzip-256")
            after = memory_mb(service.pid)
            rows.append(f"| gzip bomb (256 MiB in ~250 KiB) | {cell(answer, error)} | {took:.2f} | RSS "
                        f"{before['VmRSS']:.0f} MB -> peak {after['VmHWM']:.0f} MB (+{after['VmHWM'] - before['VmHWM']:.0f}) |")
            for mode, label in (("markdown-6144", "6 MiB markdown reply"), ("stars-48", '48 KiB of "*a "')):
                (answer, took, error), worst = while_watching(url, lambda mode=mode: llm(http, mode, timeout=300))
                rows.append(f"| {label} | {cell(answer, error)} | {took:.2f} | worst /health meanwhile "
                            f"{worst:.0f} ms |")
            said, took = pool_exhaustion(url)  # last: the abandoned requests may hold the pool a while
            rows.append(f"| normal /llm after 110 abandoned trickling ones | {said} | {took:.1f} | |")
    finally:
        service.stop()
        fake.stop()
    return rows


# --- the gateway attacks -----------------------------------------------------------------------------

NESTED = "[" * 100000


async def nested_json(url: str) -> list[str]:
    from websockets.asyncio.client import connect
    rows = []
    async with connect(url, max_size=None) as ws:
        await ws.send(NESTED)
        await ws.send(json.dumps({"event": "incoming_call", "callerId": "1", "sessionId": "nested-before"}))
        try:
            answered = json.loads(await asyncio.wait_for(ws.recv(), 3)).get("event") == "answer"
        except Exception as exc:  # noqa: BLE001 - what happened is the figure
            answered = f"no ({type(exc).__name__})"
        rows.append(f'| `"[" * 100000` before incoming_call | answered: {answered} |')
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"event": "incoming_call", "callerId": "2", "sessionId": "nested-during"}))
        await asyncio.wait_for(ws.recv(), 3)
        await ws.send(NESTED)
        events, deadline = [], time.monotonic() + 1.5
        try:
            while (left := deadline - time.monotonic()) > 0:
                message = await asyncio.wait_for(ws.recv(), left)
                if isinstance(message, str):
                    events.append(json.loads(message).get("event"))
        except TimeoutError:
            pass
        except Exception as exc:  # noqa: BLE001
            events.append(type(exc).__name__)
        alive = not events
        rows.append(f'| `"[" * 100000` during the call | call still up 1.5 s later: {alive} {events or ""} |')
    return rows


async def one_turn(url: str, utterance: np.ndarray, session: str) -> float:
    async with GatewayCaller(url) as phone:
        await phone.call(session_id=session)
        await phone.reply_after(0.0)  # the greeting
        _, end = await phone.say(utterance)
        start, _ = await phone.reply_after(end)
        await phone.hang_up()
        return (start - end) * 1000


def flood(url: str, seconds: float, limit: int) -> None:
    """`--flood`: one call sending 1 MiB audio messages as fast as it can (at most `limit`, for `seconds`)."""
    from websockets.sync.client import connect
    message = np.random.default_rng(0).normal(0, 30, 1 << 19).astype("<i2").tobytes()
    sent = 0
    with connect(url, max_size=None, compression=None) as ws:
        ws.send(json.dumps({"event": "incoming_call", "callerId": "flood", "sessionId": "flood"}))
        ws.recv()
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and sent < limit:
                ws.send(message)
                sent += 1
        except Exception as exc:  # noqa: BLE001 - the server may close the call
            print(f"flood stopped: {type(exc).__name__}", file=sys.stderr)
    print(json.dumps({"sent": sent}))


def bench_gateway(work: Path, models: list[str]) -> list[str]:
    from tests.support.speech import speak
    fake_port, port = free_port(), free_port()
    fake_url, url = f"http://127.0.0.1:{fake_port}", f"ws://127.0.0.1:{port}"
    fake = fake_llm(fake_port, work / "fake-llm-gw.log")
    gateway = Child([ZAPVOICE, "gateway", "--gateway-port", str(port), "--llm-url", f"{fake_url}/v1",
                     "--llm-model", "echo", "-c", "agent.record_dir=", "-c", "agent.idle_prompt_s=3600", *models],
                    work / "gateway.log", f"http://127.0.0.1:{port}/health")
    utterance = speak("Bom dia, eu queria marcar uma consulta.")
    rows = ["| attack | effect |", "|---|---|"]
    try:
        rows += asyncio.run(nested_json(url))
        quiet = [asyncio.run(one_turn(url, utterance, f"quiet-{n}")) for n in range(3)]
        flooder = subprocess.Popen([sys.executable, __file__, "--flood", url], cwd=ROOT, stdout=subprocess.PIPE)
        time.sleep(2.0)
        cpu0, wall0 = cpu_s(gateway.pid), time.monotonic()
        loaded = [asyncio.run(one_turn(url, utterance, f"loaded-{n}")) for n in range(3)]
        cpu1, wall1 = cpu_s(gateway.pid), time.monotonic()
        sent = json.loads(flooder.communicate(timeout=60)[0].decode().strip().splitlines()[-1])["sent"]
        rows.append(f"| other call's reply time, no flood (3 turns) | {', '.join(f'{t:.0f}' for t in quiet)} ms |")
        rows.append(f"| other call's reply time during a 1 MiB-message flood ({sent} messages in 20 s) | "
                    f"{', '.join(f'{t:.0f}' for t in loaded)} ms; gateway CPU "
                    f"{(cpu1 - cpu0) / (wall1 - wall0) * 100:.0f} % |")
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        rows.append(f"| after the attacks | /health {health} |")
    finally:
        gateway.stop()
        fake.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="upstream,gateway", help="upstream, gateway or both (comma-separated)")
    parser.add_argument("--flood", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = parser.parse_args()
    if args.flood:
        flood(args.flood, seconds=20.0, limit=2000)
        return
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    models = model_args(work)
    run = start()
    report = []
    only = set(args.only.split(","))
    if "upstream" in only:
        report += ["", f"### Hostile upstream (`zapvoice serve --llm-timeout-s {TIMEOUT_S:g}`)", "",
                   *bench_upstream(work, models)]
    if "gateway" in only:
        report += ["", "### Hostile gateway connections (`zapvoice gateway`)", "", *bench_gateway(work, models)]
    publish("hostile_upstream_gateway", [*provenance(run), *report], write=not args.no_write)
    print(f"(logs in {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
