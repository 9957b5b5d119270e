"""`zapvoice health` as a container's HEALTHCHECK runs it: against real serve and gateway servers on free ports,
finding the port by the same flags, environment and config file the running command was given."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import serve_in_thread
from tests.test_cli import ZAPVOICE, free_port, run
from tests.test_cli_gateway import start
from zapvoice.health import HealthError, health_url, running_argv
from zapvoice.settings import Settings


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.communicate(timeout=20)


def test_a_gateway_is_found_on_its_own_port_by_flag_environment_or_config_file(tmp_path):
    port = free_port()
    process = start("gateway", "--echo", "--gateway-port", str(port), ready_url=f"http://127.0.0.1:{port}/health")
    config = tmp_path / "zapvoice.toml"
    config.write_text(f"[gateway]\nport = {port}\n")
    try:
        by_flag = run("health", "gateway", "--echo", "--gateway-port", str(port))
        by_env = run("health", "gateway", env={"ZAPVOICE_GATEWAY__PORT": str(port)})
        by_file = run("health", "--timeout", "2", "gateway", "--config", str(config))
    finally:
        stop(process)
    after = run("health", "gateway", "--gateway-port", str(port))
    for result in (by_flag, by_env, by_file):
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == f'healthy: http://127.0.0.1:{port}/health {{"status":"ok","calls":0}}\n'
    assert after.returncode == 1 and "Connection refused" in after.stdout and len(after.stdout.splitlines()) == 1


def test_the_service_is_checked_on_service_port(service):
    result = run("health", "serve", env={"ZAPVOICE_SERVICE__PORT": str(service.port)})
    agent = run("health", "agent", "--port", str(service.port))  # the agent's HTTP side is on service.port too
    assert result.returncode == 0 and result.stdout == f'healthy: {service.url}/health {{"status":"ok"}}\n'
    assert agent.returncode == 0 and agent.stdout == result.stdout


def test_an_answer_other_than_200_is_unhealthy():
    async def failing(_):
        return JSONResponse({"status": "stopping"}, status_code=503)

    running = serve_in_thread(Starlette(routes=[Route("/health", failing)]))
    try:
        result = run("health", "serve", "--port", str(running.port))
    finally:
        running.stop()
    assert result.returncode == 1 and result.stdout == f"unhealthy: {running.url}/health answered HTTP 503\n"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="makes its certificate with the openssl command")
def test_a_tls_gateway_is_checked_over_https_although_its_certificate_names_another_host(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=gateway.example", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    tls = ("--gateway-port", str(port), "--gateway-certfile", str(cert), "--gateway-keyfile", str(key))
    gateway = subprocess.Popen([ZAPVOICE, "gateway", "--echo", *tls], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert gateway.stdout is not None
        for line in gateway.stdout:  # the gateway says when it listens
            if "gateway listening on wss://" in line:
                break
        result = run("health", "gateway", *tls)
    finally:
        stop(gateway)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"healthy: https://127.0.0.1:{port}/health")


def test_the_url_follows_the_listening_address_and_the_gateway_default_port():
    def url(command: str, **sections) -> str:
        return health_url(command, Settings.model_validate(sections))

    assert url("agent", service={"host": "0.0.0.0", "port": 8080}) == "http://127.0.0.1:8080/health"
    assert url("serve", service={"host": "::"}) == "http://[::1]:8000/health"
    assert url("serve", service={"host": "10.1.2.3"}) == "http://10.1.2.3:8000/health"
    assert url("gateway", service={"port": 9000}) == "http://127.0.0.1:4143/health"
    with pytest.raises(HealthError, match="listens on port 0"):
        url("gateway", gateway={"port": 0})


def test_with_no_command_the_one_pid_1_runs_is_checked():
    assert running_argv(b"/opt/venv/bin/python\0/opt/venv/bin/zapvoice\0gateway\0-c\0\0") == ["gateway", "-c", ""]
    assert running_argv(b"/sbin/docker-init\0--\0zapvoice\0--config\0z.toml\0serve\0") == ["--config", "z.toml",
                                                                                           "serve"]
    for cmdline in (b"/sbin/init\0splash\0", b"/opt/venv/bin/zapvoice\0", b""):
        with pytest.raises(HealthError, match="PID 1 runs no zapvoice command"):
            running_argv(cmdline)


def test_a_command_without_a_port_is_refused():
    result = run("health", "models", "list")
    assert result.returncode == 2 and "`zapvoice models list` serves nothing to check" in result.stderr
