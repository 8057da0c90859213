"""Shared fixtures for the black-box tests: the built binaries and Python stubs compiled from our schemas."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def bin_dir() -> pathlib.Path:
    """Where `swift build` put the executables (scripts/test exports GATEWAY_BIN_DIR)."""
    env = os.environ.get("GATEWAY_BIN_DIR")
    if env:
        return pathlib.Path(env)
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    return pathlib.Path(out)


@pytest.fixture(scope="session")
def binaries() -> pathlib.Path:
    return bin_dir()


@pytest.fixture(scope="session")
def pb2(tmp_path_factory) -> pathlib.Path:
    """Compiles proto/ and Tests/Protos with grpcio-tools' protoc into a temporary package path."""
    from grpc_tools import protoc
    import grpc_tools

    out = tmp_path_factory.mktemp("pb2")
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    protos = [str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto")]
    tests = [str(p.relative_to(ROOT / "Tests/Protos")) for p in (ROOT / "Tests/Protos").rglob("*.proto")]
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{ROOT / 'Tests/Protos'}", f"-I{well_known}",
            f"--python_out={out}", f"--grpc_python_out={out}", *protos, *tests]
    if protoc.main(args) != 0:
        raise RuntimeError("grpc_tools.protoc failed")
    sys.path.insert(0, str(out))
    return out


# --- servers and peers ------------------------------------------------------------------------------------

import contextlib
import socket
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def serve(command, port=None, **kwargs):
    """Runs a server until the block ends. Ours print `listening on HOST:PORT`; for others pass `port`."""
    # stderr goes to a file, not a pipe: a server that logs more than a pipe holds must not block on it.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, **kwargs)
    proc.log = log
    try:
        if port is None:
            line = proc.stdout.readline()
            if not line.startswith("listening on "):
                proc.wait(timeout=15)
                log.seek(0)
                raise RuntimeError(f"{command[0]} did not start: {line}{log.read()}")
            port = int(line.rsplit(":", 1)[1])
        else:
            wait_for_port(port)
        proc.port = port
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def interop_peers() -> dict:
    """Third-party interop clients and servers, prepared (and cached) by scripts/interop-peers."""
    subprocess.run([str(ROOT / "scripts/interop-peers"), "--quiet"], check=True)
    env = {}
    for line in (ROOT / ".cache/interop/env").read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


@pytest.fixture(scope="session")
def interop_server(binaries):
    """Our interop-server, for the whole session."""
    with serve([str(binaries / "interop-server"), "--port", "0"]) as proc:
        yield proc


@pytest.fixture(scope="session")
def moto():
    """One moto server (Tests/aws/moto_peer.py) for the session; tests isolate themselves by table and bucket."""
    from gateway_fixtures import run_moto
    with run_moto() as server:
        yield server


@pytest.fixture(scope="session")
def testing_pb(tmp_path_factory):
    """grpc.testing stubs under a module path that does not collide with the `grpc` package."""
    from grpc_tools import protoc
    out = tmp_path_factory.mktemp("testing_pb")
    pkg = out / "src/proto/grpc/testing"
    pkg.mkdir(parents=True)
    for name in ["test", "messages", "empty"]:
        text = (pathlib.Path("/usr/share/grpc-proto") / f"grpc/testing/{name}.proto").read_text()
        (pkg / f"{name}.proto").write_text(text.replace('import "grpc/testing/', 'import "src/proto/grpc/testing/'))
    for d in [out / "src", out / "src/proto", out / "src/proto/grpc", pkg]:
        (d / "__init__.py").touch()
    files = [f"src/proto/grpc/testing/{n}.proto" for n in ["test", "messages", "empty"]]
    assert protoc.main(["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}", *files]) == 0
    sys.path.insert(0, str(out))
    from src.proto.grpc.testing import messages_pb2, test_pb2_grpc
    return messages_pb2, test_pb2_grpc
