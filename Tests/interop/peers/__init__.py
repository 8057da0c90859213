"""Third-party gRPC peers prepared by scripts/interop-peers (from Debian source packages and PyPI).

    import peers
    env = peers.load_env()                      # runs scripts/interop-peers --quiet if needed
    port = peers.free_port()
    with peers.Process(peers.go_server_cmd(env, port), port=port):
        peers.run_client(peers.python_client_cmd(env, port, "large_unary"))

Every command targets 127.0.0.1. Note that the peers' servers themselves bind every interface (the
Python server listens on [::]:P, the Go servers on :P); that cannot be changed without patching them.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import time
from typing import Mapping

ROOT = pathlib.Path(__file__).resolve().parents[3]
ENV_FILE = ROOT / ".cache/interop/env"
SCRIPT = ROOT / "scripts/interop-peers"

# The 14 non-auth, non-compression interop cases both the Python and the Go client run (see scripts/interop-peers).
CASES = (
    "empty_unary", "large_unary", "server_streaming", "client_streaming", "ping_pong",
    "cancel_after_begin", "cancel_after_first_response", "empty_stream", "status_code_and_message",
    "unimplemented_method", "unimplemented_service", "custom_metadata", "timeout_on_sleeping_server",
    "special_status_message",
)

HOST = "127.0.0.1"


def load_env(prepare: bool = True) -> dict[str, str]:
    """Reads .cache/interop/env (KEY=value lines); runs scripts/interop-peers first if `prepare`."""
    if prepare:
        subprocess.run([str(SCRIPT), "--quiet"], cwd=ROOT, check=True)
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout} s")


def _tls_client_args(env: Mapping[str, str]) -> list[str]:
    return ["--use_tls=true", "--use_test_ca=true",
            f"--server_host_override={env['INTEROP_SERVER_HOST_OVERRIDE']}"]


# --- commands: (argv, cwd) ------------------------------------------------------------------------------

def python_server_cmd(env: Mapping[str, str], port: int, tls: bool = False):
    argv = [env["INTEROP_PYTHON"], "-m", env["INTEROP_PY_SERVER_MODULE"], f"--port={port}"]
    if tls:
        argv.append("--use_tls=true")
    return argv, env["INTEROP_PY_DIR"]


def python_client_cmd(env: Mapping[str, str], port: int, case: str, tls: bool = False,
                      host: str = HOST):
    argv = [env["INTEROP_PYTHON"], "-m", env["INTEROP_PY_CLIENT_MODULE"], f"--server_host={host}",
            f"--server_port={port}", f"--test_case={case}"]
    if tls:
        argv += _tls_client_args(env)
    return argv, env["INTEROP_PY_DIR"]


def go_server_cmd(env: Mapping[str, str], port: int, tls: bool = False):
    argv = [env["INTEROP_GO_SERVER"], f"--port={port}"]
    if tls:
        argv.append("--use_tls=true")
    return argv, None


def go_client_cmd(env: Mapping[str, str], port: int, case: str, tls: bool = False, host: str = HOST):
    argv = [env["INTEROP_GO_CLIENT"], f"--server_host={host}", f"--server_port={port}",
            f"--test_case={case}"]
    if tls:
        # --use_test_ca alone resolves testdata/ca.pem inside the GOPATH overlay; be explicit.
        argv += _tls_client_args(env) + [f"--ca_file={env['INTEROP_CA']}"]
    return argv, None


def go_bench_server_cmd(env: Mapping[str, str], port: int, test_name: str = "grpc-gateway-peer"):
    """grpc-go's benchmark/server: grpc.testing.BenchmarkService on :port. -test_name is mandatory; the
    server always CPU-profiles into /tmp/<test_name>.cpu and, on SIGINT, writes /tmp/<test_name>.mem."""
    return [env["INTEROP_GO_BENCH_SERVER"], f"-port={port}", f"-test_name={test_name}"], None


# --- processes ------------------------------------------------------------------------------------------

class Process:
    """A peer server for the duration of a `with` block; waits until `port` accepts connections."""

    def __init__(self, cmd, port: int | None = None, timeout: float = 15.0,
                 stop_signal: int = signal.SIGINT):
        self.argv, self.cwd = cmd
        self.port, self.timeout, self.stop_signal = port, timeout, stop_signal
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        if self.port is not None:
            try:
                wait_port(self.port, self.timeout, self.proc)
            except Exception:
                self.__exit__(None, None, None)
                raise
        return self.proc

    def __exit__(self, *exc) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(self.stop_signal)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_client(cmd, timeout: float = 60.0) -> subprocess.CompletedProcess:
    argv, cwd = cmd
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def grpc_frame(message: bytes = b"", compressed: bool = False) -> bytes:
    """Length-prefixed gRPC message (gRPC PROTOCOL-HTTP2.md): flag byte, 4-byte big-endian length, bytes."""
    return bytes([1 if compressed else 0]) + len(message).to_bytes(4, "big") + message

