"""The Examples/ package (a backend service built on the GatewayClient library, depending on this package by
path) builds on its own and does its job against a real gateway: twice, as a service that restarts would."""

import os
import pathlib
import subprocess

from gateway_fixtures import run_gateway

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_profile_service_example_runs_against_a_gateway(binaries, pb2, tmp_path):
    examples = ROOT / "Examples"
    # Without the manifest cache: SwiftPM reuses its build plan until a manifest changes, so a source file
    # added to this package (the example's path dependency) would be missing from a build left from before.
    build = subprocess.run(["swift", "build", "--package-path", str(examples), "--product", "profile-service",
                            "--disable-build-manifest-caching"], capture_output=True, timeout=1200)
    assert build.returncode == 0, build.stdout.decode()[-4000:] + build.stderr.decode()[-4000:]
    bin_dir = subprocess.run(["swift", "build", "--package-path", str(examples), "--show-bin-path"],
                             capture_output=True, check=True).stdout.decode().strip()
    with run_gateway(binaries, tmp_path / "data") as gateway:
        token = gateway.tokens("svc-example", email="svc@example.com")
        env = dict(os.environ, GATEWAY_SERVER=f"127.0.0.1:{gateway.port}", GATEWAY_TOKEN=token,
                   PROFILE_EMAIL="svc@example.com")
        runs = [subprocess.run([f"{bin_dir}/profile-service"], env=env, capture_output=True, timeout=120) for _ in range(2)]
        for run in runs:
            assert run.returncode == 0, run.stdout.decode() + run.stderr.decode()
            assert run.stdout.decode().splitlines()[-1] == "ok: user, avatar and event round-tripped"
            assert token not in (run.stdout + run.stderr).decode()
        # The second run found the user the first one created.
        first, second = (r.stdout.decode().splitlines()[0] for r in runs)
        assert first == second and first.endswith("svc@example.com")
