"""`gateway-bench` checks itself: every scenario against our benchmark server, grpc-go's and the gateway, an open
loop that delivers the rate asked for, and a server stall that shows in the open-loop latencies (no coordinated
omission). No throughput threshold: nothing here depends on how fast the machine is."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import free_port, serve, wait_for_port
from gateway_fixtures import run_gateway

BENCHMARK_SCENARIOS = ["unary", "streaming-ping-pong", "streaming-qps", "server-streaming", "client-streaming"]
GATEWAY_SCENARIOS = ["health", "get-user", "publish", "publish-batch", "publish-stream", "fanout", "upload", "download"]


def bench(binaries, port, scenario, *extra, duration="1", warmup="0.5"):
    out = subprocess.run([str(binaries / "gateway-bench"), "run", "--target", f"127.0.0.1:{port}", "--scenario", scenario,
                          "--duration", duration, "--warmup", warmup, "--json", *extra],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def bench_server(binaries):
    with serve([str(binaries / "gateway-bench"), "server", "--port", "0"]) as proc:
        yield proc


@pytest.mark.parametrize("scenario", BENCHMARK_SCENARIOS)
def test_every_scenario_against_our_benchmark_server(binaries, bench_server, scenario):
    report = bench(binaries, bench_server.port, scenario, "--server-pid", str(bench_server.pid), "--payload", "100")
    assert report["errors"] == {}
    assert report["operations"] > 0 and report["operationsPerSecond"] > 0
    assert report["server"]["cores"] > 0
    assert (report.get("latency") is not None) == (scenario not in ("server-streaming", "client-streaming"))
    if "latency" in report:
        latency = report["latency"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p999"] <= latency["max"]
    assert report["notes"] == []


@pytest.mark.parametrize("scenario", BENCHMARK_SCENARIOS)
def test_every_scenario_against_grpc_go(binaries, interop_peers, scenario):
    # A fresh server each time: grpc-go 1.33's UnconstrainedStreamingCall (its only one-way streaming method)
    # exits the process with log.Fatalf when a client ends the stream.
    port = free_port()
    with serve([interop_peers["INTEROP_GO_BENCH_SERVER"], "-port", str(port), "-test_name", "gateway-bench"], port=port):
        report = bench(binaries, port, scenario)
    assert report["errors"] == {} and report["operations"] > 0
    if scenario in ("server-streaming", "client-streaming"):
        assert report["notes"] == [f"the server has no {'StreamingFromServer' if scenario == 'server-streaming' else 'StreamingFromClient'}: "
                                   "used UnconstrainedStreamingCall"]


def test_open_loop_delivers_the_rate_asked_for(binaries, bench_server):
    report = bench(binaries, bench_server.port, "unary", "--rate", "500", duration="3")
    assert report["errors"] == {} and report["openLoop"]
    assert abs(report["operationsPerSecond"] - 500) / 500 < 0.02, report["operationsPerSecond"]


def test_a_server_stall_shows_in_open_loop_latencies(binaries, tmp_path):
    # Our own server, stopped with SIGSTOP for one second in the middle of the measured window: requests keep
    # their schedule, so those meant to start during the stall wait for it, and the tail shows it.
    with serve([str(binaries / "gateway-bench"), "server", "--port", "0"]) as server:
        run = subprocess.Popen([str(binaries / "gateway-bench"), "run", "--target", f"127.0.0.1:{server.port}",
                                "--scenario", "unary", "--rate", "200", "--duration", "4", "--warmup", "0.5", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        os.kill(server.pid, signal.SIGSTOP)
        time.sleep(1)
        os.kill(server.pid, signal.SIGCONT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == {}
    latency = report["latency"]
    assert latency["p99"] >= 500_000 and latency["max"] >= 900_000, latency  # microseconds
    assert latency["p50"] < latency["p99"] / 10, latency


@pytest.fixture(scope="module")
def gateway(binaries, pb2, tmp_path_factory):
    # One user at load-test rates: without the per-user rate limits.
    with run_gateway(binaries, tmp_path_factory.mktemp("bench-gateway"), "--reads-per-second", "0",
                     "--writes-per-second", "0") as gw:
        yield gw


@pytest.mark.parametrize("scenario", GATEWAY_SCENARIOS)
def test_every_gateway_scenario(binaries, gateway, scenario):
    extra = ["--local-login", "--data-dir", str(gateway.data_dir), "--connections", "2", "--streams", "4"]
    if scenario in ("upload", "download"):
        extra += ["--payload", "100000"]
    if scenario == "fanout":
        extra += ["--rate", "100"]
    report = bench(binaries, gateway.port, scenario, *extra)
    assert report["errors"] == {}, report
    assert report["operations"] > 0
    if scenario == "fanout":
        assert report["notes"][-1] == "every subscriber received every event", report["notes"]
        assert report["notes"][0].endswith("to 8 subscribers")


def test_gateway_scenarios_need_a_token(binaries, gateway):
    out = subprocess.run([str(binaries / "gateway-bench"), "run", "--target", f"127.0.0.1:{gateway.port}",
                          "--scenario", "get-user"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--local-login" in out.stderr


def test_idle_connections_are_opened_and_held(binaries, bench_server):
    out = subprocess.run([str(binaries / "gateway-bench"), "idle", "--target", f"127.0.0.1:{bench_server.port}",
                          "--connections", "150", "--hold", "0.2"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "ready 150\n", out.stderr
