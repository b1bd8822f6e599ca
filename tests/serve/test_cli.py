"""``clapkit serve``: starts on loopback with the model recorded in the index, refuses what it cannot serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from clapkit import cli
from clapkit.serve.server import is_loopback


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def primary_address() -> str:
    """This machine's address on its default route (a UDP "connect" sends nothing), or 127.0.0.1 without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def test_serve_command_answers_on_loopback_with_the_index_model(built_library):
    _, index_dir = built_library
    port = free_port()
    command = [sys.executable, "-m", "clapkit.cli", "serve", "--index", str(index_dir), "--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, f"the service did not answer; exit {process.poll()}"
        assert health["items"] == 7 and health["model"]["name"] == "micro-htsat-bert"
        found = httpx.get(f"http://127.0.0.1:{port}/api/search", params={"q": "rain", "k": 3}).json()["results"]
        assert len(found) == 3
        address = primary_address()
        if not address.startswith("127."):
            with socket.socket() as other:  # nothing listens on the machine's other addresses
                other.settimeout(2)
                assert other.connect_ex((address, port)) != 0
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "open http://127.0.0.1:" in process.stderr.read()


def test_serve_refuses_a_missing_index(tmp_path, capsys):
    assert cli.main(["serve", "--index", str(tmp_path / "none")]) == 2
    assert "not a sound index" in capsys.readouterr().err


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
