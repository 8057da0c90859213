"""HTTP/2 edge cases against the interop-server, spoken frame by frame with hyper-h2 (gRPC PROTOCOL-HTTP2.md,
doc/keepalive.md, grpc-go's request checks).

Black-box: a raw h2c (prior knowledge) connection per test, hand-encoded protobuf bodies, and a log of every
frame the server sent (parsed from the socket bytes, independently of h2's event view) so that a failing test
can show exactly what went over the wire.
"""

import socket
import struct
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

TS = "/grpc.testing.TestService/"
MAX_RECV = 4 << 20
TIMEOUT = 5.0

# HTTP/2 codes
END_STREAM, END_HEADERS = 0x1, 0x4
NO_ERROR, CANCEL, ENHANCE_YOUR_CALM, REFUSED_STREAM = 0x0, 0x8, 0xB, 0x7
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_HEADER_LIST_SIZE = 0x3, 0x6
FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE",
               6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}
FLAG_NAMES = {0: {1: "END_STREAM", 8: "PADDED"}, 1: {1: "END_STREAM", 4: "END_HEADERS", 8: "PADDED", 0x20: "PRIORITY"},
              4: {1: "ACK"}, 6: {1: "ACK"}, 9: {4: "END_HEADERS"}}


# --- protobuf, by hand -------------------------------------------------------------------------------------

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def pb_bytes(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def pb_parse(data: bytes) -> dict:
    """{field number: [values]}: ints for varints, bytes for length-delimited fields."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            length, i = _read_varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(data: bytes, i: int):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def payload(size: int) -> bytes:
    """grpc.testing.Payload{type COMPRESSABLE (0, omitted), body: size zero bytes}."""
    return pb_bytes(2, bytes(size)) if size else b""


def simple_request(response_size=0, payload_size=0, status=None) -> bytes:
    """SimpleRequest{response_size=2, payload=3, response_status=7 EchoStatus{code=1, message=2}}."""
    out = pb_varint(2, response_size) if response_size else b""
    if payload_size:
        out += pb_bytes(3, payload(payload_size))
    if status is not None:
        code, message = status
        out += pb_bytes(7, pb_varint(1, code) + pb_bytes(2, message.encode()))
    return out


def streaming_output_request(*parameters) -> bytes:
    """StreamingOutputCallRequest{response_parameters=2 [ResponseParameters{size=1, interval_us=2}]}."""
    out = b""
    for size, interval_us in parameters:
        p = (pb_varint(1, size) if size else b"") + (pb_varint(2, interval_us) if interval_us else b"")
        out += pb_bytes(2, p)
    return out


def streaming_input_request(size: int) -> bytes:
    """StreamingInputCallRequest{payload=1}."""
    return pb_bytes(1, payload(size)) if size else b""


def frame(message: bytes, flag: int = 0) -> bytes:
    """A Length-Prefixed-Message (gRPC PROTOCOL-HTTP2.md)."""
    return bytes([flag]) + struct.pack(">I", len(message)) + message


def count_messages(data: bytes) -> int:
    """How many complete Length-Prefixed-Messages `data` starts with."""
    n, i = 0, 0
    while len(data) - i >= 5:
        length = struct.unpack(">I", data[i + 1:i + 5])[0]
        if len(data) - i - 5 < length:
            break
        n, i = n + 1, i + 5 + length
    return n


def unframe(data: bytes) -> list:
    """[(flag, message)] from a response body; asserts that it holds whole messages only."""
    out, i = [], 0
    while i < len(data):
        assert len(data) - i >= 5, f"truncated prefix in response body {data[i:]!r}"
        flag, length = data[i], struct.unpack(">I", data[i + 1:i + 5])[0]
        assert len(data) - i - 5 >= length, "truncated message in response body"
        out.append((flag, data[i + 5:i + 5 + length]))
        i += 5 + length
    return out


def payload_size_of(response: bytes) -> int:
    """SimpleResponse / StreamingOutputCallResponse: payload=1 → Payload.body=2."""
    fields = pb_parse(response)
    if 1 not in fields:
        return 0
    return len(pb_parse(fields[1][0]).get(2, [b""])[0])


# --- the raw frame log -------------------------------------------------------------------------------------

class Frame:
    def __init__(self, type_, flags, stream, payload_):
        self.type, self.flags, self.stream, self.payload = type_, flags, stream, payload_
        self.at = time.monotonic()

    @property
    def name(self):
        return FRAME_NAMES.get(self.type, f"type{self.type}")

    @property
    def error_code(self):
        if self.type == 3:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == 7:
            return struct.unpack(">I", self.payload[4:8])[0]
        return None

    def __repr__(self):
        names = FLAG_NAMES.get(self.type, {})
        flags = "|".join(n for bit, n in names.items() if self.flags & bit) or hex(self.flags)
        extra = ""
        if self.type == 3:
            extra = f", code={self.error_code}"
        elif self.type == 7:
            last = struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF
            extra = f", last={last}, code={self.error_code}, debug={self.payload[8:]!r}"
        elif self.type == 4 and not self.flags & 1:
            entries = [struct.unpack(">HI", self.payload[i:i + 6]) for i in range(0, len(self.payload), 6)]
            extra = f", {dict(entries)}"
        elif self.type == 8:
            extra = f", +{struct.unpack('>I', self.payload)[0] & 0x7FFFFFFF}"
        return f"{self.name}(stream={self.stream}, flags={flags}, len={len(self.payload)}{extra})"


class FrameLog:
    """Parses the server's byte stream into frames (the server preface is a plain SETTINGS frame)."""

    def __init__(self):
        self.buffer = bytearray()
        self.frames = []

    def feed(self, data: bytes):
        self.buffer += data
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return
            type_, flags = self.buffer[3], self.buffer[4]
            stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            self.frames.append(Frame(type_, flags, stream, bytes(self.buffer[9:9 + length])))
            del self.buffer[:9 + length]


# --- the client --------------------------------------------------------------------------------------------

class Stream:
    def __init__(self, sid):
        self.id = sid
        self.headers = None          # [(name, value)] of the first non-informational HEADERS
        self.headers_ended = False   # END_STREAM on that HEADERS (trailers-only)
        self.trailers = None
        self.data = bytearray()
        self.reset_code = None
        self.ended = False
        self.ended_at = None
        self.started_at = time.monotonic()

    def header(self, name):
        for block in (self.trailers, self.headers):
            for n, v in block or ():
                if n == name:
                    return v
        return None

    @property
    def http_status(self):
        return dict(self.headers or ()).get(":status")

    @property
    def grpc_status(self):
        value = self.header("grpc-status")
        return None if value is None else int(value)

    @property
    def grpc_message(self):
        value = self.header("grpc-message")
        return None if value is None else urllib.parse.unquote(value, encoding="utf-8", errors="replace")

    @property
    def messages(self):
        return unframe(bytes(self.data))

    @property
    def done(self):
        return self.ended or self.reset_code is not None


def _text(value):
    return value.decode("latin-1") if isinstance(value, bytes) else value


class Client:
    """One h2c connection to the server, with a raw frame log of what the server sent."""

    def __init__(self, port, ack_data=True):
        self.port = port
        self.ack_data = ack_data
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.log = FrameLog()
        self.streams = {}
        self.remote_settings = {}
        self.goaway = None
        self.closed = False
        self.protocol_error = None
        self.ping_acks = []
        self._ping_counter = 0
        self.conn.initiate_connection()
        self.flush()
        assert self.pump(lambda: self.remote_settings, 2.0), f"no SETTINGS from the server: {self.log.frames}"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # sending

    def flush(self):
        out = self.conn.data_to_send()
        if out and not self.closed:
            try:
                self.sock.sendall(out)
            except OSError:
                self.closed = True

    def headers(self, path, *, method="POST", content_type="application/grpc", te=True, extra=()):
        h = [(":method", method), (":scheme", "http"), (":path", path), (":authority", f"127.0.0.1:{self.port}")]
        if content_type is not None:
            h.append(("content-type", content_type))
        if te:
            h.append(("te", "trailers"))
        h += list(extra)
        return [(n.encode(), v.encode() if isinstance(v, str) else v) for n, v in h]

    def start(self, path, body=None, *, end=True, chunk=None, end_on_headers=False, **header_options):
        """Opens a stream; sends `body` (if any) in DATA frames of at most `chunk` bytes, then END_STREAM."""
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream(sid)
        self.conn.send_headers(sid, self.headers(path, **header_options), end_stream=end_on_headers)
        self.flush()
        if body is not None and not end_on_headers:
            self.send(sid, body, end_stream=end, chunk=chunk)
        return sid

    def send(self, sid, data, *, end_stream=False, chunk=None):
        """DATA frames of at most `chunk` bytes (and the frame size and window); an empty DATA frame when
        `data` is empty and `end_stream` is set."""
        view = memoryview(data)
        while len(view):
            n = min(len(view), chunk or len(view), self.conn.max_outbound_frame_size)
            if not self.pump(lambda: self.conn.local_flow_control_window(sid) > 0 or self.streams[sid].done, TIMEOUT):
                raise AssertionError(f"no send window on stream {sid}: {self.log.frames}")
            if self.streams[sid].done:
                return
            n = min(n, self.conn.local_flow_control_window(sid))
            last = n == len(view)
            self.conn.send_data(sid, bytes(view[:n]), end_stream=end_stream and last)
            self.flush()
            view = view[n:]
        if not data and end_stream:
            self.conn.send_data(sid, b"", end_stream=True)
            self.flush()

    def reset(self, sid, code=CANCEL):
        self.conn.reset_stream(sid, code)
        self.flush()

    def ping(self):
        self._ping_counter += 1
        data = struct.pack(">Q", 0x7465737400000000 + self._ping_counter)
        self.conn.ping(data)
        self.flush()
        return data

    def sync(self, timeout=2.0):
        """A PING round trip: whatever the server queued before answering it has arrived by then."""
        data = self.ping()
        assert self.pump(lambda: data in self.ping_acks, timeout), f"no PING ACK: {self.log.frames}"

    # receiving

    def pump(self, until, timeout):
        """Reads and handles events until `until()` holds, the connection ends, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if until():
                return True
            if self.closed or self.protocol_error:
                return bool(until())
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                return bool(until())
            except OSError:
                self.closed = True
                continue
            if not data:
                self.closed = True
                continue
            self.log.feed(data)
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as error:
                self.protocol_error = error
                continue
            for event in events:
                self._handle(event)
            self.flush()

    def _handle(self, event):
        st = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.ResponseReceived):
            st.headers = [(_text(n), _text(v)) for n, v in event.headers]
            st.headers_ended = event.stream_ended is not None
        elif isinstance(event, h2.events.TrailersReceived):
            st.trailers = [(_text(n), _text(v)) for n, v in event.headers]
        elif isinstance(event, h2.events.DataReceived):
            st.data += event.data
            if self.ack_data and event.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
        elif isinstance(event, h2.events.StreamEnded):
            st.ended, st.ended_at = True, time.monotonic()
        elif isinstance(event, h2.events.StreamReset):
            if st is not None:
                st.reset_code = event.error_code
                st.ended_at = st.ended_at or time.monotonic()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings.update({int(k): v.new_value for k, v in event.changed_settings.items()})
        elif isinstance(event, h2.events.PingAckReceived):
            self.ping_acks.append(event.ping_data)

    def wait(self, sid, timeout=TIMEOUT):
        st = self.streams[sid]
        self.pump(lambda: st.done, timeout)
        return st

    def call(self, path, body=None, timeout=TIMEOUT, **options):
        return self.wait(self.start(path, body, **options), timeout)

    # reporting

    def frames_for(self, sid):
        return [f for f in self.log.frames if f.stream == sid]

    def describe(self, sid=None):
        frames = self.log.frames if sid is None else self.frames_for(sid)
        out = f"frames from the server: {frames}"
        if sid is not None:
            st = self.streams[sid]
            out += (f"\nheaders={st.headers} trailers={st.trailers} data={bytes(st.data)[:64]!r} "
                    f"reset={st.reset_code} ended={st.ended}")
        if self.goaway is not None:
            out += f"\ngoaway={self.goaway}"
        if self.protocol_error is not None:
            out += f"\nh2 protocol error: {self.protocol_error!r}"
        if self.closed:
            out += "\nconnection closed by the server"
        return out


@pytest.fixture
def client(interop_server):
    c = Client(interop_server.port)
    yield c
    c.close()


def headers_frames(client, sid):
    return [f for f in client.frames_for(sid) if f.type in (1, 9)]


def assert_trailers_only(client, sid):
    """Trailers-Only (PROTOCOL-HTTP2.md, "Responses"): one HEADERS frame (END_HEADERS, no CONTINUATION) with
    END_STREAM, and nothing else before it."""
    st = client.streams[sid]
    frames = [f for f in client.frames_for(sid) if f.type != 8]
    assert frames and frames[0].type == 1, client.describe(sid)
    assert frames[0].flags & END_STREAM and frames[0].flags & END_HEADERS, client.describe(sid)
    assert all(f.type not in (0, 1, 9) for f in frames[1:]), client.describe(sid)
    assert st.headers_ended and st.trailers is None, client.describe(sid)
    names = dict(st.headers)
    assert names.get(":status") == "200", client.describe(sid)
    assert names.get("content-type", "").startswith("application/grpc"), client.describe(sid)
    assert "grpc-status" in names, client.describe(sid)


def assert_unary_ok(client, st, response_size):
    assert st.reset_code is None and st.grpc_status == 0, client.describe(st.id)
    assert st.http_status == "200", client.describe(st.id)
    messages = st.messages
    assert len(messages) == 1 and payload_size_of(messages[0][1]) == response_size, client.describe(st.id)


# --- the cases ---------------------------------------------------------------------------------------------

def test_01_non_grpc_content_type(client):
    # A bad content-type: early abort 415 + INVALID_ARGUMENT in one HEADERS with END_STREAM, then RST_STREAM(NO_ERROR)
    # follows when the client had not ended its stream.
    sid = client.start(TS + "UnaryCall", content_type="application/json")  # HEADERS only, stream left open
    st = client.wait(sid)
    client.sync()
    assert st.http_status == "415" and st.grpc_status == 3, client.describe(sid)
    assert st.headers_ended, client.describe(sid)
    assert st.grpc_message == 'invalid gRPC request content-type "application/json"', client.describe(sid)
    frames = [f for f in client.frames_for(sid) if f.type != 8]
    assert [f.name for f in frames] == ["HEADERS", "RST_STREAM"], client.describe(sid)
    assert frames[0].flags & END_STREAM and frames[1].error_code == NO_ERROR, client.describe(sid)

    # The client had ended its stream (END_STREAM on HEADERS): the stream is closed, so no RST_STREAM.
    sid = client.start(TS + "UnaryCall", content_type="application/json", end_on_headers=True)
    st = client.wait(sid)
    client.sync()
    assert st.http_status == "415" and st.grpc_status == 3, client.describe(sid)
    assert [f.name for f in client.frames_for(sid) if f.type != 8] == ["HEADERS"], client.describe(sid)


def test_02_method_get(client):
    # grpc-go http2_server.go: :method other than POST → early abort 405 + INTERNAL.
    st = client.call(TS + "EmptyCall", method="GET", end_on_headers=True)
    assert st.http_status == "405" and st.grpc_status == 13, client.describe(st.id)
    assert st.headers_ended, client.describe(st.id)


def test_03_missing_te_is_accepted(client):
    # As grpc-go http2_server.go: no `te: trailers` → served normally.
    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=7)), te=False)
    assert_unary_ok(client, st, 7)


@pytest.mark.parametrize("path", ["/", "/onlyservice", "/grpc.testing.TestService/"])
def test_04_bad_paths(client, path):
    # grpc-go server.go (handleStream): no `/service/method` → 200 trailers-only UNIMPLEMENTED,
    # `malformed method name`.
    st = client.call(path, frame(b""))
    assert st.grpc_status == 12, client.describe(st.id)
    assert_trailers_only(client, st.id)


def test_05_unknown_service_and_method(client):
    # 200 trailers-only UNIMPLEMENTED with grpc-go's messages (server.go handleStream).
    st = client.call("/grpc.testing.UnimplementedService/UnimplementedCall", frame(b""))
    assert st.grpc_status == 12, client.describe(st.id)
    assert st.grpc_message == "unknown service grpc.testing.UnimplementedService", client.describe(st.id)
    assert_trailers_only(client, st.id)

    st = client.call(TS + "NoSuchMethod", frame(b""))
    assert st.grpc_status == 12, client.describe(st.id)
    assert st.grpc_message == "unknown method NoSuchMethod for service grpc.testing.TestService", client.describe(st.id)
    assert_trailers_only(client, st.id)

    # A long name is echoed as its first 100 bytes, not whole (the request's header list may be 16 KiB).
    st = client.call(TS + "M" * 10_000, frame(b""))
    assert st.grpc_status == 12, client.describe(st.id)
    assert st.grpc_message == "unknown method " + "M" * 100 + "… for service grpc.testing.TestService", client.describe(st.id)
    st = client.call("/" + "é" * 5_000 + "/M", frame(b""))
    assert st.grpc_message == "unknown service " + "é" * 50 + "…", client.describe(st.id)


def test_06_compressed_flag_without_encoding(client):
    # grpc/grpc doc/compression.md, test case 6: Compressed-Flag 1 without grpc-encoding → INTERNAL.
    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=1), flag=1))
    assert st.reset_code is None and st.grpc_status == 13, client.describe(st.id)
    assert not st.messages, client.describe(st.id)


def test_06_a_compressed_flag_other_than_0_or_1_is_internal(client):
    # PROTOCOL-HTTP2.md, Compressed-Flag: only 0 and 1 are defined (grpc-go: "unrecognized compressed flag").
    for flag in (2, 0x80, 0xFF):
        st = client.call(TS + "UnaryCall", frame(simple_request(response_size=1), flag=flag))
        assert st.reset_code is None and st.grpc_status == 13, client.describe(st.id)
        assert st.grpc_message == f"invalid compressed flag {flag} (only 0 and 1 are defined)", client.describe(st.id)
        assert not st.messages, client.describe(st.id)


def test_07_message_split_across_many_data_frames(client):
    # PROTOCOL-HTTP2.md, "Data Frames": DATA frame boundaries mean nothing; 1-byte frames split the 5-byte prefix too.
    body = frame(simple_request(response_size=50, payload_size=20))
    sid = client.start(TS + "UnaryCall", body, chunk=1, end=False)
    client.send(sid, b"", end_stream=True)
    st = client.wait(sid)
    assert_unary_ok(client, st, 50)

    # The prefix split 2 + 3, and the message's last byte arriving with END_STREAM.
    body = frame(simple_request(response_size=9, payload_size=3))
    sid = client.start(TS + "UnaryCall", end=False)
    client.send(sid, body[:2])
    client.send(sid, body[2:5])
    client.send(sid, body[5:-1])
    client.send(sid, body[-1:], end_stream=True)
    assert_unary_ok(client, client.wait(sid), 9)


def test_08_many_messages_in_one_data_frame(client):
    # PROTOCOL-HTTP2.md, "Data Frames": several Length-Prefixed-Messages in one DATA frame (with END_STREAM on it).
    sizes = [0, 1, 8, 100, 1828, 4000, 7, 3000]
    body = b"".join(frame(streaming_input_request(n)) for n in sizes)
    assert len(body) <= client.conn.max_outbound_frame_size
    st = client.call(TS + "StreamingInputCall", body)  # one DATA frame with END_STREAM
    assert st.reset_code is None and st.grpc_status == 0, client.describe(st.id)
    messages = st.messages
    assert len(messages) == 1, client.describe(st.id)
    assert pb_parse(messages[0][1]).get(1, [0])[0] == sum(sizes), client.describe(st.id)


def test_09_zero_length_messages(client):
    # empty_unary sends exactly 00 00 00 00 00 and gets the same back.
    st = client.call(TS + "EmptyCall", b"\x00\x00\x00\x00\x00")
    assert st.reset_code is None and st.grpc_status == 0, client.describe(st.id)
    assert bytes(st.data) == b"\x00\x00\x00\x00\x00", client.describe(st.id)

    # Several empty messages on a client stream: aggregated size 0 (an empty StreamingInputCallResponse).
    st = client.call(TS + "StreamingInputCall", frame(b"") * 4)
    assert st.reset_code is None and st.grpc_status == 0, client.describe(st.id)
    assert [m for _, m in st.messages] == [b""], client.describe(st.id)

    # Empty messages between non-empty ones, each in its own DATA frame.
    sid = client.start(TS + "StreamingInputCall", end=False)
    for part in [frame(b""), frame(streaming_input_request(5)), frame(b""), frame(b""), frame(streaming_input_request(2))]:
        client.send(sid, part)
    client.send(sid, b"", end_stream=True)
    st = client.wait(sid)
    assert st.reset_code is None and st.grpc_status == 0, client.describe(sid)
    assert pb_parse(st.messages[0][1]).get(1, [0])[0] == 7, client.describe(sid)


def test_10_oversize_message(client):
    # statuscodes.md: a declared length of 4 MiB + 1 → RESOURCE_EXHAUSTED at once, without waiting for the bytes.
    sid = client.start(TS + "UnaryCall", end=False)
    client.send(sid, b"\x00" + struct.pack(">I", MAX_RECV + 1) + bytes(100))
    t0 = time.monotonic()
    st = client.wait(sid, timeout=3.0)
    assert st.grpc_status == 8, client.describe(sid)
    assert st.ended_at - t0 < 1.0, client.describe(sid)
    assert not st.messages, client.describe(sid)
    # PROTOCOL-HTTP2.md, "Early Server Closure": the client has not ended its stream, so RST_STREAM(NO_ERROR)
    # follows the trailers.
    client.sync()
    assert st.reset_code == NO_ERROR, client.describe(sid)


def test_11_header_list_over_the_limit(client):
    # PROTOCOL-HTTP2.md, "Requests" (header size): a 20 KiB header (limit 16 KiB) → RST_STREAM or an error
    # status; the connection survives.
    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=1)), extra=[("x-big", "a" * 20480)])
    assert st.done, client.describe(st.id)
    assert st.reset_code is not None or (st.grpc_status not in (None, 0)), client.describe(st.id)
    assert client.goaway is None and not client.closed and client.protocol_error is None, client.describe()

    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=3)))
    assert_unary_ok(client, st, 3)


def test_12_rst_stream_mid_stream_while_server_sleeps(client):
    # PROTOCOL-HTTP2.md, "Client Cancellation": the client cancels (RST_STREAM CANCEL) a FullDuplexCall whose
    # handler sleeps (interval_us) after its first response; the server must free the stream and keep serving the
    # connection.
    sid = client.start(TS + "FullDuplexCall", frame(streaming_output_request((1, 0), (1, 400_000))), end=False)
    st = client.streams[sid]
    assert client.pump(lambda: count_messages(st.data) >= 1 or st.done, TIMEOUT), client.describe(sid)
    assert len(st.messages) == 1 and not st.done, client.describe(sid)
    client.reset(sid, CANCEL)
    reset_at = time.monotonic()

    t0 = time.monotonic()
    ok = client.call(TS + "UnaryCall", frame(simple_request(response_size=4)))
    assert_unary_ok(client, ok, 4)
    assert ok.ended_at - t0 < 1.0, client.describe(ok.id)

    # Past the moment the cancelled handler would have written: still nothing on the reset stream, and the
    # connection still serves calls.
    client.pump(lambda: False, max(0.0, reset_at + 0.5 - time.monotonic()))
    ok = client.call(TS + "UnaryCall", frame(simple_request(response_size=5)))
    assert_unary_ok(client, ok, 5)
    late = [f for f in client.frames_for(sid) if f.at > reset_at and f.type != 8]
    assert not late, client.describe(sid)
    assert client.goaway is None and client.protocol_error is None, client.describe()


def test_13_deadline_expires_mid_stream(client):
    # PROTOCOL-HTTP2.md (Timeout, "Client Cancellation"): grpc-timeout 100m on a FullDuplexCall that sleeps 2 s
    # → DEADLINE_EXCEEDED within ~1 s.
    t0 = time.monotonic()
    sid = client.start(TS + "FullDuplexCall", frame(streaming_output_request((1, 2_000_000))), end=False,
                       extra=[("grpc-timeout", "100m")])
    st = client.wait(sid, timeout=3.0)
    assert st.grpc_status == 4, client.describe(sid)
    assert 0.09 <= st.ended_at - t0 < 1.0, client.describe(sid)
    assert not st.messages, client.describe(sid)
    # PROTOCOL-HTTP2.md, "Early Server Closure" ("Client Cancellation" asks for RST_STREAM after the local
    # cancel): the client had not half-closed, so the stream is reset after the trailers.
    client.sync()
    assert st.reset_code is not None, client.describe(sid)


def test_14_client_half_close_semantics(client):
    # PROTOCOL-HTTP2.md, "Requests": lock-step FullDuplexCall, then half-close with an empty DATA frame +
    # END_STREAM → status OK.
    sid = client.start(TS + "FullDuplexCall", end=False)
    st = client.streams[sid]
    sizes = [3, 11, 0]
    for i, size in enumerate(sizes):
        client.send(sid, frame(streaming_output_request((size, 0))))
        assert client.pump(lambda: count_messages(st.data) > i or st.done, TIMEOUT), client.describe(sid)
        assert not st.done and len(st.messages) == i + 1, client.describe(sid)
    client.send(sid, b"", end_stream=True)
    client.wait(sid)
    assert st.reset_code is None and st.ended, client.describe(sid)
    assert st.http_status == "200" and dict(st.headers).get("content-type", "").startswith("application/grpc")
    assert st.trailers is not None and st.grpc_status == 0, client.describe(sid)
    assert [payload_size_of(m) for _, m in st.messages] == sizes, client.describe(sid)

    # statuscodes.md (cardinality violation): END_STREAM on the HEADERS frame of a unary call: no request
    # message → UNIMPLEMENTED.
    for method in ("EmptyCall", "UnaryCall"):
        st = client.call(TS + method, end_on_headers=True)
        assert st.reset_code is None and st.grpc_status == 12, client.describe(st.id)
        assert not st.messages, client.describe(st.id)


def test_15_unsupported_grpc_encoding(client):
    # compression.md: an unknown grpc-encoding → UNIMPLEMENTED, and grpc-accept-encoding lists what is supported.
    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=1), flag=1), extra=[("grpc-encoding", "snappy")])
    assert st.grpc_status == 12, client.describe(st.id)
    accept = st.header("grpc-accept-encoding")
    assert accept is not None, client.describe(st.id)
    codings = [c.strip() for c in accept.split(",")]
    assert "gzip" in codings and "snappy" not in codings, client.describe(st.id)


def test_16_malformed_grpc_timeout(client):
    # As grpc-go http2_server.go: HTTP 400 + INTERNAL.
    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=1)), extra=[("grpc-timeout", "soon")])
    assert st.http_status == "400" and st.grpc_status == 13, client.describe(st.id)
    assert st.headers_ended, client.describe(st.id)


def test_17_invalid_base64_binary_metadata(client):
    # As grpc-go http2_server.go: a -bin value that is not base64 → HTTP 400 + INTERNAL.
    st = client.call(TS + "UnaryCall", frame(simple_request(response_size=1)), extra=[("x-test-bin", "@@@@!")])
    assert st.http_status == "400" and st.grpc_status == 13, client.describe(st.id)
    assert st.headers_ended, client.describe(st.id)


def test_18_percent_encoded_grpc_message(client):
    # PROTOCOL-HTTP2.md, "Responses" (Status-Message): `a%b ☺\n` → `a%25b %E2%98%BA%0A`, byte for byte.
    st = client.call(TS + "UnaryCall", frame(simple_request(status=(2, "a%b \u263a\n"))))
    assert st.grpc_status == 2, client.describe(st.id)
    assert st.header("grpc-message") == "a%25b %E2%98%BA%0A", client.describe(st.id)


def test_19_ping_flood(interop_server):
    # keepalive.md: more than 2 pings closer than 5 minutes without data → GOAWAY ENHANCE_YOUR_CALM `too_many_pings`.
    c = Client(interop_server.port)
    try:
        for _ in range(10):
            c.ping()
        c.pump(lambda: c.goaway is not None, 3.0)
        goaways = [f for f in c.log.frames if f.type == 7]
        assert c.goaway is not None and goaways, c.describe()
        assert c.goaway.error_code == ENHANCE_YOUR_CALM, c.describe()
        assert c.goaway.additional_data == b"too_many_pings", c.describe()
        assert c.goaway.last_stream_id == 0, c.describe()
        # PROTOCOL-HTTP2.md, "GOAWAY Frame": GOAWAY first, then the server closes the connection.
        assert c.pump(lambda: c.closed, 2.0), c.describe()
        # One GOAWAY, however many pings follow (regression: one per extra ping was sent).
        assert len([f for f in c.log.frames if f.type == 7]) == 1, c.describe()
    finally:
        c.close()


def test_20_trailers_only_error_before_any_message(client):
    # Trailers-Only (PROTOCOL-HTTP2.md, "Responses"): a handler failing before it sends a message → :status,
    # content-type and grpc-status in ONE HEADERS frame with END_STREAM.
    st = client.call(TS + "UnaryCall", frame(simple_request(status=(5, "nope"))))
    assert st.grpc_status == 5 and st.grpc_message == "nope", client.describe(st.id)
    assert_trailers_only(client, st.id)
    assert len(headers_frames(client, st.id)) == 1, client.describe(st.id)

    # The same for a streaming method whose status comes before any response.
    body = frame(pb_bytes(7, pb_varint(1, 9) + pb_bytes(2, b"stop")))  # StreamingOutputCallRequest.response_status
    st = client.call(TS + "StreamingOutputCall", body)
    assert st.grpc_status == 9 and st.grpc_message == "stop", client.describe(st.id)
    assert_trailers_only(client, st.id)


PROTOCOL_ERROR, STREAM_CLOSED = 0x1, 0x5


def raw_frame(type_, flags, stream, payload=b""):
    """A frame written straight to the socket, past h2's own state machine (which would refuse to send it)."""
    return len(payload).to_bytes(3, "big") + bytes([type_, flags]) + stream.to_bytes(4, "big") + payload


def refusal(client, sid):
    """The error the server answered with: (`GOAWAY` or `RST_STREAM`, code), or None."""
    client.pump(lambda: client.goaway is not None or client.closed
                or any(f.type == 3 and f.stream == sid and f.error_code != CANCEL for f in client.log.frames), 3.0)
    for f in client.log.frames:
        if f.type == 7 or (f.type == 3 and f.stream == sid and f.error_code != CANCEL):
            return f.name, f.error_code
    return None


@pytest.mark.parametrize("case", ["DATA after the client's reset", "HEADERS after the client's reset",
                                  "DATA after both sides ended"])
def test_frames_on_a_closed_stream_are_stream_closed(interop_server, case):
    # RFC 9113 §5.1 ("closed"; "half-closed (remote)"): DATA or HEADERS on a closed stream is STREAM_CLOSED, as
    # nghttpd answers it. (Before, our server ignored them and the connection waited: nghttp2 keeps no closed
    # streams, and so cannot tell closed from unknown, when SETTINGS_NO_RFC7540_PRIORITIES is sent.)
    c = Client(interop_server.port)
    try:
        if case == "DATA after both sides ended":
            sid = c.start(TS + "EmptyCall", frame(b""))
            assert c.wait(sid).grpc_status == 0, c.describe(sid)
        else:
            sid = c.start(TS + "FullDuplexCall", end=False)
            c.sync()
            c.reset(sid)
            c.sync()
        if case.startswith("HEADERS"):
            # Static-table entries only (:method POST, :scheme http, :path /), so HPACK state stays in step.
            c.sock.sendall(raw_frame(1, END_HEADERS | END_STREAM, sid, bytes([0x83, 0x86, 0x84])))
        else:
            c.sock.sendall(raw_frame(0, 0, sid, frame(b"")))
        assert refusal(c, sid) in [("GOAWAY", STREAM_CLOSED), ("RST_STREAM", STREAM_CLOSED)], c.describe()
    finally:
        c.close()


@pytest.mark.parametrize("case", ["on stream 0", "depending on its own stream"])
def test_malformed_priority_frames_are_protocol_errors(interop_server, case):
    # RFC 9113 §6.3: PRIORITY on stream 0 is a connection error PROTOCOL_ERROR; §5.3.1: a stream depending on
    # itself is PROTOCOL_ERROR. (Before, both were ignored: nghttp2 skips PRIORITY frames altogether once
    # SETTINGS_NO_RFC7540_PRIORITIES is sent.)
    c = Client(interop_server.port)
    try:
        sid = 0
        if case == "on stream 0":
            c.sock.sendall(raw_frame(2, 0, 0, (1).to_bytes(4, "big") + bytes([15])))
        else:
            sid = c.start(TS + "FullDuplexCall", end=False)
            c.sync()
            c.sock.sendall(raw_frame(2, 0, sid, sid.to_bytes(4, "big") + bytes([15])))
        assert refusal(c, sid) in [("GOAWAY", PROTOCOL_ERROR), ("RST_STREAM", PROTOCOL_ERROR)], c.describe()
    finally:
        c.close()


def test_a_header_list_far_over_the_limit_ends_the_connection(interop_server):
    # An HPACK bomb: one 4 KiB header put into the dynamic table, then a request that refers to it 4,000 times
    # (a byte each: 4 KB on the wire, 16 MB decoded). Over 4x the advertised 16 KiB, decoding stops and the
    # connection ends with GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §10.5.1); before, nghttp2 decoded all of it for
    # each such request, and four clients kept the server's two cores busy.
    import hpack
    c = Client(interop_server.port)
    try:
        encoder = hpack.Encoder()
        base = [(":method", "POST"), (":scheme", "http"), (":path", TS + "EmptyCall"),
                (":authority", f"127.0.0.1:{interop_server.port}"), ("content-type", "application/grpc"), ("te", "trailers")]
        first = encoder.encode(base) + encoder.encode([("x-bomb", "b" * 4000)])
        c.sock.sendall(raw_frame(1, END_HEADERS | END_STREAM, 101, first))
        bomb = encoder.encode(base) + bytes([0x80 | 62]) * 4000
        c.sock.sendall(raw_frame(1, END_HEADERS | END_STREAM, 103, bomb))
        # Read the raw frames only: h2 knows nothing of the streams sent past it and would stop at the first answer.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(f.type == 7 for f in c.log.frames):
            c.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = c.sock.recv(1 << 16)
            except (socket.timeout, OSError):
                break
            if not data:
                break
            c.log.feed(data)
        goaways = [f for f in c.log.frames if f.type == 7]
        assert goaways and goaways[-1].error_code == ENHANCE_YOUR_CALM, c.describe()
    finally:
        c.close()


def test_settings_advertise_max_header_list_size(client):
    # PROTOCOL-HTTP2.md, "Requests" (header size), nghttp2.h: SETTINGS_MAX_HEADER_LIST_SIZE 16384 in the
    # server's first SETTINGS frame (the preface).
    first = client.log.frames[0]
    assert first.type == 4 and not first.flags & 1, client.describe()
    entries = dict(struct.unpack(">HI", first.payload[i:i + 6]) for i in range(0, len(first.payload), 6))
    assert entries.get(SETTINGS_MAX_HEADER_LIST_SIZE) == 16384, client.describe()
    assert client.remote_settings.get(SETTINGS_MAX_HEADER_LIST_SIZE) == 16384


def test_100_parallel_streams_are_not_refused(client):
    # REFUSED_STREAM only above MAX_CONCURRENT_STREAMS; 100 parallel calls are all served.
    advertised = client.remote_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS, 2**31)
    assert advertised >= 100, client.describe()
    sids = [client.start(TS + "UnaryCall", frame(simple_request(response_size=i, payload_size=i)))
            for i in range(100)]
    client.pump(lambda: all(client.streams[s].done for s in sids), 10.0)
    refused = [s for s in sids if client.streams[s].reset_code is not None]
    assert not refused, f"reset streams {refused}: " + client.describe()
    for i, sid in enumerate(sids):
        assert_unary_ok(client, client.streams[sid], i)
    assert client.goaway is None, client.describe()
