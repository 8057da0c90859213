"""Wire compatibility with gRPC implementations nobody here wrote (grpc doc/interop-test-descriptions.md): the
official Python interop client (grpc 1.51.1, C-core) and grpc-go 1.33.3's against our interop-server, and our
interop-client against their servers."""

import subprocess

import pytest

from conftest import free_port, serve

# The cases both official clients run (grpc 1.51.1 tests.interop.client, grpc-go 1.33.3 interop/client); neither
# runs the compression cases.
CASES = ["empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
         "cancel_after_begin", "cancel_after_first_response", "timeout_on_sleeping_server", "custom_metadata",
         "status_code_and_message", "special_status_message", "unimplemented_method", "unimplemented_service"]
COMPRESSION_CASES = ["client_compressed_unary", "server_compressed_unary", "client_compressed_streaming",
                     "server_compressed_streaming"]


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("case", CASES)
def test_python_interop_client_against_our_server(interop_peers, interop_server, case):
    run([interop_peers["INTEROP_PYTHON"], "-m", interop_peers["INTEROP_PY_CLIENT_MODULE"],
         "--server_host=127.0.0.1", f"--server_port={interop_server.port}", f"--test_case={case}"],
        cwd=interop_peers["INTEROP_PY_DIR"])


@pytest.mark.parametrize("case", CASES)
def test_go_interop_client_against_our_server(interop_peers, interop_server, case):
    run([interop_peers["INTEROP_GO_CLIENT"], "--server_host=127.0.0.1", f"--server_port={interop_server.port}",
         f"--test_case={case}"])


def test_our_interop_client_against_our_server(binaries, interop_server):
    out = run([str(binaries / "interop-client"), "--server_port", str(interop_server.port), "--test_case", "all"])
    assert out.count("PASS") == len(CASES) + len(COMPRESSION_CASES)


def test_our_interop_client_against_the_python_reference_server(binaries, interop_peers):
    port = free_port()
    server = [interop_peers["INTEROP_PYTHON"], "-m", interop_peers["INTEROP_PY_SERVER_MODULE"], f"--port={port}"]
    with serve(server, port=port, cwd=interop_peers["INTEROP_PY_DIR"]):
        for case in CASES:
            run([str(binaries / "interop-client"), "--server_port", str(port), "--test_case", case])


def test_our_interop_client_against_the_go_server(binaries, interop_peers):
    port = free_port()
    with serve([interop_peers["INTEROP_GO_SERVER"], f"--port={port}"], port=port):
        for case in CASES:
            run([str(binaries / "interop-client"), "--server_port", str(port), "--test_case", case])


def test_grpcio_gzip_both_ways(interop_server, testing_pb):
    """Compression with a peer we did not write (grpcio, C-core's zlib): gzip requests the server must see as
    compressed (`expect_compressed` makes it check), and gzip responses grpcio must inflate, unary and
    streaming."""
    import grpc
    messages, services = testing_pb
    yes = messages.BoolValue(value=True)
    with grpc.insecure_channel(f"127.0.0.1:{interop_server.port}", compression=grpc.Compression.Gzip) as channel:
        stub = services.TestServiceStub(channel)
        body = bytes(271_828)  # zeros: compresses, so the compressed path is taken both ways
        response = stub.UnaryCall(messages.SimpleRequest(
            response_size=314_159, payload=messages.Payload(body=body), expect_compressed=yes, response_compressed=yes),
            timeout=30)
        assert len(response.payload.body) == 314_159

        def requests():
            for size in [27_182, 8, 1_828, 45_904]:
                yield messages.StreamingInputCallRequest(payload=messages.Payload(body=bytes(size)), expect_compressed=yes)

        assert stub.StreamingInputCall(requests(), timeout=30).aggregated_payload_size == 74_922
        sizes = [31_415, 9, 2_653, 58_979]
        responses = stub.StreamingOutputCall(messages.StreamingOutputCallRequest(response_parameters=[
            messages.ResponseParameters(size=size, compressed=yes) for size in sizes]), timeout=30)
        assert [len(r.payload.body) for r in responses] == sizes
    # Without compression on the channel the server's check fails: the test above really was compressed.
    with grpc.insecure_channel(f"127.0.0.1:{interop_server.port}") as channel:
        with pytest.raises(grpc.RpcError) as plain:
            services.TestServiceStub(channel).UnaryCall(messages.SimpleRequest(
                response_size=1, payload=messages.Payload(body=bytes(10)), expect_compressed=yes), timeout=30)
        assert plain.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# The same cases over TLS with the interop suite's certificates (server1.pem for *.test.google.fr, signed by
# its ca.pem; grpc doc/interop-test-descriptions.md, "--use_tls" and "--server_host_override"), staged by
# scripts/interop-peers from the grpc source package.

@pytest.fixture(scope="module")
def interop_tls_server(binaries, interop_peers):
    with serve([str(binaries / "interop-server"), "--port", "0", "--use_tls=true",
                "--tls_cert_file", interop_peers["INTEROP_SERVER_CERT"],
                "--tls_key_file", interop_peers["INTEROP_SERVER_KEY"]]) as proc:
        yield proc


def tls_client_flags(interop_peers):
    return ["--use_tls=true", "--use_test_ca=true", f"--server_host_override={interop_peers['INTEROP_SERVER_HOST_OVERRIDE']}"]


@pytest.mark.parametrize("case", CASES)
def test_python_interop_client_over_tls(interop_peers, interop_tls_server, case):
    run([interop_peers["INTEROP_PYTHON"], "-m", interop_peers["INTEROP_PY_CLIENT_MODULE"], "--server_host=127.0.0.1",
         f"--server_port={interop_tls_server.port}", f"--test_case={case}", *tls_client_flags(interop_peers)],
        cwd=interop_peers["INTEROP_PY_DIR"])


@pytest.mark.parametrize("case", CASES)
def test_go_interop_client_over_tls(interop_peers, interop_tls_server, case):
    run([interop_peers["INTEROP_GO_CLIENT"], "--server_host=127.0.0.1", f"--server_port={interop_tls_server.port}",
         f"--test_case={case}", *tls_client_flags(interop_peers)])


@pytest.mark.parametrize("reference", ["python", "go"])
def test_our_interop_client_over_tls_against_the_reference_servers(binaries, interop_peers, reference):
    port = free_port()
    if reference == "python":
        server = [interop_peers["INTEROP_PYTHON"], "-m", interop_peers["INTEROP_PY_SERVER_MODULE"], f"--port={port}",
                  "--use_tls=true"]
    else:
        server = [interop_peers["INTEROP_GO_SERVER"], f"--port={port}", "--use_tls=true"]
    with serve(server, port=port, cwd=interop_peers["INTEROP_PY_DIR"] if reference == "python" else None):
        for case in CASES:
            run([str(binaries / "interop-client"), "--server_port", str(port), "--test_case", case,
                 "--ca_file", interop_peers["INTEROP_CA"], *tls_client_flags(interop_peers)])


def test_our_interop_client_over_tls_against_our_server(binaries, interop_peers, interop_tls_server):
    out = run([str(binaries / "interop-client"), "--server_port", str(interop_tls_server.port), "--test_case", "all",
               "--ca_file", interop_peers["INTEROP_CA"], *tls_client_flags(interop_peers)])
    assert out.count("PASS") == len(CASES) + len(COMPRESSION_CASES)
