"""Hostile clients against `zapvoice serve` (issue 10: items 3, 4, 9 and 12): what each attack gets back and costs.

    python benchmarks/hostile_http.py [--items 3,4,9,12] [--bound-s 45] [--big-header-mb 64] [--conns 200]

Starts `zapvoice serve` as a user runs it (scripted Whisper and sine voices from tests/model_builders, no
network) on a loopback port and attacks it over 127.0.0.1 with raw sockets; every attack stops by itself
(bounded loops, --bound-s). Per attack, one table row: the answer (status, content type, JSON `{"error"}` or
not), how long the server held the attacking connection(s), the worst latency of a GET /health polled every
20 ms on its own keep-alive connection during the attack (the stall a live call would feel, and failures),
and the server's open fds and RSS before and after. Prints markdown tables, one per item.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.model_builders.piper_voice import build_sine_voice  # noqa: E402
from tests.model_builders.whisper import build_scripted_whisper  # noqa: E402
from zapvoice.audio import wav_bytes  # noqa: E402

TOKEN = "hostile-bench-token"
QUERY_SECRET = "query-secret-5d1e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """`zapvoice serve` in its own process, its stdout and stderr (access log included) in one file."""

    def __init__(self, models: dict[str, Path], log_path: Path, nofile: int | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPVOICE_")}
        env.update(ZAPVOICE_LOG_LEVEL="info", HF_HUB_OFFLINE="1")

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "zapvoice"), "serve", "--port", str(self.port), "-c", f"service.token={TOKEN}",
             "--whisper-model", str(models["whisper"]), "--voices", f"{models['pt']},{models['en']}",
             "--no-auto-download", "--llm-url", "http://127.0.0.1:9/v1", "--model-dir", str(log_path.parent)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit_files)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"zapvoice serve exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("zapvoice serve did not become ready")
            time.sleep(0.2)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class HealthProbe:
    """GET /health every 20 ms on one keep-alive connection, in a thread: the worst latency and the failures."""

    def __init__(self, url: str):
        self.url = url
        self.worst_ms = 0.0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.worst_ms = max(self.worst_ms, (time.perf_counter() - started) * 1000)
                self.failures += not ok
                self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.worst_ms == 0 and time.monotonic() < deadline:  # connected before the attack starts
            time.sleep(0.01)
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Outcome:
    answer: str
    held_s: float | None = None  # None: the server did not hold anything worth timing
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    attack: str
    outcome: Outcome
    probe_ms: float
    probe_failures: int
    fds: tuple[int, int]
    rss: tuple[float, float]


def describe(raw: bytes) -> str:
    """'400 text/plain, not JSON' from a raw HTTP answer."""
    if not raw:
        return "closed, no answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = parts[1] if len(parts) > 1 else "?"
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    ctype = headers.get("content-type", "no content type").split(";")[0]
    following = ""
    if headers.get("content-length", "").isdigit():  # the bytes after it answer a second request
        length = int(headers["content-length"])
        body, rest = body[:length], body[length:]
        following = f"; then {describe(rest)}" if rest else ""
    try:
        decoded = json.loads(body)
    except ValueError:
        return f"{status} {ctype}, {'not JSON' if body else 'empty body'}{following}"
    shaped = isinstance(decoded, dict) and isinstance(decoded.get("error"), str)
    return f"{status} {ctype}, {'JSON error' if shaped else 'JSON'}{following}"


def read_answer(sock: socket.socket, deadline: float) -> tuple[bytes, float | None]:
    """What the server sends until it closes (or `deadline`): the bytes, and when it closed (None: still open)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk
    return data, None


def exchange(port: int, payload: bytes, bound_s: float = 5.0) -> Outcome:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass
        raw, closed = read_answer(sock, started + bound_s)
    return Outcome(describe(raw), (closed or time.monotonic()) - started)


# --- item 3: header size --------------------------------------------------------------------


def huge_header_line(port: int, megabytes: int, bound_s: float) -> Outcome:
    """One header line of `megabytes` MB, sent as fast as loopback takes it."""
    started = time.monotonic()
    deadline = started + bound_s
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sent = 0
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            while sent < megabytes and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent += 1
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass
        raw, closed = read_answer(sock, deadline)
    held = (closed or time.monotonic()) - started
    return Outcome(describe(raw), held, [f"{sent} of {megabytes} MB sent before the answer"])


def header_of(size: int) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def many_headers(count: int) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 30) for i in range(count)) + b"\r\n"


# --- item 4: slow and idle connections ---------------------------------------------------------


def hold_connections(port: int, count: int, first: bytes, drip: bytes | None, every_s: float,
                     bound_s: float) -> Outcome:
    """`count` connections that send `first`, then `drip` every `every_s` (None: nothing more), until the
    server closes them or `bound_s` passes. Held: how long each stayed open (median and worst)."""
    started = time.monotonic()
    socks, opened_at, closed_at, answers = [], {}, {}, {}
    refused = 0
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            refused += 1
            continue
        sock.setblocking(False)
        try:
            sock.send(first)
        except OSError:
            pass
        socks.append(sock)
        opened_at[sock] = time.monotonic()
    deadline = started + bound_s
    while len(closed_at) < len(socks) and time.monotonic() < deadline:
        for sock in socks:
            if sock in closed_at:
                continue
            try:
                data = sock.recv(65536)
                if data:
                    answers[sock] = answers.get(sock, b"") + data
                    continue
                closed_at[sock] = time.monotonic()
            except BlockingIOError:
                if drip is not None:
                    try:
                        sock.send(drip)
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed_at[sock] = time.monotonic()
            except OSError:
                closed_at[sock] = time.monotonic()
        time.sleep(every_s)
    now = time.monotonic()
    held = [closed_at.get(sock, now) - opened_at[sock] for sock in socks]
    kinds: dict[str, int] = {}
    for sock in socks:
        kind = describe(answers.get(sock, b""))
        kinds[kind] = kinds.get(kind, 0) + 1
        sock.close()
    still_open = len(socks) - len(closed_at)
    notes = [f"held median {statistics.median(held):.1f} s, worst {max(held):.1f} s" if held else "none opened",
             f"{still_open} still open at the {bound_s:.0f} s bound" if still_open else "all closed by the server"]
    if refused:
        notes.append(f"{refused} connects failed")
    answer = "; ".join(f"{n} x {kind}" for kind, n in kinds.items())
    return Outcome(answer, max(held) if held else None, notes)


def body_trickle(port: int, bound_s: float) -> Outcome:
    """POST /llm (right token) declaring 64 KiB, then 1 KiB a second."""
    started = time.monotonic()
    head = (f"POST /llm HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            "Content-Length: 65536\r\n\r\n").encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        raw, closed = b"", None
        while time.monotonic() < started + bound_s and sent < 65536:
            try:
                sock.sendall(b" " * 1024)
                sent += 1024
            except OSError:
                break
            raw, closed = read_answer(sock, time.monotonic() + 1.0)
            if closed or raw:
                break
        if not closed:
            more, closed = read_answer(sock, time.monotonic() + 1.0)
            raw += more
    held = (closed or time.monotonic()) - started
    return Outcome(describe(raw), held, [f"{sent // 1024} KiB of 64 trickled", "closed by the server" if closed
                                         else "still open at the bound"])


def kept_alive_idle(port: int, bound_s: float) -> Outcome:
    """One GET /health, then silence: how long the server keeps the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        started = time.monotonic()
        _, closed = read_answer(sock, started + bound_s)
    return Outcome(describe(first), (closed or time.monotonic()) - started,
                   ["closed by the server" if closed else "still open at the bound"])


def fd_exhaustion(models: dict[str, Path], log_dir: Path, conns: int, bound_s: float) -> Row:
    """A server whose open-file limit is 256 (soft = hard, so it cannot raise it), `conns` idle connections
    (more than the limit), then fresh GET /health connections: what they get, when they work again."""
    service = Service(models, log_dir / "serve-nofile.log", nofile=256)
    try:
        before = (service.fds(), service.rss_mb())
        offset = service.log_size()
        flood = []
        started = time.monotonic()
        with HealthProbe(service.url) as probe:
            for _ in range(conns):
                try:
                    flood.append(socket.create_connection(("127.0.0.1", service.port), timeout=1))
                except OSError:
                    break
            during = fresh_health(service.port)
            recovered = None
            while time.monotonic() < started + bound_s:
                if fresh_health(service.port).startswith("200"):
                    recovered = time.monotonic() - started
                    break
                time.sleep(0.5)
            after = (service.fds(), service.rss_mb())
        for sock in flood:
            sock.close()
        said = [line.strip() for line in service.log_since(offset).splitlines()
                if "connection" in line.lower() or "file" in line.lower()][:2]
        notes = [f"{len(flood)} idle connections opened",
                 f"fresh /health recovered after {recovered:.1f} s" if recovered else
                 f"fresh /health still failing at the {bound_s:.0f} s bound",
                 f"log: {' | '.join(said) if said else 'nothing'}"]
        return Row(f"{conns} idle connections, open-file limit 256", Outcome(f"fresh /health: {during}", recovered,
                   notes), probe.worst_ms, probe.failures, (before[0], after[0]), (before[1], after[1]))
    finally:
        service.stop()


def fresh_health(port: int) -> str:
    try:
        return exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3).answer
    except OSError as exc:
        return f"connect failed: {type(exc).__name__}"


# --- item 9: malformed requests -------------------------------------------------------------------

MALFORMED = {
    "method FOO": b"FOO /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in a header value": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "CR in a header value": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "space in a header name": b"GET /health HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
    "header without a colon": b"GET /health HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "obs-fold continuation line": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "duplicate Content-Length": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "Content-Length and Transfer-Encoding": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "Content-Length: abc": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "Content-Length: -1": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "Content-Length of 30 digits": b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n",
    "Transfer-Encoding: gzip": b"POST /tts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad chunk size": b"POST /tts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    "LF-only line ends": b"GET /health HTTP/1.1\nHost: x\n\n",
    "HTTP/1.2": b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
    "HTTP/3.0": b"GET /health HTTP/3.0\r\nHost: x\r\n\r\n",
    "space in the target": b"GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n",
    "byte 0xff in the target": b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "binary garbage": b"\x00\x01\x02\x03garbage\r\n\r\n",
    "TLS ClientHello": bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00" * 130,
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "WebSocket upgrade on /stt": b"GET /stt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
}


def nested_json_on_webhook(depth: int) -> Outcome:
    """The agent's webhook route (right secret) on a JSON body nested `depth` deep, under uvicorn in a thread."""
    from zapvoice.agent.zuckzapgo.webhook import create_agent_app

    from tests.support.servers import serve_in_thread

    class IdleAgent:
        calls: dict = {}
        reachable = True

        def poll_soon(self) -> None:
            pass

    running = serve_in_thread(create_agent_app(IdleAgent(), "hook-secret"))
    try:
        body = b"[" * depth + b"]" * depth
        payload = (b"POST /zuckzapgo/webhook?secret=hook-secret HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                   b"\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        return exchange(running.port, payload)
    finally:
        running.stop()


# --- item 12: hygiene ------------------------------------------------------------------------------


def status_of(service: Service, method: str, path: str, **kwargs) -> Outcome:
    answer = httpx.request(method, service.url + path, timeout=10, **kwargs)
    ctype = answer.headers.get("content-type", "").split(";")[0]
    text = answer.text[:120].replace("|", "/") if ctype == "application/json" and answer.status_code >= 400 else ""
    return Outcome(f"{answer.status_code} {ctype or 'no content type'}" + (f": {text}" if text else ""))


def token_in_query(service: Service) -> Outcome:
    offset = service.log_size()
    status = httpx.get(f"{service.url}/health?token={QUERY_SECRET}", timeout=5).status_code
    time.sleep(0.3)
    logged = QUERY_SECRET in service.log_since(offset)
    return Outcome(f"{status}; the secret {'IS' if logged else 'is not'} in the server log")


def unreadable_audio(service: Service) -> Outcome:
    answer = httpx.post(f"{service.url}/stt", content=b"RIFF" + b"x" * 100, timeout=10,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "audio/wav"})
    message = answer.json().get("error", "")
    return Outcome(f"{answer.status_code}: {'an object address (0x...)' if ' at 0x' in message else 'no address'} "
                   f"in {message[:90]!r}")


def client_disconnect(service: Service) -> Outcome:
    """POST /stt declaring a 1 MB WAV, 64 KiB of it, then the client goes away."""
    offset = service.log_size()
    audio = wav_bytes(__import__("numpy").zeros(16000 * 30, "float32"), 16000)
    head = (f"POST /stt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: audio/wav\r\n"
            f"Content-Length: {len(audio)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        sock.sendall(head + audio[:65536])
        time.sleep(0.3)
    time.sleep(1.0)
    said = service.log_since(offset).splitlines()
    errors = [line for line in said if " ERROR " in line or line.startswith("ERROR")]
    traceback = any("Traceback" in line for line in said)
    first = (errors or said or ["nothing"])[0].strip()[:100]
    return Outcome(f"{len(said)} log lines, {len(errors)} at ERROR, {'a' if traceback else 'no'} traceback: {first}")


def measure(service: Service, attack: str, run: Callable[[], Outcome]) -> Row:
    before = (service.fds(), service.rss_mb())
    with HealthProbe(service.url) as probe:
        time.sleep(0.1)
        outcome = run()
    time.sleep(0.5)
    after = (service.fds(), service.rss_mb())
    return Row(attack, outcome, probe.worst_ms, probe.failures, (before[0], after[0]), (before[1], after[1]))


def table(title: str, rows: list[Row]) -> str:
    lines = [f"### {title}", "", "| attack | answer | held | /health worst (failures) | fds before → after | "
             "RSS MB before → after | notes |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        held = "-" if row.outcome.held_s is None else f"{row.outcome.held_s:.1f} s"
        lines.append(f"| {row.attack} | {row.outcome.answer} | {held} | {row.probe_ms:.0f} ms ({row.probe_failures}) "
                     f"| {row.fds[0]} → {row.fds[1]} | {row.rss[0]:.0f} → {row.rss[1]:.0f} | "
                     f"{'; '.join(row.outcome.notes)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="3,4,9,12")
    parser.add_argument("--bound-s", type=float, default=45.0, help="longest any one attack runs")
    parser.add_argument("--big-header-mb", type=int, default=64)
    parser.add_argument("--conns", type=int, default=200, help="slow or idle connections per attack")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = parser.parse_args()
    run = start()
    items = set(args.items.split(","))
    work = Path(tempfile.mkdtemp(prefix="hostile-http-"))
    models = {"whisper": build_scripted_whisper(work / "whisper"),
              "pt": build_sine_voice(work / "voices", name="pt_BR-test-medium", espeak_voice="pt-br"),
              "en": build_sine_voice(work / "voices", name="en_US-test-medium", espeak_voice="en-us")}
    service = Service(models, work / "serve.log")
    bound = args.bound_s
    port = service.port
    report = [f"Machine: {os.cpu_count()} cores; open-file limit of this shell "
              f"{resource.getrlimit(resource.RLIMIT_NOFILE)}; attacks bounded at {bound:.0f} s.", ""]
    try:
        if "3" in items:
            report.append(table("Item 3: header size", [
                measure(service, f"one {args.big_header_mb} MB header line",
                        lambda: huge_header_line(port, args.big_header_mb, bound)),
                measure(service, "one 100 KiB header", lambda: exchange(port, header_of(100 * 1024))),
                measure(service, "2,000 headers (80 KB)", lambda: exchange(port, many_headers(2000))),
                measure(service, "one 8 KiB header (legitimate)", lambda: exchange(port, header_of(8 * 1024))),
            ]))
        if "4" in items:
            slow_head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            report.append(table("Item 4: idle and slow connections", [
                measure(service, f"{args.conns} connections, a header byte every 0.3 s",
                        lambda: hold_connections(port, args.conns, slow_head, b"a", 0.3, bound)),
                measure(service, "body trickle, 1 KiB/s", lambda: body_trickle(port, bound)),
                measure(service, f"{args.conns} connections that send nothing",
                        lambda: hold_connections(port, args.conns, b"", None, 0.3, bound)),
                measure(service, "kept alive after a request, then silent", lambda: kept_alive_idle(port, bound)),
                fd_exhaustion(models, work, 300, bound),
            ]))
        if "9" in items:
            rows = [measure(service, name, lambda payload=payload: exchange(port, payload))
                    for name, payload in MALFORMED.items()]
            rows.append(measure(service, "agent webhook, JSON nested 100,000 deep",
                                lambda: nested_json_on_webhook(100_000)))
            report.append(table("Item 9: malformed requests", rows))
        if "12" in items:
            tts = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
            report.append(table("Item 12: hygiene", [
                measure(service, "GET /docs (loopback)", lambda: status_of(service, "GET", "/docs")),
                measure(service, "GET /openapi.json (loopback)", lambda: status_of(service, "GET", "/openapi.json")),
                measure(service, "HEAD /health", lambda: status_of(service, "HEAD", "/health")),
                measure(service, 'POST /tts speed "1.0"',
                        lambda: status_of(service, "POST", "/tts", json={"text": "Oi", "speed": "1.0"}, **tts)),
                measure(service, "POST /tts speed true",
                        lambda: status_of(service, "POST", "/tts", json={"text": "Oi", "speed": True}, **tts)),
                measure(service, "GET /health?token=SECRET", lambda: token_in_query(service)),
                measure(service, "POST /stt unreadable WAV", lambda: unreadable_audio(service)),
                measure(service, "client leaves mid-body on /stt", lambda: client_disconnect(service)),
            ]))
    finally:
        service.stop()
    publish("hostile_http", [*provenance(run), "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
