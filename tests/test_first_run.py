"""What a new user meets on the first start: taken ports, --allow-no-auth, before any model loads."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.test_cli import free_port, run


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(("command", "flag"), [
    (["serve"], "--port"), (["serve", "--port", str(free_port())], "--gateway-port"),
    (["agent", "--zuckzapgo-url", "http://127.0.0.1:9"], "--port"), (["gateway", "--echo"], "--gateway-port"),
])
def test_a_taken_port_stops_start_up_before_the_models_load(tmp_path, command, flag):
    """The model named does not exist: reaching it would be a model error, not the port's line."""
    with taken_port() as port:
        result = run(*command, flag, str(port), "--whisper-model", str(tmp_path / "absent"),
                     env={"ZAPVOICE_ZUCKZAPGO_TOKEN": "t"}, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"zapvoice: cannot listen on 127.0.0.1:{port} ({flag}): Address already in use: another process is "
        f"using it; stop it or pass another {flag}"]


def test_allow_no_auth_on_a_public_address_is_logged(tmp_path):
    port = free_port()
    result = run("serve", "--host", "0.0.0.0", "--allow-no-auth", "--port", str(port), "--model-dir", str(tmp_path),
                 "--no-auto-download")
    assert result.returncode == 2  # the model is missing; the warning came first
    assert f"with no token (--allow-no-auth): anyone who reaches port {port}" in result.stderr
    quiet = run("serve", "--allow-no-auth", "--model-dir", str(tmp_path), "--no-auto-download")
    assert "no token" not in quiet.stderr
