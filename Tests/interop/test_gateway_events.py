"""EventService end to end: grpcio against the built `gateway` on its embedded default."""

import threading
import time

import grpc
import pytest

from gateway_fixtures import BACKENDS, AWSPlace, all_pages, run_gateway, run_gateway_on


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(request, binaries, pb2, tmp_path_factory):
    with run_gateway_on(request.param, binaries, tmp_path_factory.mktemp("gateway-events"), request) as gw:
        yield gw


@pytest.fixture(scope="module")
def api(pb2):
    from gateway.event.v1 import event_service_pb2 as messages, event_service_pb2_grpc as services
    return messages, services


def events_stub(gateway, api):
    return api[1].EventServiceStub(gateway.channel)


def new_event(api, i, **fields):
    fields.setdefault("type", "OrderPlaced")
    fields.setdefault("aggregate_id", f"order-{i % 7}")
    return api[0].NewEvent(payload=f"payload {i}".encode(), content_type="text/plain",
                           attributes={"n": str(i)}, **fields)


def test_publish_assigns_ids_and_increasing_sequence_numbers(gateway, api):
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-publisher")
    first = events.PublishEvent(m.PublishEventRequest(event=new_event(api, 1)), metadata=md, timeout=10)
    batch = events.PublishEvents(m.PublishEventsRequest(events=[new_event(api, i) for i in range(2, 6)]), metadata=md, timeout=10)
    sequences = [first.sequence] + [r.sequence for r in batch.results]
    assert sequences == list(range(first.sequence, first.sequence + 5))
    assert len({r.id for r in batch.results} | {first.id}) == 5 and all(len(r.id) == 26 for r in batch.results)


def test_idempotency_key_returns_the_first_event(gateway, api):
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-idem")
    event = new_event(api, 1, idempotency_key="order-1-placed")
    first = events.PublishEvent(m.PublishEventRequest(event=event), metadata=md, timeout=10)
    again = events.PublishEvent(m.PublishEventRequest(event=event), metadata=md, timeout=10)
    assert (again.id, again.sequence, again.duplicate, first.duplicate) == (first.id, first.sequence, True, False)
    # Another publisher's key space is its own.
    other = events.PublishEvent(m.PublishEventRequest(event=event), metadata=gateway.tokens.metadata("uid-other"), timeout=10)
    assert not other.duplicate and other.sequence > first.sequence


@pytest.mark.parametrize("event, field", [
    ({"type": ""}, "event.type"),
    ({"type": "bad type"}, "event.type"),
    ({"type": "UserDeleted", "aggregate_id": "someone-else"}, "event.type"),
    ({"type": "T", "payload": b"x" * ((1 << 20) + 1)}, "event.payload"),
    ({"type": "T", "attributes": {f"k{i}": "v" for i in range(65)}}, "event.attributes"),
])
def test_invalid_events_name_the_field(gateway, api, event, field):
    m, events = api[0], events_stub(gateway, api)
    with pytest.raises(grpc.RpcError) as info:
        events.PublishEvent(m.PublishEventRequest(event=m.NewEvent(**event)), metadata=gateway.tokens.metadata("uid-x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith(field)


def test_a_batch_with_one_bad_event_stores_nothing(gateway, api):
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-batch")
    admin = gateway.tokens.metadata("uid-admin", admin=True)
    before = events.ListEvents(m.ListEventsRequest(page_size=1000), metadata=md, timeout=10).events
    with pytest.raises(grpc.RpcError) as info:
        events.PublishEvents(m.PublishEventsRequest(events=[new_event(api, 1), m.NewEvent(type="")]), metadata=md, timeout=10)
    assert info.value.details().startswith("events[1].type")
    assert events.ListEvents(m.ListEventsRequest(page_size=1000), metadata=md, timeout=10).events == before
    assert admin  # admins see everything; the caller sees only its own events


def test_readers_see_their_own_events_and_admins_see_all(gateway, api):
    m, events = api[0], events_stub(gateway, api)
    alice, bob = gateway.tokens.metadata("uid-alice"), gateway.tokens.metadata("uid-bob")
    a = events.PublishEvent(m.PublishEventRequest(event=new_event(api, 1, type="AliceThing")), metadata=alice, timeout=10)
    events.PublishEvent(m.PublishEventRequest(event=new_event(api, 2, type="BobThing")), metadata=bob, timeout=10)
    seen_by_alice = events.ListEvents(m.ListEventsRequest(page_size=1000), metadata=alice, timeout=10).events
    assert {e.publisher for e in seen_by_alice} == {"uid-alice"} and a.id in {e.id for e in seen_by_alice}
    admin = gateway.tokens.metadata("uid-admin", admin=True)
    everything = events.ListEvents(m.ListEventsRequest(page_size=1000), metadata=admin, timeout=10).events
    assert {"uid-alice", "uid-bob"} <= {e.publisher for e in everything}


def test_list_events_pages_in_order_with_filters(gateway, api):
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-lister")
    published = events.PublishEvents(m.PublishEventsRequest(events=[new_event(api, i, type="Paged") for i in range(50)]),
                                     metadata=md, timeout=10).results
    seen = [e for page in all_pages(lambda token: events.ListEvents(
        m.ListEventsRequest(filter=m.EventFilter(types=["Paged"], aggregate_ids=["order-3"]), page_size=3, page_token=token),
        metadata=md, timeout=10)) for e in page.events]
    expected = [r.sequence for i, r in enumerate(published) if i % 7 == 3]
    assert [e.sequence for e in seen] == expected
    assert all(e.payload.startswith(b"payload ") and e.attributes["n"] for e in seen)
    altered = page_token_of(events, m, md)
    with pytest.raises(grpc.RpcError) as info:
        events.ListEvents(m.ListEventsRequest(page_size=1, page_token=altered[:-2] + ("A" if altered[-2] != "A" else "B") + altered[-1]),
                          metadata=md, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def page_token_of(events, m, md):
    return events.ListEvents(m.ListEventsRequest(page_size=1), metadata=md, timeout=10).next_page_token


def test_subscriber_from_sequence_n_gets_every_later_event_once_in_order_across_the_switch(gateway, api):
    """A publisher publishes 10,000 events; a subscriber starting at N (in the past) must see every event from
    N on exactly once and in order, while it moves from catch-up to live."""
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-stream")
    warmup = events.PublishEvents(m.PublishEventsRequest(events=[new_event(api, i, type="Stream") for i in range(500)]),
                                  metadata=md, timeout=30).results
    start = warmup[100].sequence
    total = 10_000
    published = []

    def publish():
        for chunk in range(0, total, 100):
            batch = [new_event(api, i, type="Stream") for i in range(chunk, chunk + 100)]
            published.extend(r.sequence for r in events.PublishEvents(m.PublishEventsRequest(events=batch), metadata=md, timeout=30).results)

    call = events.Subscribe(m.SubscribeRequest(from_sequence=start, filter=m.EventFilter(types=["Stream"])),
                            metadata=md, timeout=120)
    publisher = threading.Thread(target=publish)
    publisher.start()
    received = []
    expected_count = len(warmup) - 100 + total
    for item in call:
        if item.WhichOneof("item") == "event":
            received.append(item.event.sequence)
            if len(received) == expected_count:
                break
    call.cancel()
    publisher.join()
    expected = [r.sequence for r in warmup[100:]] + published
    assert received == expected


def test_subscribe_from_now_and_heartbeats(gateway, api):
    from google.protobuf import duration_pb2
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-beat")
    events.PublishEvent(m.PublishEventRequest(event=new_event(api, 0, type="Before")), metadata=md, timeout=10)
    call = events.Subscribe(m.SubscribeRequest(heartbeat_interval=duration_pb2.Duration(nanos=200_000_000)),
                            metadata=md, timeout=30)
    items = iter(call)
    first = next(items)
    # Not the log's position (others' activity) for a non-admin: nothing was delivered and no start asked for.
    assert first.WhichOneof("item") == "heartbeat" and first.heartbeat.last_sequence == 0
    after = events.PublishEvent(m.PublishEventRequest(event=new_event(api, 1, type="After")), metadata=md, timeout=10)
    while True:
        item = next(items)
        if item.WhichOneof("item") == "event":
            assert (item.event.type, item.event.sequence) == ("After", after.sequence)
            break
    call.cancel()


def test_user_changes_record_domain_events(gateway, api, pb2):
    from gateway.user.v1 import user_service_pb2 as um, user_service_pb2_grpc as us
    from gateway.common.v1 import domain_events_pb2 as de
    from google.protobuf import field_mask_pb2
    md = gateway.tokens.metadata("uid-domain")
    users = us.UserServiceStub(gateway.channel)
    user = users.CreateUser(um.CreateUserRequest(email="domain@example.com", display_name="D"), metadata=md, timeout=10)
    users.UpdateUser(um.UpdateUserRequest(user=um.User(id=user.id, display_name="E"),
                                          update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=md, timeout=10)
    users.DeleteUser(um.DeleteUserRequest(id=user.id), metadata=md, timeout=10)
    m = api[0]
    log = events_stub(gateway, api).ListEvents(m.ListEventsRequest(filter=m.EventFilter(aggregate_ids=[user.id])),
                                               metadata=md, timeout=10).events
    assert [e.type for e in log] == ["UserCreated", "UserUpdated", "UserDeleted"]
    assert de.UserCreated.FromString(log[0].payload).email == "domain@example.com"
    updated = de.UserUpdated.FromString(log[1].payload)
    assert (list(updated.changed_fields), updated.version) == (["display_name"], 2)
    assert log[0].content_type == "application/x-protobuf; messageType=gateway.common.v1.UserCreated"


def test_publish_stream_answers_every_event_in_order_and_stores_them_in_order(gateway, api):
    """EventService/PublishStream: 1,000 events on one stream, every 97th not valid, keys repeated: one answer
    per event in order (an error for the invalid ones, the stream goes on), the stored events in the stream's
    order with consecutive sequence numbers, and a repeated key answered with the first event."""
    m, events = api[0], events_stub(gateway, api)
    md = gateway.tokens.metadata("uid-stream-ingest")

    def request(i):
        if i % 97 == 13:
            return m.PublishEventRequest(event=m.NewEvent(type="", aggregate_id="a"))
        key = f"ingest-{i % 100}" if i % 250 == 0 else ""
        return m.PublishEventRequest(event=new_event(api, i, type="Ingest", idempotency_key=key))

    answers = list(events.PublishStream((request(i) for i in range(1000)), metadata=md, timeout=120))
    assert len(answers) == 1000
    stored = []
    for i, answer in enumerate(answers):
        if i % 97 == 13:
            assert answer.WhichOneof("result") == "error"
            assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert answer.error.message == "event.type: is required"
        else:
            assert answer.WhichOneof("result") == "event", (i, answer)
            if not answer.event.duplicate:
                stored.append((answer.event.sequence, f"payload {i}".encode()))
    # i = 0, 250, 500, 750 share key ingest-0 / ingest-50: the first of each is stored, the others answer it.
    assert [a.event.duplicate for i, a in enumerate(answers) if i % 250 == 0] == [False, False, True, True]
    assert answers[500].event.sequence == answers[0].event.sequence
    sequences = [s for s, _ in stored]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    listed = events.ListEvents(m.ListEventsRequest(after_sequence=sequences[0] - 1, page_size=1000,
                                                   filter=m.EventFilter(types=["Ingest"])), metadata=md, timeout=30).events
    assert [(e.sequence, e.payload) for e in listed] == stored


def test_publish_stream_with_nothing_sent_ends_ok(gateway, api):
    m, events = api[0], events_stub(gateway, api)
    assert list(events.PublishStream(iter([]), metadata=gateway.tokens.metadata("uid-empty"), timeout=30)) == []


def test_a_subscriber_that_stops_reading_is_ended_and_publishers_never_wait(binaries, pb2, api, tmp_path):
    """A raw HTTP/2 client subscribes and never grants flow-control window, so the gateway's writes to it fill up
    and stop. Publishing goes on undisturbed; after --subscriber-stall-seconds the subscription ends with
    RESOURCE_EXHAUSTED (seen once the client finally opens its window)."""
    import socket
    import h2.config
    import h2.connection
    import h2.events

    m, services = api
    with run_gateway(binaries, tmp_path, "--subscriber-stall-seconds", "1") as gateway:
        token = gateway.tokens("uid-slow", admin=True)
        sock = socket.create_connection(("127.0.0.1", gateway.port))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/gateway.event.v1.EventService/Subscribe"),
                              (":authority", "test"), ("content-type", "application/grpc"), ("te", "trailers"),
                              ("authorization", f"Bearer {token}")])
        request = m.SubscribeRequest(from_sequence=1).SerializeToString()
        conn.send_data(1, b"\x00" + len(request).to_bytes(4, "big") + request, end_stream=True)
        sock.sendall(conn.data_to_send())

        # 2 MiB of events: more than the 64 KiB window plus the gateway's 1 MiB per-stream send buffer.
        events = services.EventServiceStub(gateway.channel)
        md = gateway.tokens.metadata("uid-slow", admin=True)
        for batch in range(4):
            published = events.PublishEvents(m.PublishEventsRequest(events=[
                m.NewEvent(type="Slow", aggregate_id="a", payload=bytes(64 * 1024)) for _ in range(8)]), metadata=md, timeout=30)
            assert len(published.results) == 8

        deadline = time.monotonic() + 30
        while "rpc.grpc.status_code=RESOURCE_EXHAUSTED" not in gateway.log():
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.1)

        # Now read everything: the events that fitted, then the trailers.
        conn.increment_flow_control_window(1 << 30)
        conn.increment_flow_control_window(1 << 30, stream_id=1)
        sock.sendall(conn.data_to_send())
        trailers, sock_deadline = None, time.monotonic() + 30
        sock.settimeout(1)
        while trailers is None and time.monotonic() < sock_deadline:
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            sock.sendall(conn.data_to_send())
        sock.close()
        assert trailers is not None
        assert trailers["grpc-status"] == "8"
        assert "left an event unread for 1 s; subscribe again with from_sequence" in trailers["grpc-message"]
