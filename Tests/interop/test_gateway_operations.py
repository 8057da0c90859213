"""Configuration and observability of the built `gateway`, from outside: the precedence of flags, `GATEWAY_*`
variables and the JSON configuration file as printed at start; one JSON log line per RPC on stderr (method,
status, duration, peer, user id, never a token); Prometheus counters on `--metrics-port`; configuration errors
naming the key."""

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import free_port, serve
from gateway_fixtures import Gateway

BOGUS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl"


def clean_environment(**extra):
    """The test's environment without any GATEWAY_* variable of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


def json_lines(gateway):
    """Every stderr line parsed as JSON (each must be one object)."""
    lines = [line for line in gateway.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return parsed


def rpc_lines(gateway, expected, timeout=5.0):
    """The `rpc` log lines, once there are `expected` of them (the line is written as the status goes out)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in json_lines(gateway) if line["message"] == "rpc"]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def sample(exposition, name, **labels):
    """The value of the series `name{labels}` (labels in any order), or None."""
    for line in exposition.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == {k: str(v) for k, v in labels.items()}:
            return float(match.group(3))
    return None


@pytest.fixture(scope="module")
def users(pb2):
    from gateway.user.v1 import user_service_pb2 as messages, user_service_pb2_grpc as services
    return messages, services


@pytest.fixture(scope="module")
def observed(binaries, pb2, users, tmp_path_factory):
    """A gateway configured from all four sources, after a few RPCs: (gateway, metrics port, tokens used)."""
    base = tmp_path_factory.mktemp("gateway-operations")
    data_dir = base / "data"
    config = base / "gateway.json"
    config.write_text(json.dumps({
        "port": 65000,                       # beaten by the flag
        "data_dir": str(data_dir),           # from the file
        "log": {"level": "warning", "format": "text"},  # level beaten by the environment, format by the flag
        "auth": {"leeway_seconds": 30},      # from the file
    }))
    metrics_port = free_port()
    command = [str(binaries / "gateway"), "--config", str(config), "--port", "0", "--log-format", "json",
               "--metrics-port", str(metrics_port)]
    env = clean_environment(GATEWAY_PORT="65001", GATEWAY_LOG_LEVEL="info", GATEWAY_AUTH_LEEWAY_SECONDS="")
    with serve(command, env=env) as proc:
        gateway = Gateway(proc, data_dir)
        messages, services = users
        stub = services.UserServiceStub(gateway.channel)
        token = gateway.tokens("ops-alice", email="alice@ops.example")
        auth = (("authorization", f"Bearer {token}"),)
        created = stub.CreateUser(messages.CreateUserRequest(email="alice@ops.example", display_name="Alice"),
                                  metadata=auth, timeout=10)
        assert stub.GetCurrentUser(messages.GetCurrentUserRequest(), metadata=auth, timeout=10).id == created.id
        for metadata in ((), (("authorization", f"Bearer {BOGUS_TOKEN}"),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetCurrentUser(messages.GetCurrentUserRequest(), metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        yield gateway, metrics_port, [token, BOGUS_TOKEN]


def test_the_printed_configuration_shows_each_value_with_its_source(observed):
    gateway, metrics_port, _ = observed
    [line] = [line for line in json_lines(gateway) if line["message"] == "configuration"]
    shown = line["metadata"]
    assert shown["port"] == "0 (flag)", "a flag beats the environment and the file"
    assert shown["log.level"] == "info (env)", "the environment beats the file"
    assert shown["log.format"] == "json (flag)"
    assert shown["auth.leeway_seconds"] == "30 (file)", "an empty variable is unset"
    assert shown["data_dir"] == f"{gateway.data_dir} (file)"
    assert shown["metrics_port"] == f"{metrics_port} (flag)"
    assert shown["host"] == "127.0.0.1 (default)"
    assert shown["auth.firebase_project_id"] == "none (default)"
    assert shown["config_file"].endswith("gateway.json")


def test_one_json_log_line_per_rpc_without_tokens(observed):
    gateway, _, tokens = observed
    lines = rpc_lines(gateway, 4)
    assert [(l["metadata"]["rpc.method"], l["metadata"]["rpc.grpc.status_code"]) for l in lines] == [
        ("gateway.user.v1.UserService/CreateUser", "OK"),
        ("gateway.user.v1.UserService/GetCurrentUser", "OK"),
        ("gateway.user.v1.UserService/GetCurrentUser", "UNAUTHENTICATED"),
        ("gateway.user.v1.UserService/GetCurrentUser", "UNAUTHENTICATED"),
    ]
    for line in lines:
        assert line["level"] == "info" and line["label"] == "gateway"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
        metadata = line["metadata"]
        assert isinstance(metadata["rpc.duration_ms"], (int, float)) and 0 <= metadata["rpc.duration_ms"] < 10_000
        assert re.fullmatch(r"ipv4:127\.0\.0\.1:\d+", metadata["net.peer"]), metadata["net.peer"]
    assert [l["metadata"].get("user.id") for l in lines] == ["ops-alice", "ops-alice", None, None]
    # Why a credential was refused is on the call's own line: one line per refused call, not two.
    assert [l["metadata"].get("auth.refused") for l in lines] == [None, None, "noCredential", "malformed"]
    assert not [l for l in json_lines(gateway) if l["message"] == "credential refused"]

    stderr = gateway.log()
    for token in tokens:
        for part in [token] + token.split("."):
            assert part not in stderr, "no token (nor any part of one) reaches the log"
    assert "Bearer" not in stderr


def test_metrics_count_rpcs_by_method_and_code(observed):
    _, metrics_port, _ = observed
    exposition = scrape(metrics_port)
    create = "gateway.user.v1.UserService/CreateUser"
    current = "gateway.user.v1.UserService/GetCurrentUser"
    assert sample(exposition, "rpc_server_started_total", rpc_method=create) == 1
    assert sample(exposition, "rpc_server_started_total", rpc_method=current) == 3
    assert sample(exposition, "rpc_server_handled_total", rpc_method=create, rpc_grpc_status_code="OK") == 1
    assert sample(exposition, "rpc_server_handled_total", rpc_method=current, rpc_grpc_status_code="OK") == 1
    assert sample(exposition, "rpc_server_handled_total", rpc_method=current,
                  rpc_grpc_status_code="UNAUTHENTICATED") == 2
    assert sample(exposition, "rpc_server_duration_seconds_count", rpc_method=current) == 3
    assert sample(exposition, "rpc_server_duration_seconds_bucket", rpc_method=current, le="+Inf") == 3
    assert sample(exposition, "rpc_server_active_streams", rpc_method=current) == 0
    # Refused calls never reach the handler, so only the two served requests were read.
    assert sample(exposition, "rpc_server_request_messages_total", rpc_method=current) == 1
    assert sample(exposition, "rpc_server_response_messages_total", rpc_method=create) == 1
    assert sample(exposition, "rpc_server_request_bytes_total", rpc_method=create) > 0
    assert sample(exposition, "rpc_server_response_bytes_total", rpc_method=create) > 0
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/", timeout=10)
    assert missing.value.code == 404


def run_failing(binaries, tmp_path, *args, **env):
    result = subprocess.run([str(binaries / "gateway"), "--data-dir", str(tmp_path / "data"), *args],
                            capture_output=True, text=True, timeout=60, env=clean_environment(**env))
    assert result.returncode != 0, result.stdout + result.stderr
    assert "listening on" not in result.stdout
    return result.stderr


@pytest.mark.parametrize("content, expected", [
    ({"auth": {"projectid": "p"}}, 'unknown key "auth.projectid"'),
    ({"port": 50051, "colour": "blue"}, 'unknown key "colour"'),
    ({"port": "50051"}, '"port" must be an integer, not a string'),
    ({"log": {"level": "loud"}}, '"log.level" must be one of trace, debug, info, notice, warning, error, critical'),
])
def test_a_bad_configuration_file_stops_the_gateway_naming_the_key(binaries, tmp_path, content, expected):
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps(content))
    stderr = run_failing(binaries, tmp_path, "--config", str(config))
    assert expected in stderr and str(config) in stderr


def test_configuration_errors_name_their_source(binaries, tmp_path):
    assert 'GATEWAY_PORT=http: "http" is not an integer' in run_failing(binaries, tmp_path, GATEWAY_PORT="http")
    toml = tmp_path / "gateway.toml"
    toml.write_text('port = 1\n')
    assert "only JSON" in run_failing(binaries, tmp_path, "--config", str(toml))
    config = tmp_path / "from-env.json"
    config.write_text('{"metrics_port": 70000}')
    assert f'{config}: "metrics_port" must be between 0 and 65535, not 70000' in run_failing(
        binaries, tmp_path, GATEWAY_CONFIG=str(config))
    assert "not a loopback address" in run_failing(binaries, tmp_path, "--host", "0.0.0.0")


def test_calls_the_transport_ends_are_logged_and_counted_with_the_status_sent(binaries, tmp_path):
    """A call the transport ends itself (a bad request message) is reported with the status the client got,
    never CANCELLED (it was 2-7 in 20: the handler's cancellation raced the transport's status); calls refused
    before any handler (an unknown method, a malformed grpc-timeout) are logged and counted too."""
    from test_h2_edge_cases import Client, frame
    metrics_port = free_port()
    command = [str(binaries / "gateway"), "--data-dir", str(tmp_path / "data"), "--port", "0", "--log-format", "json",
               "--metrics-port", str(metrics_port)]
    check = "/grpc.health.v1.Health/Check"
    bad_messages = {
        "RESOURCE_EXHAUSTED": bytes([0]) + (5 << 20).to_bytes(4, "big"),  # a length prefix over the 4 MiB limit
        "INTERNAL": frame(b"\x0a\x01x")[:-1],                               # the stream ends inside the message
    }
    with serve(command, env=clean_environment()) as proc:
        gateway = Gateway(proc, tmp_path / "data")
        client = Client(proc.port)
        try:
            sent = []
            for _ in range(10):
                for expected, body in bad_messages.items():
                    st = client.call(check, body)
                    sent.append(st.grpc_status)
                    assert st.grpc_status == getattr(grpc.StatusCode, expected).value[0], client.describe(st.id)
                st = client.call(check, frame(b"", flag=1))  # compressed without grpc-encoding
                assert st.grpc_status == grpc.StatusCode.INTERNAL.value[0], client.describe(st.id)
            unknown = client.call("/grpc.health.v1.Health/Nope", frame(b""))
            assert unknown.grpc_status == grpc.StatusCode.UNIMPLEMENTED.value[0], client.describe(unknown.id)
            malformed = client.call(check, frame(b""), extra=[("grpc-timeout", "soon")])
            assert malformed.grpc_status is not None, client.describe(malformed.id)
        finally:
            client.close()
        lines = rpc_lines(gateway, 32)
        # In any order: a failed call's line is written when its cancelled handler returns, a refused one's at once.
        codes = sorted((l["metadata"]["rpc.method"], l["metadata"]["rpc.grpc.status_code"]) for l in lines)
        health = "grpc.health.v1.Health/Check"
        malformed_code = next(code for code in ["INTERNAL", "INVALID_ARGUMENT", "UNIMPLEMENTED"]
                              if getattr(grpc.StatusCode, code).value[0] == malformed.grpc_status)
        assert codes == sorted([(health, "RESOURCE_EXHAUSTED")] * 10 + [(health, "INTERNAL")] * 20
                               + [("grpc.health.v1.Health/Nope", "UNIMPLEMENTED"), (health, malformed_code)])
        exposition = scrape(metrics_port)
        assert sample(exposition, "rpc_server_handled_total", rpc_method=health, rpc_grpc_status_code="CANCELLED") is None
        assert sample(exposition, "rpc_server_handled_total", rpc_method=health, rpc_grpc_status_code="INTERNAL") == \
            20 + (1 if malformed_code == "INTERNAL" else 0)
        assert sample(exposition, "rpc_server_handled_total", rpc_method="unknown", rpc_grpc_status_code="UNIMPLEMENTED") == 1
        assert sample(exposition, "rpc_server_started_total", rpc_method=health) == 32 - 1


def test_connection_limits_and_the_handshake_timeout(binaries, tmp_path):
    """--max-connections-per-address closes a connection over the limit as it is accepted; a client that sends
    half a connection preface is closed after --handshake-timeout-seconds (it used to stay open for good)."""
    import socket
    command = [str(binaries / "gateway"), "--data-dir", str(tmp_path / "data"), "--port", "0",
               "--max-connections-per-address", "2", "--handshake-timeout-seconds", "1"]
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])

    def first_bytes(sock, timeout=3.0):
        sock.settimeout(timeout)
        try:
            return sock.recv(1024)
        except (ConnectionResetError, socket.timeout) as error:
            return error

    with serve(command, env=clean_environment()) as proc:
        kept = [socket.create_connection(("127.0.0.1", proc.port)) for _ in range(2)]
        for sock in kept:
            sock.sendall(preface)
            assert first_bytes(sock)[3] == 4, "the server's SETTINGS"
        third = socket.create_connection(("127.0.0.1", proc.port))
        answer = first_bytes(third)
        assert answer == b"" or isinstance(answer, ConnectionResetError), f"closed at once, not {answer!r}"
        third.close()
        # Half a preface: closed by the handshake timeout, not kept.
        for sock in kept:
            sock.close()
        time.sleep(0.2)
        half = socket.create_connection(("127.0.0.1", proc.port))
        half.sendall(preface[:10])
        started = time.monotonic()
        received = b""
        half.settimeout(5)
        try:
            while chunk := half.recv(1024):
                received += chunk
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 4, "closed by the 1 s handshake timeout"
        half.close()
        # The limit counts open connections: with the others closed, a new one is served.
        again = socket.create_connection(("127.0.0.1", proc.port))
        again.sendall(preface)
        assert first_bytes(again)[3] == 4
        again.close()


def test_per_user_rate_limits_answer_with_a_retry_delay(binaries, tmp_path, pb2):
    """--writes-per-second / --write-burst: a user's calls beyond the burst are RESOURCE_EXHAUSTED with a
    google.rpc.RetryInfo in the status details (decoded here by grpcio-status and googleapis-common-protos,
    code we did not write); another user is not held back."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    from gateway.event.v1 import event_service_pb2 as em, event_service_pb2_grpc as es
    command = [str(binaries / "gateway"), "--data-dir", str(tmp_path / "data"), "--port", "0",
               "--writes-per-second", "1", "--write-burst", "2"]
    with serve(command, env=clean_environment()) as proc:
        gateway = Gateway(proc, tmp_path / "data")
        events = es.EventServiceStub(gateway.channel)

        def publish(uid):
            return events.PublishEvent(em.PublishEventRequest(event=em.NewEvent(type="Limited", aggregate_id="a")),
                                       metadata=gateway.tokens.metadata(uid), timeout=10)

        publish("noisy")
        publish("noisy")
        with pytest.raises(grpc.RpcError) as refused:
            publish("noisy")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details().startswith("rate limit: write calls are limited for one user; retry in ")
        status = rpc_status.from_call(refused.value)
        assert status is not None and status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert 0 < retry.retry_delay.ToMilliseconds() <= 1000
        publish("quiet")  # another user has a bucket of their own
        # Reads are another class: not limited by the writes.
        events.ListEvents(em.ListEventsRequest(), metadata=gateway.tokens.metadata("noisy"), timeout=10)
