"""Encode/decode throughput of Python protobuf (upb backend), for scripts/bench-codec.

    python codec_upb.py [--seconds S]

Compiles the two schemas with grpc_tools' protoc into a temporary folder, builds the same two messages as
Sources/codec-bench/CodecBench.swift (samples()), and prints one line per case in codec-bench's format:
`name op ns_per_op msgs_per_s mb_per_s bytes`.

The timing method is codec-bench's: a monotonic clock, batches of 64 until S seconds have passed. Each batch
is one Python function whose loop calls the bound protobuf methods directly, so the figures carry the
interpreter's loop overhead (as any Python caller pays it) but no extra closure call per operation.
"""

import argparse
import importlib
import importlib.resources
import os
import sys
import tempfile
import time

from google.protobuf.internal import api_implementation

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROTOS = ["gateway/user/v1/user_service.proto", "gateway/file/v1/file_service.proto"]
BATCH = 64


def compile_protos(out_dir):
    """Generates *_pb2.py for PROTOS into out_dir and puts it first on sys.path."""
    from grpc_tools import protoc

    wkt = str(importlib.resources.files("grpc_tools") / "_proto")  # google/protobuf/*.proto
    args = ["protoc", f"-I{os.path.join(ROOT, 'proto')}", f"-I{wkt}", f"--python_out={out_dir}", *PROTOS]
    if protoc.main(args) != 0:
        sys.exit("codec_upb: protoc failed")
    sys.path.insert(0, out_dir)


def samples():
    """The same two messages as CodecBench.samples(): (name, message class, message)."""
    user_pb2 = importlib.import_module("gateway.user.v1.user_service_pb2")
    file_pb2 = importlib.import_module("gateway.file.v1.file_service_pb2")
    user = user_pb2.User(
        id="01HZX3KQ4V7T9ZB2C8M1N5P6RS",
        email="ada.lovelace@example.com",
        display_name="Ada Lovelace",
        photo_url="https://example.com/photos/ada.png",
        firebase_uid="h7Qx2LmT9bVdK3pR8sW1yZ4nA6cE",
        is_active=True,
        version=42,
    )
    user.created_at.seconds, user.created_at.nanos = 1_700_000_000, 123_000_000
    user.updated_at.seconds, user.updated_at.nanos = 1_700_086_400, 456_000_000
    chunk = file_pb2.UploadFileRequest(chunk=bytes((i * 7) & 0xFF for i in range(65536)))
    return [("small-user", user_pb2.User, user), ("large-64k-bytes", file_pb2.UploadFileRequest, chunk)]


def run(name, op, nbytes, seconds, batch):
    """Calls batch() (BATCH operations) until `seconds` have passed; prints codec-bench's line."""
    clock = time.perf_counter_ns
    count = 0
    start = clock()
    deadline = start + int(seconds * 1000) * 1_000_000  # whole milliseconds, as codec-bench
    while clock() < deadline:
        batch()
        count += BATCH
    secs = (clock() - start) / 1e9
    per_second = count / secs
    print(name, op, round(secs / count * 1e9, 3), round(per_second, 3), round(per_second * nbytes / 1e6, 3), nbytes,
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    if api_implementation.Type() != "upb":
        print(f"codec_upb: warning: protobuf backend is {api_implementation.Type()!r}, not 'upb'", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench-upb-") as out_dir:
        compile_protos(out_dir)
        cases = samples()

    loop = range(BATCH)
    for name, cls, message in cases:
        data = message.SerializeToString()
        serialize, parse = message.SerializeToString, cls.FromString
        assert parse(data) == message, f"{name}: round trip changed the message"

        def encode():
            for _ in loop:
                serialize()

        def decode():
            for _ in loop:
                parse(data)

        # As codec-bench: decode the bytes, then encode the sample (not the decoded copy).
        def decode_encode():
            for _ in loop:
                parse(data)
                serialize()

        run(name, "encode", len(data), args.seconds, encode)
        run(name, "decode", len(data), args.seconds, decode)
        run(name, "decode+encode", len(data), args.seconds, decode_encode)


if __name__ == "__main__":
    main()
