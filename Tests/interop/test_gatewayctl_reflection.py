"""`gatewayctl list`, `describe` and `call` against a server nobody here wrote: Python grpcio serving
peer.v1.Inventory (Tests/Protos/peer/v1), with grpcio-reflection (which offers only grpc.reflection.v1alpha,
so the CLI's fallback from v1 is exercised too). Unary, server-, client- and bidirectional streaming; proto2
and proto3 types, maps, oneofs, wrappers, timestamps and bytes."""

import base64
import json
import os
from concurrent import futures

import grpc
import pytest

from conftest import free_port


@pytest.fixture(scope="module")
def inventory(pb2):
    from grpc_reflection.v1alpha import reflection
    from peer.v1 import inventory_pb2 as messages, inventory_pb2_grpc as services

    class Inventory(services.InventoryServicer):
        def __init__(self):
            self.items = {}
            self.metadata = []

        def GetItem(self, request, context):
            self.metadata.append(dict(context.invocation_metadata()))
            if request.sku not in self.items:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no item {request.sku}")
            return self.items[request.sku]

        def ListItems(self, request, context):
            chosen = [i for i in self.items.values() if request.kind in (0, i.kind)]
            yield from sorted(chosen, key=lambda i: i.sku)[: request.limit or None]

        def AddItems(self, request_iterator, context):
            skus = []
            for item in request_iterator:
                self.items[item.sku] = item
                skus.append(item.sku)
            return messages.AddItemsResponse(added=len(skus), skus=skus)

        def Echo(self, request_iterator, context):
            for item in request_iterator:
                yield item

    servicer = Inventory()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    services.add_InventoryServicer_to_server(servicer, server)
    names = (messages.DESCRIPTOR.services_by_name["Inventory"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield servicer, messages, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


class Ctl:
    def __init__(self, binaries, tmp_path, server):
        self.binary = str(binaries / "gatewayctl")
        # No saved credentials: nothing of ours is sent to a server that is not ours.
        self.env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), GATEWAY_SERVER=server)
        self.env.pop("GATEWAY_TOKEN", None)

    def run(self, *args, input=None):
        import subprocess
        return subprocess.run([self.binary, *args], input=input, env=self.env, capture_output=True, timeout=60)

    def ok(self, *args, input=None):
        out = self.run(*args, input=input)
        assert out.returncode == 0, (args, out.returncode, out.stderr.decode())
        return out.stdout.decode()

    def lines(self, *args, input=None):
        return [json.loads(line) for line in self.ok(*args, "--output", "json", input=input).splitlines()]


@pytest.fixture
def ctl(binaries, inventory, tmp_path):
    return Ctl(binaries, tmp_path, inventory[2])


def test_list_and_describe_through_v1alpha_reflection(ctl):
    services = ctl.ok("list").split()
    assert "peer.v1.Inventory" in services and "grpc.reflection.v1alpha.ServerReflection" in services
    assert ctl.ok("list", "peer.v1.Inventory").split() == [
        "peer.v1.Inventory.GetItem", "peer.v1.Inventory.ListItems", "peer.v1.Inventory.AddItems", "peer.v1.Inventory.Echo",
    ]
    service = ctl.ok("describe", "peer.v1.Inventory")
    assert "rpc Echo ( stream .peer.v1.Item ) returns ( stream .peer.v1.Item );" in service
    item = ctl.ok("describe", "peer.v1.Item")
    for line in ("map<string, int64> stock = 4;", "repeated string tags = 3;", "oneof origin {", "uint32 batch = 8;",
                 "optional double weight = 9;", ".google.protobuf.Int64Value price_cents = 6;"):
        assert line in item, (line, item)
    legacy = ctl.ok("describe", "peer.v1.LegacyRecord")
    assert "required int32 id = 1;" in legacy and "optional string note = 2;" in legacy
    kind = json.loads(ctl.ok("describe", "peer.v1.Kind", "--output", "json"))
    assert kind["values"] == [{"name": "KIND_UNSPECIFIED", "number": 0}, {"name": "KIND_TOOL", "number": 1},
                              {"name": "KIND_PART", "number": 2}]
    method = json.loads(ctl.ok("describe", "peer.v1.Inventory.AddItems", "--output", "json"))
    assert (method["clientStreaming"], method["serverStreaming"]) == (True, False)


def test_call_every_kind_of_method(ctl, inventory, tmp_path):
    servicer, messages, _ = inventory
    photo = bytes(range(256))
    items = [
        {"sku": "hammer", "kind": "KIND_TOOL", "tags": ["steel", "ü"], "stock": {"berlin": "3", "paris": "-1"},
         "addedAt": "2026-12-04T10:00:00.250Z", "priceCents": "1999", "vendor": "acme", "weight": 0,
         "legacy": {"id": 7, "codes": [-1, 2]}, "photo": base64.b64encode(photo).decode()},
        {"sku": "bolt", "kind": "KIND_PART", "batch": 42, "legacy": {"id": 0, "note": ""}},
    ]
    # Client streaming: one JSON object per line, from a file.
    source = tmp_path / "items.jsonl"
    source.write_text("\n".join(json.dumps(i) for i in items) + "\n\n")
    added = ctl.lines("call", "peer.v1.Inventory/AddItems", "-d", f"@{source}")
    assert added == [{"added": 2, "skus": ["hammer", "bolt"]}]

    # What the Python server stored is what the JSON said.
    hammer = servicer.items["hammer"]
    assert hammer.kind == messages.KIND_TOOL and list(hammer.tags) == ["steel", "ü"]
    assert dict(hammer.stock) == {"berlin": 3, "paris": -1} and hammer.price_cents.value == 1999
    assert hammer.added_at.seconds == 1796378400 and hammer.added_at.nanos == 250_000_000
    assert hammer.WhichOneof("origin") == "vendor" and hammer.HasField("weight") and hammer.weight == 0
    assert hammer.legacy.id == 7 and not hammer.legacy.HasField("note") and list(hammer.legacy.codes) == [-1, 2]
    assert hammer.photo == photo
    bolt = servicer.items["bolt"]
    assert bolt.batch == 42 and bolt.legacy.HasField("id") and bolt.legacy.HasField("note") and bolt.legacy.note == ""
    assert not bolt.HasField("weight")

    # Unary, and the JSON we print is the JSON the peer's own library prints.
    from google.protobuf import json_format
    got = ctl.lines("call", "peer.v1.Inventory/GetItem", "-d", '{"sku": "hammer"}')
    assert got == [json_format.MessageToDict(hammer)]
    # Text output is the same JSON, indented.
    assert json.loads(ctl.ok("call", "peer.v1.Inventory.GetItem", "-d", '{"sku": "bolt"}')) == json_format.MessageToDict(bolt)

    # Server streaming, request from stdin.
    listed = ctl.lines("call", "peer.v1.Inventory/ListItems", "-d", "-", input=b'{"kind": "KIND_PART"}')
    assert [i["sku"] for i in listed] == ["bolt"]
    assert [i["sku"] for i in ctl.lines("call", "peer.v1.Inventory/ListItems")] == ["bolt", "hammer"]

    # Bidirectional, lines from stdin as they come.
    lines = b"".join(json.dumps({"sku": f"e{n}", "batch": n}).encode() + b"\n" for n in range(50))
    echoed = ctl.lines("call", "peer.v1.Inventory/Echo", "-d", "-", input=lines)
    assert [(e["sku"], e["batch"]) for e in echoed] == [(f"e{n}", n) for n in range(50)]

    # Headers reach the peer; no token is sent when none is configured.
    ctl.ok("call", "peer.v1.Inventory/GetItem", "-d", '{"sku": "bolt"}', "-H", "x-trace=abc")
    assert servicer.metadata[-1].get("x-trace") == "abc" and "authorization" not in servicer.metadata[-1]


def test_errors_from_the_peer_and_bad_input(ctl, inventory):
    missing = ctl.run("call", "peer.v1.Inventory/GetItem", "-d", '{"sku": "nope"}')
    assert missing.returncode == 64 + 5 and b"NOT_FOUND" in missing.stderr and b"no item nope" in missing.stderr

    cases = [
        (["call", "peer.v1.Inventory/GetItem", "-d", '{"sku": "a",\n "x": }'], b"line 2, column"),
        (["call", "peer.v1.Inventory/GetItem", "-d", '{"skew": "a"}'], b'has no field "skew"'),
        (["call", "peer.v1.Inventory/AddItems", "-d", '{"sku": "a"}\n{"kind": "KIND_NOPE"}'], b"line 2"),
        (["call", "peer.v1.Inventory/Steal"], b"has no method Steal"),
        (["call", "peer.v2.Inventory/GetItem"], b"no symbol peer.v2.Inventory"),
        (["call", "nonsense"], b"not pkg.Service/Method"),
        (["describe", "peer.v1.Nothing"], b"no symbol peer.v1.Nothing"),
        (["list", "peer.v1.Item"], b"not a service"),
    ]
    before = len(inventory[0].items)
    for args, message in cases:
        out = ctl.run(*args)
        assert out.returncode == 2 and message in out.stderr, (args, out.returncode, out.stderr)
        assert len(out.stderr.decode().strip().splitlines()) == 1, out.stderr
    assert len(inventory[0].items) == before  # nothing was called with bad input
    # Bad input on a streamed stdin line fails the call at that line.
    streamed = ctl.run("call", "peer.v1.Inventory/Echo", "-d", "-", input=b'{"sku": "ok"}\n{"sku": 5}\n')
    assert streamed.returncode == 2 and b"stdin line 2" in streamed.stderr
    missing_file = ctl.run("call", "peer.v1.Inventory/AddItems", "-d", "@/nonexistent/items.jsonl")
    assert missing_file.returncode == 1 and b"no such file" in missing_file.stderr
