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
