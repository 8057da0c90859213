"""Load, backpressure and graceful shutdown of our gRPC server, seen from outside.

- stress: 200 concurrent bidi streams x 1,000 messages on one connection, then 50 connections, with grpcio's
  asyncio client (C-core); every response is checked in order.
- slow readers: a client that stops reading a 1 GiB response stream, by not granting HTTP/2 window and by
  not reading its socket; the server's RSS must stay bounded (it suspends the handler instead of buffering).
- graceful shutdown on SIGTERM (gRPC proposal A9): GOAWAY(2^31-1) + PING, then GOAWAY(last stream), in-flight RPCs
  finish, health turns NOT_SERVING, the process exits 0.
"""

import asyncio
import pathlib
import signal
import socket
import struct
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import pytest

from conftest import serve

# A 1 GiB response stream, and how much the server may grow while a client refuses to read it.
HUGE_MESSAGES, HUGE_SIZE = 1024, 1 << 20
RSS_BOUND = 64 << 20


def rss(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# --- stress ---------------------------------------------------------------------------------------------------

def test_stress_many_streams_and_connections(binaries, testing_pb):
    import grpc
    messages_pb2, test_pb2_grpc = testing_pb

    async def stream(stub, messages):
        call = stub.FullDuplexCall()
        sizes = [i % 97 + 1 for i in range(messages)]

        async def write():
            for size in sizes:
                await call.write(messages_pb2.StreamingOutputCallRequest(
                    response_parameters=[messages_pb2.ResponseParameters(size=size)]))
            await call.done_writing()

        writer = asyncio.create_task(write())
        received = [len(r.payload.body) async for r in call]
        await writer
        assert await call.code() == grpc.StatusCode.OK
        return received == sizes

    async def run(port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = test_pb2_grpc.TestServiceStub(channel)
            one_connection = await asyncio.gather(*[stream(stub, 1000) for _ in range(200)])
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(50)]
        many = await asyncio.gather(*[stream(test_pb2_grpc.TestServiceStub(c), 1000) for c in channels])
        for c in channels:
            await c.close()
        return one_connection, many

    with serve([str(binaries / "interop-server"), "--port", "0"]) as server:
        one_connection, many = asyncio.run(run(server.port))
    assert one_connection.count(True) == 200  # 200,000 responses, each the size asked for, in order
    assert many.count(True) == 50


# --- slow readers ---------------------------------------------------------------------------------------------

def huge_stream_request() -> bytes:
    """StreamingOutputCallRequest{response_parameters: 1024 x {size: 1 MiB}}, framed."""
    # ResponseParameters.size is field 1 (field 2 is interval_us: this test once asked for 1 s pauses between
    # empty messages by mistake, and passed while nothing streamed).
    parameters = b"\x08" + bytes([0x80, 0x80, 0x40])  # size (field 1) = 1048576
    body = (b"\x12" + bytes([len(parameters)]) + parameters) * HUGE_MESSAGES
    return b"\x00" + struct.pack(">I", len(body)) + body


def grpc_headers(path):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
            ("content-type", "application/grpc"), ("te", "trailers")]


@pytest.mark.parametrize("stall", ["window", "socket"])
def test_slow_reader_keeps_server_memory_bounded(binaries, stall):
    with serve([str(binaries / "interop-server"), "--port", "0"]) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        conn = h2.connection.H2Connection(config)
        conn.initiate_connection()
        if stall == "socket":
            # Grant everything, then never read the socket: the TCP buffers fill and the socket stops
            # being writable on the server's side.
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
            conn.increment_flow_control_window(2**31 - 1 - 65535)
        sock.sendall(conn.data_to_send())
        time.sleep(0.3)
        baseline = rss(server.pid)
        conn.send_headers(1, grpc_headers("/grpc.testing.TestService/StreamingOutputCall"))
        conn.send_data(1, huge_stream_request(), end_stream=True)
        sock.sendall(conn.data_to_send())
        # (With the "window" stall the client reads but never acknowledges, so the 64 KiB window stays shut.)
        deadline = time.monotonic() + 3
        peak = baseline
        received = 0
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            if stall == "window":
                try:
                    received += len(sock.recv(1 << 16))
                except socket.timeout:
                    pass
            else:
                time.sleep(0.1)
            peak = max(peak, rss(server.pid))
        growth = peak - baseline
        if stall == "socket":
            # What the server had written into the socket before it stopped being writable.
            sock.settimeout(0.5)
            try:
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
                    if received > (1 << 20):
                        break
            except socket.timeout:
                pass
        print(f"{stall} stall: RSS {baseline >> 20} MiB -> peak {peak >> 20} MiB (+{growth >> 20} MiB) "
              f"while 1 GiB was due; {received} bytes had arrived")
        # The server did stream (a server that reset the stream at once would pass the memory check): the
        # whole 64 KiB window with a shut window, more than that into a socket granted 2 GiB of window.
        assert received >= (65_535 if stall == "window" else 1 << 20), received
        assert growth < RSS_BOUND, f"server grew by {growth >> 20} MiB"
        assert server.poll() is None
        sock.close()


# --- graceful shutdown ----------------------------------------------------------------------------------------

def read_frames(sock, until, timeout):
    """Raw frames (type, flags, stream, payload) until `until(frames)` or timeout; answers PINGs."""
    frames, buffer = [], b""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(frames):
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            ftype, flags = buffer[3], buffer[4]
            stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            payload, buffer = buffer[9:9 + length], buffer[9 + length:]
            frames.append((ftype, flags, stream, payload))
            if ftype == 6 and not flags & 1:  # PING → PING ACK
                sock.sendall(struct.pack(">I", 8)[1:] + bytes([6, 1]) + b"\0\0\0\0" + payload)
    return frames


def test_graceful_shutdown_finishes_inflight_rpcs(binaries, testing_pb):
    import grpc
    import threading
    messages_pb2, test_pb2_grpc = testing_pb
    with serve([str(binaries / "interop-server"), "--port", "0"]) as server:
        # A watcher connection that only reads frames (answering PINGs, as any client does).
        watcher = socket.create_connection(("127.0.0.1", server.port))
        watcher.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0")
        read_frames(watcher, lambda f: any(t == 4 for t, *_ in f), 2)

        # An RPC in flight when the signal arrives: one response after 1 s; and a health watch.
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = test_pb2_grpc.TestServiceStub(channel)
        outcome = {}

        def call():
            request = messages_pb2.StreamingOutputCallRequest(
                response_parameters=[messages_pb2.ResponseParameters(size=5, interval_us=1_000_000)])
            try:
                outcome["sizes"] = [len(r.payload.body) for r in stub.StreamingOutputCall(request, timeout=10)]
            except grpc.RpcError as e:
                outcome["error"] = e.code()

        from grpc_health.v1 import health_pb2, health_pb2_grpc
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        inflight = threading.Thread(target=call)
        inflight.start()
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)

        # Health turns NOT_SERVING before the connections are told to go away.
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # gRPC proposal A9: GOAWAY(2^31-1, NO_ERROR) and a PING, then GOAWAY with the last stream id it will serve.
        frames = read_frames(watcher, lambda f: sum(t == 7 for t, *_ in f) >= 2, 5)
        goaways = [(int.from_bytes(p[:4], "big") & 0x7FFFFFFF, int.from_bytes(p[4:8], "big"))
                   for t, _, _, p in frames if t == 7]
        assert goaways[:2] == [(2**31 - 1, 0), (0, 0)], goaways
        assert any(t == 6 for t, *_ in frames), "no PING after the first GOAWAY"
        # The in-flight call completes normally; then the process exits cleanly.
        inflight.join(timeout=10)
        assert outcome == {"sizes": [5]}, outcome
        channel.close()
        watcher.close()
        assert server.wait(timeout=15) == 0
