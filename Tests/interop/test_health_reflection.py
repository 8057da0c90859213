"""Health checking and server reflection on our interop-server, checked with clients nobody here wrote
(gRPC doc/health-checking.md, doc/server-reflection.md): the official grpcio-health-checking stubs, grpcio-reflection's
descriptor database (v1alpha), raw v1 reflection through a generic stream-stream call, and grpcurl 1.8.6."""

import base64
import json
import pathlib
import queue
import subprocess
import threading
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

TIMEOUT = 5.0  # seconds, for every RPC
GRPCURL = pathlib.Path(__file__).resolve().parents[2] / ".venv/bin/grpcurl"
GRPC_PROTO = pathlib.Path("/usr/share/grpc-proto")

SERVICES = {
    "grpc.testing.TestService",
    "grpc.testing.BenchmarkService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


class _DefaultTimeout(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                      grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Gives every call without a deadline one (grpcio-reflection's client sets none)."""

    def _details(self, details):
        if details.timeout is not None:
            return details
        return _Details(details)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d):
        self.method = d.method
        self.timeout = TIMEOUT
        self.metadata = d.metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


@pytest.fixture(scope="module")
def channel(interop_server):
    with grpc.insecure_channel(f"127.0.0.1:{interop_server.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        yield grpc.intercept_channel(ch, _DefaultTimeout())


# --- health (doc/health-checking.md) ------------------------------------------------------------------------------------------

def check(channel, service):
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                     timeout=TIMEOUT)


def test_health_check_overall_is_serving(channel):
    assert check(channel, "").status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_test_service_is_not_registered(channel):
    # interop-server only sets the overall status (HealthService starts with just "" → SERVING and the
    # server never calls setStatus), so a named service is unknown to health → NOT_FOUND.
    with pytest.raises(grpc.RpcError) as err:
        check(channel, "grpc.testing.TestService")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_check_unknown_service_is_not_found(channel):
    with pytest.raises(grpc.RpcError) as err:
        check(channel, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("service, expected", [
    ("", health_pb2.HealthCheckResponse.SERVING),
    ("no.such.Service", health_pb2.HealthCheckResponse.SERVICE_UNKNOWN),
], ids=["overall", "unknown"])
def test_health_watch_sends_status_and_stays_open(channel, service, expected):
    call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service),
                                                     timeout=TIMEOUT)
    first = next(call)
    assert first.status == expected
    # The server must not end the call after the first message (health.proto: Watch never ends by itself,
    # not even for an unknown service).
    time.sleep(0.3)
    assert call.is_active(), f"Watch({service!r}) ended by itself: {call.code()} {call.details()!r}"
    assert not call.done()
    call.cancel()
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    assert call.code() == grpc.StatusCode.CANCELLED
    # The server survives the cancelled watch.
    assert check(channel, "").status == health_pb2.HealthCheckResponse.SERVING


# --- reflection through grpcio-reflection (v1alpha, doc/server-reflection.md) ---------------------------------------------

def test_reflection_client_lists_services(channel):
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert sorted(services) == sorted(SERVICES)
    assert len(services) == len(set(services))


def test_reflection_client_resolves_test_service(channel):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("grpc.testing.TestService")
    assert service.file.name == "grpc/testing/test.proto"
    methods = {m.name: m for m in service.methods}
    assert {"EmptyCall", "UnaryCall", "StreamingOutputCall", "StreamingInputCall", "FullDuplexCall",
            "HalfDuplexCall"} <= set(methods)
    unary = methods["UnaryCall"]
    assert unary.input_type.full_name == "grpc.testing.SimpleRequest"
    assert unary.output_type.full_name == "grpc.testing.SimpleResponse"
    assert not unary.client_streaming and not unary.server_streaming
    duplex = methods["FullDuplexCall"]
    assert duplex.input_type.full_name == "grpc.testing.StreamingOutputCallRequest"
    assert duplex.output_type.full_name == "grpc.testing.StreamingOutputCallResponse"
    assert duplex.client_streaming and duplex.server_streaming
    assert methods["EmptyCall"].input_type.full_name == "grpc.testing.Empty"  # from grpc/testing/empty.proto


def test_reflection_client_resolves_message_type(channel):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    request = pool.FindMessageTypeByName("grpc.testing.SimpleRequest")
    assert request.file.name == "grpc/testing/messages.proto"
    assert request.fields_by_name["payload"].message_type.full_name == "grpc.testing.Payload"
    assert request.fields_by_name["response_type"].enum_type.full_name == "grpc.testing.PayloadType"


def test_reflection_client_unknown_symbol(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(db)
    with pytest.raises(KeyError):
        pool.FindServiceByName("no.such.Service")
    with pytest.raises(KeyError):
        db.FindFileByName("no/such/file.proto")


# --- reflection v1, raw (doc/server-reflection.md) -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    """Message classes for grpc/reflection/v1/reflection.proto, compiled now with grpcio-tools' protoc.

    The Python module path `grpc.reflection.v1` would collide with the installed `grpc` package, so the
    file is compiled to a descriptor set and loaded into a private DescriptorPool: the package (and so the
    wire path) stays `grpc.reflection.v1`, and nothing is added to the default pool."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("reflection_v1") / "reflection_v1.binpb"
    if protoc.main(["protoc", f"-I{GRPC_PROTO}", f"--descriptor_set_out={out}",
                    "grpc/reflection/v1/reflection.proto"]) != 0:
        raise RuntimeError("grpc_tools.protoc failed")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    assert pool.FindServiceByName("grpc.reflection.v1.ServerReflection").methods_by_name["ServerReflectionInfo"]

    class V1:
        Request = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest"))
        Response = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse"))
    return V1


class ReflectionStream:
    """One open v1 ServerReflectionInfo stream; `ask` sends a request and waits for its answer."""

    def __init__(self, channel, v1):
        self._requests = queue.Queue()
        info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=v1.Request.SerializeToString,
                                     response_deserializer=v1.Response.FromString)
        self._call = info(iter(self._requests.get, None), timeout=TIMEOUT)
        self._v1 = v1

    def ask(self, **fields):
        self._requests.put(self._v1.Request(host="", **fields))
        result = {}

        def read():
            try:
                result["response"] = next(self._call)
            except Exception as e:  # noqa: BLE001 - handed to the test below
                result["error"] = e

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        assert not reader.is_alive(), f"no answer to {fields} within {TIMEOUT}s"
        if "error" in result:
            raise result["error"]
        return result["response"]

    def close(self):
        self._requests.put(None)
        rest = list(self._call)  # the server ends the call once the request stream ends
        assert rest == []
        assert self._call.code() == grpc.StatusCode.OK, (self._call.code(), self._call.details())


def files_of(response):
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    return {fd.name: fd for fd in map(descriptor_pb2.FileDescriptorProto.FromString,
                                      response.file_descriptor_response.file_descriptor_proto)}


def test_reflection_v1_list_services(channel, v1):
    stream = ReflectionStream(channel, v1)
    response = stream.ask(list_services="")
    assert response.WhichOneof("message_response") == "list_services_response", response
    assert sorted(s.name for s in response.list_services_response.service) == sorted(SERVICES)
    assert response.original_request.WhichOneof("message_request") == "list_services"
    stream.close()


def test_reflection_v1_file_containing_symbol_and_dependencies(channel, v1):
    stream = ReflectionStream(channel, v1)
    response = stream.ask(file_containing_symbol="grpc.testing.TestService")
    assert response.original_request.file_containing_symbol == "grpc.testing.TestService"
    files = files_of(response)
    assert {"grpc/testing/test.proto", "grpc/testing/empty.proto", "grpc/testing/messages.proto"} <= set(files)
    test = files["grpc/testing/test.proto"]
    assert test.package == "grpc.testing"
    assert set(test.dependency) == {"grpc/testing/empty.proto", "grpc/testing/messages.proto"}
    service = next(s for s in test.service if s.name == "TestService")
    unary = next(m for m in service.method if m.name == "UnaryCall")
    assert (unary.input_type, unary.output_type) == (".grpc.testing.SimpleRequest", ".grpc.testing.SimpleResponse")
    assert any(m.name == "SimpleRequest" for m in files["grpc/testing/messages.proto"].message_type)

    # Same stream: a file already sent as a dependency is still returned when asked for by name.
    again = files_of(stream.ask(file_by_filename="grpc/testing/messages.proto"))
    assert "grpc/testing/messages.proto" in again
    assert any(m.name == "SimpleResponse" for m in again["grpc/testing/messages.proto"].message_type)
    stream.close()


def test_reflection_v1_method_symbol(channel, v1):
    stream = ReflectionStream(channel, v1)
    assert "grpc/testing/test.proto" in files_of(stream.ask(file_containing_symbol="grpc.testing.TestService.UnaryCall"))
    stream.close()


def test_reflection_v1_unknown_symbol_keeps_stream_usable(channel, v1):
    stream = ReflectionStream(channel, v1)
    response = stream.ask(file_containing_symbol="no.such.Symbol")
    assert response.WhichOneof("message_response") == "error_response", response
    assert response.error_response.error_code == 5  # NOT_FOUND
    response = stream.ask(list_services="")
    assert response.WhichOneof("message_response") == "list_services_response", response
    assert sorted(s.name for s in response.list_services_response.service) == sorted(SERVICES)
    stream.close()


def test_reflection_v1_unknown_file(channel, v1):
    stream = ReflectionStream(channel, v1)
    response = stream.ask(file_by_filename="no/such/file.proto")
    assert response.WhichOneof("message_response") == "error_response", response
    assert response.error_response.error_code == 5  # NOT_FOUND
    stream.close()


# --- grpcurl 1.8.6 (v1alpha reflection) --------------------------------------------------------------

def grpcurl(server, *args, data=None):
    command = [str(GRPCURL), "-plaintext", "-max-time", str(TIMEOUT)]
    if data is not None:
        command += ["-d", data]
    command += [f"127.0.0.1:{server.port}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + 5)


def test_grpcurl_list(interop_server):
    result = grpcurl(interop_server, "list")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(SERVICES), result.stdout


def test_grpcurl_describe(interop_server):
    result = grpcurl(interop_server, "describe", "grpc.testing.TestService")
    assert result.returncode == 0, result.stderr
    assert "rpc UnaryCall" in result.stdout, result.stdout
    assert "rpc FullDuplexCall" in result.stdout, result.stdout


def test_grpcurl_unary_call(interop_server):
    result = grpcurl(interop_server, "grpc.testing.TestService/UnaryCall", data='{"response_size":3}')
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert len(base64.b64decode(body["payload"]["body"])) == 3, result.stdout


def test_grpcurl_health_check(interop_server):
    result = grpcurl(interop_server, "grpc.health.v1.Health/Check", data="{}")
    assert result.returncode == 0, result.stderr
    assert '"status": "SERVING"' in result.stdout, result.stdout


def test_grpcurl_health_check_unknown_service(interop_server):
    result = grpcurl(interop_server, "grpc.health.v1.Health/Check", data='{"service":"nope"}')
    assert result.returncode == 64 + 5, (result.returncode, result.stdout, result.stderr)  # 69: NOT_FOUND
    assert "NotFound" in result.stdout + result.stderr
