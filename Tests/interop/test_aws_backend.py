"""The AWS backend from outside, on moto (Tests/aws/moto_peer.py): what an independent AWS client (boto3) finds
in the table, the bucket and an SQS queue subscribed to the topic; two gateways sharing one backend; moto's
strict signature checking; injected faults; moto paused (SIGSTOP) and resumed.

moto runs behind a front that lets one request at a time into moto (moto 5.2.1 answers HTTP 500 to concurrent
TransactWriteItems), counts requests per operation and injects faults; see moto_peer.py."""

import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid

import grpc
import pytest

from gateway_fixtures import AWS_ENV, AWSPlace, all_pages, run_gateway, run_gateway_on, run_moto
from test_durability import wait_until
from test_gateway_files import download, upload

pytestmark = pytest.mark.skipif("aws" not in os.environ.get("GATEWAY_TEST_BACKENDS", "embedded,aws").split(","),
                                reason="the AWS backend is not under test")


@pytest.fixture(scope="module")
def apis(pb2):
    from gateway.user.v1 import user_service_pb2 as um, user_service_pb2_grpc as us
    from gateway.file.v1 import file_service_pb2 as fm, file_service_pb2_grpc as fs
    from gateway.event.v1 import event_service_pb2 as em, event_service_pb2_grpc as es
    return {"users": (um, us), "files": (fm, fs), "events": (em, es)}


@contextlib.contextmanager
def aws_gateway(binaries, data_dir, place, *extra, env=None, migrate=True):
    """A gateway on `place` (a table and bucket on some moto). Gateways given the same data directory trust the
    same local-mode key, so one token works on all of them."""
    data_dir.mkdir(exist_ok=True)
    env = {**os.environ, **AWS_ENV, **(env or {})}
    if migrate:
        out = subprocess.run([str(binaries / "gateway"), "migrate", "--data-dir", str(data_dir), *place.flags()],
                                           env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    with run_gateway(binaries, data_dir, *place.flags(), *extra, env=env) as gateway:
        gateway.aws = place
        yield gateway


def users(gw, apis):
    return apis["users"][1].UserServiceStub(gw.channel)


def events(gw, apis):
    return apis["events"][1].EventServiceStub(gw.channel)


def files(gw, apis):
    return apis["files"][1].FileServiceStub(gw.channel)


def new_event(apis, i, **fields):
    fields.setdefault("type", "OrderPlaced")
    fields.setdefault("aggregate_id", f"order-{i % 5}")
    fields.setdefault("payload", f"payload {i}".encode())
    return apis["events"][0].NewEvent(content_type="text/plain", **fields)


# --- SNS, seen from an SQS queue ------------------------------------------------------------------------------

def subscribed_queue(moto, **credentials):
    """A new SNS topic and an SQS queue subscribed to it (raw delivery off: each message is SNS's JSON envelope):
    (topic ARN, SQS client, queue URL)."""
    sns, sqs = moto.client("sns", **credentials), moto.client("sqs", **credentials)
    topic = sns.create_topic(Name=f"events-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, sqs, queue


def drain(sqs, queue, received):
    """Receives until the queue is empty: each message's event and message attributes go into `received` by
    event id (an event that comes twice fails the test), and the message is deleted. moto delivers to the queue
    inside SNS's Publish call, so once the relay's cursor covers an event, its message is there. Returns how
    many messages came."""
    count = 0
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        for message in messages:
            envelope = json.loads(message["Body"])
            event = json.loads(envelope["Message"])
            assert event["id"] not in received, f"event {event['id']} delivered twice"
            received[event["id"]] = (event, envelope["MessageAttributes"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        count += len(messages)
    return count


def assert_delivered_as_published(received, expected):
    """`received` (event id → (event, attributes)) holds exactly the events of `expected` (event id →
    (sequence, NewEvent)), each with its fields and the `event_type`, `aggregate_id` and `event_id` attributes."""
    assert set(received) == set(expected), (sorted(set(expected) - set(received)), sorted(set(received) - set(expected)))
    for event_id, (event, attributes) in received.items():
        sequence, original = expected[event_id]
        assert (event["sequence"], event["type"], event["aggregate_id"]) == (sequence, original.type, original.aggregate_id)
        assert base64.b64decode(event["payload"]) == original.payload and event["occurred_at"].endswith("Z")
        assert attributes["event_type"]["Value"] == original.type and attributes["aggregate_id"]["Value"] == original.aggregate_id
        assert attributes["event_id"]["Value"] == event_id


def published_through(gw, topic, dynamodb=None):
    """How far the gateway's outbox cursor for `topic` stands: the SQLite row of the embedded backend, the
    DynamoDB item of the AWS backend (read with `dynamodb`, a boto3 client, if given)."""
    if gw.aws is None:
        import sqlite3
        with contextlib.closing(sqlite3.connect(gw.data_dir / "gateway.sqlite")) as db:
            row = db.execute("SELECT published_through FROM outbox_cursors WHERE destination = ?", (topic,)).fetchone()
        return row[0] if row else 0
    dynamodb = dynamodb or gw.aws.moto.client("dynamodb")
    item = dynamodb.get_item(TableName=gw.aws.table, Key={"pk": {"S": f"OUTBOX#{topic}"}, "sk": {"S": "CURSOR"}},
                             ConsistentRead=True).get("Item")
    return int(item["published_through"]["N"]) if item else 0


def wait_for_cursor(gw, topic, sequence, dynamodb=None):
    """Waits until the relay recorded everything through `sequence` as published (a restarted gateway first
    waits for its killed predecessor's 30 s lease to expire). Looks every 100 ms: moto serves one request at a
    time, and the gateway's own must get through."""
    wait_until(lambda: time.sleep(0.1) or published_through(gw, topic, dynamodb) >= sequence, timeout=180)


# --- what boto3 sees ------------------------------------------------------------------------------------------

def test_boto3_sees_the_user_item_its_email_claim_and_the_blobs(binaries, apis, moto, tmp_path):
    place = AWSPlace(moto)
    with aws_gateway(binaries, tmp_path / "data", place) as gw:
        um = apis["users"][0]
        md = gw.tokens.metadata("uid-boto")
        user = users(gw, apis).CreateUser(um.CreateUserRequest(email="Boto.User@Example.com", display_name="Boto"), metadata=md, timeout=10)
        ddb = moto.client("dynamodb")

        def item(pk, sk):
            return ddb.get_item(TableName=place.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")

        stored = item(f"USER#{user.id}", f"USER#{user.id}")
        assert (stored["email"]["S"], stored["firebase_uid"]["S"], stored["version"]["N"]) == ("Boto.User@Example.com", "uid-boto", "1")
        assert item("EMAIL#boto.user@example.com", "EMAIL")["user_id"]["S"] == user.id
        assert item("UID#uid-boto", "UID")["user_id"]["S"] == user.id

        fm = apis["files"][0]
        s3 = moto.client("s3")
        small = b"%PDF-1.7 " + os.urandom(5_000)
        info = upload(gw, (fm, apis["files"][1]), md, small, filename="doc.pdf")
        head = s3.head_object(Bucket=place.bucket, Key=info.key)
        assert info.key == f"{info.sha256[:2]}/{info.sha256}.pdf"
        assert (head["ContentLength"], head["ContentType"], head["ServerSideEncryption"]) == (len(small), "application/pdf", "AES256")
        # S3 lowercases user-metadata names; moto capitalises them (Sha256): compare without case.
        assert {name.lower(): value for name, value in head["Metadata"].items()} == {"sha256": info.sha256}

        # Over 16 MiB: a multipart upload (8 MiB parts), streamed from the spool file.
        moto.reset_stats()
        big = os.urandom(17 << 20)
        info = upload(gw, (fm, apis["files"][1]), md, big, filename="big.bin")
        requests = moto.stats()["requests"]
        assert (requests.get("s3.POST?uploads"), requests.get("s3.PUT?partNumber"), requests.get("s3.POST?uploadId")) == (1, 3, 1)
        head = s3.head_object(Bucket=place.bucket, Key=info.key)
        assert head["ContentLength"] == len(big) and head["ETag"].strip('"').endswith("-3") and head["ServerSideEncryption"] == "AES256"
        body = s3.get_object(Bucket=place.bucket, Key=info.key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == info.sha256 == hashlib.sha256(big).hexdigest()
        assert download(gw, (fm, apis["files"][1]), md, info.id)[2] == info.sha256


def test_each_event_reaches_an_sqs_queue_subscribed_to_the_topic_exactly_once(binaries, apis, moto, tmp_path):
    topic, sqs, queue = subscribed_queue(moto)
    place = AWSPlace(moto)
    with aws_gateway(binaries, tmp_path / "data", place, "--sns-topic-arn", topic) as gw:
        em, md = apis["events"][0], gw.tokens.metadata("uid-sns")
        stub = events(gw, apis)
        batch = [new_event(apis, i) for i in range(23)]
        results = stub.PublishEvents(em.PublishEventsRequest(events=batch), metadata=md, timeout=10).results
        expected = {r.id: (r.sequence, event) for r, event in zip(results, batch)}
        for i in range(7):
            event = new_event(apis, 100 + i)
            r = stub.PublishEvent(em.PublishEventRequest(event=event), metadata=md, timeout=10)
            expected[r.id] = (r.sequence, event)
        last = max(sequence for sequence, _ in expected.values())
        wait_for_cursor(gw, topic, last)
        assert published_through(gw, topic) == last
        received = {}
        drain(sqs, queue, received)
        assert_delivered_as_published(received, expected)


@pytest.mark.parametrize("backend", ["embedded", "aws"])
def test_events_stored_while_sns_fails_go_out_once_after_the_gateway_is_killed_and_restarted(
        binaries, apis, tmp_path, request, monkeypatch, backend):
    """`--sns-topic-arn` with either backend (the embedded default relays from its SQLite log). SNS's
    PublishBatch fails (every call answered 503 by moto_peer, so none reaches moto) while events are published;
    the gateway is killed (SIGKILL) with them unpublished, SNS recovers, and a gateway restarted on the same
    data directory (and table) sends each of them once: the SQS queue subscribed to the topic gets every event
    exactly once, by event id, with its attributes."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)  # SNS credentials, for the embedded backend too
    em = apis["events"][0]
    data = tmp_path / "data"
    with run_moto() as moto:
        topic, sqs, queue = subscribed_queue(moto)
        place = AWSPlace(moto) if backend == "aws" else None
        relay = ["--sns-topic-arn", topic, "--sns-endpoint-url", moto.endpoint]
        expected, received = {}, {}

        def publish(gw, first, count):
            md, stub = gw.tokens.metadata("uid-relay"), events(gw, apis)
            batch = [new_event(apis, first + i) for i in range(count - 2)]
            results = stub.PublishEvents(em.PublishEventsRequest(events=batch), metadata=md, timeout=30).results
            expected.update({r.id: (r.sequence, event) for r, event in zip(results, batch)})
            for i in range(count - 2, count):
                event = new_event(apis, first + i)
                r = stub.PublishEvent(em.PublishEventRequest(event=event), metadata=md, timeout=30)
                expected[r.id] = (r.sequence, event)
            return max(sequence for sequence, _ in expected.values())

        with run_gateway_on(backend, binaries, data, request, *relay, place=place) as gw:
            delivered = publish(gw, 0, 5)
            wait_for_cursor(gw, topic, delivered)
            drain(sqs, queue, received)
            assert set(received) == set(expected), "SNS works: the first events went out"

            moto.faults(every=1, status=503, code="ServiceUnavailable", operations=["sns.PublishBatch"])
            moto.reset_stats()
            last = publish(gw, 100, 12)
            # The relay tried (and failed) to publish them before the kill.
            wait_until(lambda: time.sleep(0.1) or moto.stats()["requests"].get("sns.PublishBatch", 0) >= 2, timeout=120)
            gw.proc.kill()
            gw.proc.wait(timeout=10)
            assert published_through(gw, topic) == delivered, "the cursor passed events SNS never acknowledged"
        assert drain(sqs, queue, received) == 0, "an event reached SNS through the fault"

        moto.faults(every=0)
        with run_gateway_on(backend, binaries, data, request, *relay, place=place) as gw:
            last = publish(gw, 200, 3)  # and events published after the restart follow them
            wait_for_cursor(gw, topic, last)
            assert published_through(gw, topic) == last
            drain(sqs, queue, received)
        assert_delivered_as_published(received, expected)
        assert len(received) == 20


# --- two gateways, one backend --------------------------------------------------------------------------------

def test_two_gateways_share_uniqueness_locks_page_tokens_and_subscriptions(binaries, apis, moto, tmp_path):
    place = AWSPlace(moto)
    data = tmp_path / "data"
    with aws_gateway(binaries, data, place) as a, aws_gateway(binaries, data, place, migrate=False) as b:
        um = apis["users"][0]
        # A duplicate email across them.
        alice = a.tokens.metadata("uid-alice")
        created = users(a, apis).CreateUser(um.CreateUserRequest(email="alice@example.com", display_name="Alice"), metadata=alice, timeout=10)
        with pytest.raises(grpc.RpcError) as e:
            users(b, apis).CreateUser(um.CreateUserRequest(email="ALICE@example.com", display_name="Other"),
                                      metadata=b.tokens.metadata("uid-other"), timeout=10)
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS

        # A stale expected_version across them.
        def rename(gw, name):
            return users(gw, apis).UpdateUser(um.UpdateUserRequest(user=um.User(id=created.id, display_name=name),
                                                                    update_mask={"paths": ["display_name"]}, expected_version=1),
                                              metadata=alice, timeout=10)
        assert rename(b, "Alice B").version == 2
        with pytest.raises(grpc.RpcError) as e:
            rename(a, "Alice A")
        assert e.value.code() == grpc.StatusCode.ABORTED and "expected version 1, stored version is 2" in e.value.details()

        # A page token from A works on B.
        admin = a.tokens.metadata("uid-admin", admin=True)
        for i in range(5):
            users(a, apis).CreateUser(um.CreateUserRequest(email=f"u{i}@example.com", display_name=f"U{i}", firebase_uid=f"uid-u{i}"),
                                      metadata=admin, timeout=10)
        everyone = [u.id for page in all_pages(lambda t: users(a, apis).ListUsers(um.ListUsersRequest(page_size=100, page_token=t),
                                                                                 metadata=admin, timeout=10)) for u in page.users]
        first = users(a, apis).ListUsers(um.ListUsersRequest(page_size=2), metadata=admin, timeout=10)
        rest = [u.id for page in all_pages(lambda t: users(b, apis).ListUsers(um.ListUsersRequest(page_size=2, page_token=t or first.next_page_token),
                                                                             metadata=admin, timeout=10)) for u in page.users]
        assert [u.id for u in first.users] + rest == everyone and len(everyone) == 6

        # A subscriber on B gets A's events exactly once, in order.
        em, md = apis["events"][0], a.tokens.metadata("uid-pub")
        start = events(a, apis).PublishEvent(em.PublishEventRequest(event=new_event(apis, 0, type="Cross")), metadata=md, timeout=10).sequence
        call = events(b, apis).Subscribe(em.SubscribeRequest(from_sequence=start, filter=em.EventFilter(types=["Cross"])), metadata=md, timeout=60)
        published = [start]
        for chunk in range(6):
            batch = [new_event(apis, chunk * 50 + i, type="Cross") for i in range(50)]
            published += [r.sequence for r in events(a, apis).PublishEvents(em.PublishEventsRequest(events=batch), metadata=md, timeout=10).results]
        received = []
        for item in call:
            if item.WhichOneof("item") == "event":
                received.append(item.event.sequence)
                if len(received) == len(published):
                    break
        call.cancel()
        assert received == published


def test_two_gateways_appending_at_once_keep_one_gap_free_log_and_each_idempotency_key_once(binaries, apis, moto, tmp_path):
    """4 threads x 25 PublishEvent calls on each of two gateways, while 20 idempotency keys are each published
    on both gateways at the same moment (a barrier per key). Idempotency keys are per publisher, so the keyed
    events all come from one uid. Documented behaviour (event_service.proto, NewEvent.idempotency_key):
    publishing again with the same key returns the first event, with `duplicate` set."""
    import threading

    place = AWSPlace(moto)
    data = tmp_path / "data"
    with aws_gateway(binaries, data, place) as a, aws_gateway(binaries, data, place, migrate=False) as b:
        em = apis["events"][0]
        gateways = {"A": a, "B": b}
        keys = [f"race-key-{k}" for k in range(20)]
        barriers = {key: threading.Barrier(2) for key in keys}

        def plain(name, thread):
            gw = gateways[name]
            md, stub = gw.tokens.metadata(f"uid-{name}-{thread}"), events(gw, apis)
            acknowledged = []
            for i in range(25):
                event = new_event(apis, i, type="Race", payload=f"{name}/{thread}/{i}".encode())
                r = stub.PublishEvent(em.PublishEventRequest(event=event), metadata=md, timeout=60)
                acknowledged.append((r.id, r.sequence, event.payload))
            return acknowledged

        def keyed(name):
            gw = gateways[name]
            md, stub = gw.tokens.metadata("uid-keyed"), events(gw, apis)
            answers = {}
            try:
                for key in keys:
                    event = new_event(apis, 0, type="Race", payload=f"{key} via {name}".encode(), idempotency_key=key)
                    barriers[key].wait()
                    answers[key] = stub.PublishEvent(em.PublishEventRequest(event=event), metadata=md, timeout=60)
            except BaseException:
                for barrier in barriers.values():
                    barrier.abort()  # so the other gateway's thread does not wait for this one forever
                raise
            return answers

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            plain_calls = [pool.submit(plain, name, thread) for name in gateways for thread in range(4)]
            keyed_calls = {name: pool.submit(keyed, name) for name in gateways}
            acknowledged = [ack for call in plain_calls for ack in call.result()]
            answers = {name: call.result() for name, call in keyed_calls.items()}

        total = len(acknowledged) + len(keys)
        admin = a.tokens.metadata("uid-root", admin=True)
        listed = [e for page in all_pages(lambda t: events(b, apis).ListEvents(em.ListEventsRequest(page_size=50, page_token=t),
                                                                              metadata=admin, timeout=10)) for e in page.events]
        assert [e.sequence for e in listed] == list(range(1, total + 1)), "sequences 1..N, no gap, no duplicate"
        by_id = {e.id: e for e in listed}
        assert len(by_id) == total, "no event stored twice"
        for event_id, sequence, payload in acknowledged:
            assert (by_id[event_id].sequence, by_id[event_id].payload) == (sequence, payload), "an acknowledged event is missing or moved"

        for key in keys:
            first, second = answers["A"][key], answers["B"][key]
            assert (first.id, first.sequence) == (second.id, second.sequence), f"{key}: the gateways answered different events"
            assert sorted([first.duplicate, second.duplicate]) == [False, True], f"{key}: exactly one answer stored it"
            stored = [e for e in listed if e.idempotency_key == key]
            assert len(stored) == 1 and (stored[0].id, stored[0].sequence) == (first.id, first.sequence), f"{key}: stored {len(stored)} times"
            winner = "A" if not first.duplicate else "B"
            assert stored[0].payload == f"{key} via {winner}".encode() and stored[0].publisher == "uid-keyed"

        # A subscriber reading from the start sees the same log, in order.
        call = events(a, apis).Subscribe(em.SubscribeRequest(from_sequence=1), metadata=admin, timeout=60)
        received = []
        for item in call:
            if item.WhichOneof("item") == "event":
                received.append((item.event.id, item.event.sequence))
                if len(received) == total:
                    break
        call.cancel()
        assert received == [(e.id, e.sequence) for e in listed]


def test_an_upload_on_one_gateway_racing_a_delete_of_the_same_bytes_on_another_never_loses_them(binaries, apis, moto, tmp_path):
    place = AWSPlace(moto)
    data = tmp_path / "data"
    api = apis["files"]
    with aws_gateway(binaries, data, place) as a, aws_gateway(binaries, data, place, migrate=False) as b:
        md_a, md_b = a.tokens.metadata("uid-racer-a"), b.tokens.metadata("uid-racer-b")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for round in range(12):
                bytes_ = os.urandom(20_000 + round)
                doomed = upload(b, api, md_b, bytes_, filename="doomed.bin")
                uploading = pool.submit(upload, a, api, md_a, bytes_, filename="kept.bin")
                deleting = pool.submit(files(b, apis).DeleteFile, api[0].DeleteFileRequest(id=doomed.id), metadata=md_b, timeout=30)
                kept = uploading.result()
                deleting.result()
                assert a.blob_size(kept.key) == len(bytes_), f"round {round}: the blob of a live record is gone"
                assert download(b, api, md_a, kept.id)[2] == hashlib.sha256(bytes_).hexdigest()
                files(a, apis).DeleteFile(api[0].DeleteFileRequest(id=kept.id), metadata=md_a, timeout=10)
                assert a.blob_size(kept.key) is None, "the last record's delete removes the blob"


# --- start-up checks -------------------------------------------------------------------------------------------

#: A line of the gateway's text log (`<time> <level> <label>: …`), as opposed to the error it exits with.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (trace|debug|info|notice|warning|error|critical) ")


@pytest.mark.parametrize("missing", ["table", "bucket", "topic", "credentials"])
def test_serve_refuses_to_start_without_its_aws_resources_naming_the_missing_piece_and_the_fix(binaries, moto, tmp_path, missing):
    """`gateway serve --backend aws` checks at start that the credentials resolve and the table, the bucket and
    (with --sns-topic-arn) the topic exist; otherwise it exits non-zero with one line saying what is missing and
    what fixes it: no stack trace, no secret. `gateway migrate` creates the table and the bucket, not topics."""
    place = AWSPlace(moto)
    data = tmp_path / "data"
    home = tmp_path / "home"
    home.mkdir()
    secret = f"secret-{uuid.uuid4().hex}"
    # No AWS settings from the environment of the test run, and no ~/.aws of the machine's user.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(HOME=str(home), AWS_REGION="us-east-1")
    if missing != "credentials":
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY=secret)
    if missing != "table":
        place.migrate(binaries, data)
    extra = []
    if missing == "bucket":
        moto.client("s3").delete_bucket(Bucket=place.bucket)
    topic = f"arn:aws:sns:us-east-1:123456789012:missing-{uuid.uuid4().hex[:8]}"
    if missing == "topic":
        extra = ["--sns-topic-arn", topic]
    expected = {
        "table": ["DynamoDB table", place.table, "does not exist", "gateway migrate", "--dynamodb-table"],
        "bucket": ["S3 bucket", place.bucket, "does not exist", "gateway migrate", "--s3-bucket"],
        "topic": ["SNS topic", topic, "does not exist", "--sns-topic-arn"],
        "credentials": ["no AWS credentials found", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"],
    }[missing]

    out = subprocess.run([str(binaries / "gateway"), "serve", "--port", "0", "--data-dir", str(data), *place.flags(), *extra],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode > 0, (out.returncode, out.stderr)
    assert "listening on" not in out.stdout
    problem = [line for line in out.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert len(problem) == 1 and problem[0].startswith("Error: "), out.stderr
    assert all(fragment in problem[0] for fragment in expected), problem[0]
    for trace in ("Fatal error", "stack trace", "Stack dump", "Traceback", "0x0000"):
        assert trace not in out.stderr, out.stderr
    assert secret not in out.stdout + out.stderr


# --- signatures -----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def strict_moto():
    """A moto of its own in strict signature mode, and the access key of an IAM user allowed everything:
    (moto, key, its environment variables, boto3 credentials). moto lets three requests through unsigned: they
    create the user, its policy and its key; it checks every later request's signature."""
    with run_moto(INITIAL_NO_AUTH_ACTION_COUNT="3") as strict:
        iam = strict.client("iam")
        iam.create_user(UserName="gateway")
        iam.put_user_policy(UserName="gateway", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="gateway")["AccessKey"]
        env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        yield strict, key, env, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def test_every_request_passes_motos_signature_check_and_a_refused_key_fails_once(binaries, apis, tmp_path):
    with strict_moto() as (strict, key, good, _):
        place = AWSPlace(strict)
        with aws_gateway(binaries, tmp_path / "data", place, env=good) as gw:
            um, fm, em = apis["users"][0], apis["files"][0], apis["events"][0]
            md = gw.tokens.metadata("uid-signed")
            user = users(gw, apis).CreateUser(um.CreateUserRequest(email="signed@example.com", display_name="S"), metadata=md, timeout=10)
            users(gw, apis).UpdateUser(um.UpdateUserRequest(user=um.User(id=user.id, display_name="T"), update_mask={"paths": ["display_name"]}),
                                       metadata=md, timeout=10)
            users(gw, apis).CreateSession(um.CreateSessionRequest(device="laptop"), metadata=md, timeout=10)
            admin = gw.tokens.metadata("uid-root", admin=True)
            assert users(gw, apis).CountUsers(um.CountUsersRequest(), metadata=admin, timeout=10).count == 1
            events(gw, apis).PublishEvents(em.PublishEventsRequest(events=[new_event(apis, i, idempotency_key=f"k{i}") for i in range(3)]),
                                           metadata=md, timeout=10)
            assert len(events(gw, apis).ListEvents(em.ListEventsRequest(), metadata=md, timeout=10).events) == 5
            for size in (1_000, 17 << 20):
                data = os.urandom(size)
                info = upload(gw, apis["files"], md, data)
                assert download(gw, apis["files"], md, info.id)[2] == hashlib.sha256(data).hexdigest()
                files(gw, apis).DeleteFile(fm.DeleteFileRequest(id=info.id), metadata=md, timeout=10)
            assert "X-Amz-Signature=" in files(gw, apis).GetDownloadUrl(
                fm.GetDownloadUrlRequest(id=upload(gw, apis["files"], md, b"x").id), metadata=md, timeout=10).url

            # The key is withdrawn while the gateway runs: one clear error on the RPC, one request to AWS.
            strict.client("iam", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]).delete_access_key(
                UserName="gateway", AccessKeyId=key["AccessKeyId"])
            strict.reset_stats()
            with pytest.raises(grpc.RpcError) as e:
                users(gw, apis).GetUser(um.GetUserRequest(id=user.id), metadata=md, timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "refused the gateway's AWS credentials" in e.value.details() and key["SecretAccessKey"] not in e.value.details()
            assert sum(strict.stats()["requests"].values()) == 1, strict.stats()

        # A wrong secret stops the gateway at start with one message and one request, not a retry storm.
        strict.reset_stats()
        wrong = {**os.environ, **AWS_ENV, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": "wrong"}
        out = subprocess.run([str(binaries / "gateway"), "--port", "0", "--data-dir", str(tmp_path / "data"), *place.flags()],
                                           env=wrong, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "refused the gateway's credentials" in out.stderr and "wrong" not in out.stderr.split("configuration")[-1]
        assert sum(strict.stats()["requests"].values()) == 1


def test_sns_publishing_passes_motos_signature_check(binaries, apis, tmp_path):
    """A gateway with `--sns-topic-arn` against moto in strict signature mode: the topic check at start
    (GetTopicAttributes) and every PublishBatch are accepted (a request moto refuses would leave the cursor
    behind), and the subscribed queue gets each event once. A client with a wrong secret is refused by the
    same moto's SNS, so the check is real."""
    import botocore.exceptions

    with strict_moto() as (strict, key, good, credentials):
        topic, sqs, queue = subscribed_queue(strict, **credentials)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            strict.client("sns", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key="wrong").get_topic_attributes(TopicArn=topic)
        assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        place = AWSPlace(strict)
        with aws_gateway(binaries, tmp_path / "data", place, "--sns-topic-arn", topic, env=good) as gw:
            em, md = apis["events"][0], gw.tokens.metadata("uid-signed-sns")
            batch = [new_event(apis, i, payload=f"signed {i} & ü+=/".encode()) for i in range(13)]
            results = events(gw, apis).PublishEvents(em.PublishEventsRequest(events=batch), metadata=md, timeout=10).results
            expected = {r.id: (r.sequence, event) for r, event in zip(results, batch)}
            wait_for_cursor(gw, topic, max(r.sequence for r in results), dynamodb=strict.client("dynamodb", **credentials))
            received = {}
            drain(sqs, queue, received)
        assert_delivered_as_published(received, expected)
        requests = strict.stats()["requests"]
        assert requests.get("sns.GetTopicAttributes", 0) >= 1 and requests.get("sns.PublishBatch", 0) >= 2, requests


# --- faults ---------------------------------------------------------------------------------------------------

def test_rpcs_succeed_through_injected_faults_and_events_stay_exactly_once(binaries, apis, tmp_path):
    with run_moto() as faulty:
        place = AWSPlace(faulty)
        with aws_gateway(binaries, tmp_path / "data", place) as gw:
            um, em = apis["users"][0], apis["events"][0]
            md = gw.tokens.metadata("uid-faults")
            published = []
            for phase, (status, code) in enumerate([(500, "InternalError"), (503, "ServiceUnavailable"), (400, "ThrottlingException")]):
                faulty.faults(every=4, status=status, code=code, services=["dynamodb"])
                uid = f"uid-fault-{phase}"
                user = users(gw, apis).CreateUser(um.CreateUserRequest(email=f"f{phase}@example.com", display_name="F"),
                                                  metadata=gw.tokens.metadata(uid), timeout=30)
                users(gw, apis).UpdateUser(um.UpdateUserRequest(user=um.User(id=user.id, display_name="G"), update_mask={"paths": ["display_name"]},
                                                                expected_version=1), metadata=gw.tokens.metadata(uid), timeout=30)
                for i in range(8):
                    published.append(events(gw, apis).PublishEvent(em.PublishEventRequest(event=new_event(apis, i, idempotency_key=f"{phase}-{i}")),
                                                                   metadata=md, timeout=30).id)
                published += [r.id for r in events(gw, apis).PublishEvents(
                    em.PublishEventsRequest(events=[new_event(apis, 50 + i) for i in range(10)]), metadata=md, timeout=30).results]
            faulty.faults(every=3, status=503, code="SlowDown", services=["s3"])
            data = os.urandom(17 << 20)
            info = upload(gw, apis["files"], md, data)
            assert download(gw, apis["files"], md, info.id)[2] == hashlib.sha256(data).hexdigest()
            faulty.faults(every=0)
            orders = em.EventFilter(types=["OrderPlaced"])
            log = [e for page in all_pages(lambda t: events(gw, apis).ListEvents(em.ListEventsRequest(filter=orders, page_token=t), metadata=md, timeout=10))
                   for e in page.events]
            assert [e.id for e in log] == published, "each acknowledged event once, in order, nothing else"
            admin_view = [e.sequence for page in all_pages(lambda t: events(gw, apis).ListEvents(
                em.ListEventsRequest(page_token=t), metadata=gw.tokens.metadata("uid-root", admin=True), timeout=10)) for e in page.events]
            assert admin_view == list(range(1, len(admin_view) + 1)), "no gap, no duplicate"


@pytest.mark.parametrize("status, code, part_attempts", [(400, "InvalidArgument", 1), (503, "ServiceUnavailable", 3)])
def test_a_multipart_upload_whose_part_fails_for_good_is_aborted(binaries, apis, tmp_path, status, code, part_attempts):
    """A 17 MiB upload (multipart: parts of 8 MiB) whose second UploadPart fails: refused (400, not retried) or
    unavailable on every attempt (503, retried until the attempts run out). The RPC fails with UNAVAILABLE,
    AbortMultipartUpload is sent (S3 keeps the parts of an upload neither completed nor aborted, and bills
    them: Amazon S3 User Guide, "Uploading and copying objects using multipart upload"), so the bucket lists no
    upload in progress; no object, no file record and no spool file stay behind, and the same bytes upload
    afterwards."""
    fm = apis["files"][0]
    with run_moto() as faulty:
        place = AWSPlace(faulty)
        with aws_gateway(binaries, tmp_path / "data", place) as gw:
            md = gw.tokens.metadata("uid-multipart")
            data = os.urandom(17 << 20)
            digest = hashlib.sha256(data).hexdigest()
            faulty.faults(every=1, status=status, code=code, operations=["s3.PUT?partNumber"], query="partNumber=2")
            faulty.reset_stats()
            try:
                with pytest.raises(grpc.RpcError) as e:
                    upload(gw, apis["files"], md, data, filename="big.bin")
            finally:
                faulty.faults(every=0)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and f"UploadPart answered {code}" in e.value.details(), e.value.details()
            requests = faulty.stats()["requests"]
            assert requests.get("s3.POST?uploads") == 1 and requests.get("s3.PUT?partNumber") == 1 + part_attempts, requests
            assert requests.get("s3.DELETE?uploadId") == 1 and "s3.POST?uploadId" not in requests, requests
            assert faulty.client("s3").list_multipart_uploads(Bucket=place.bucket).get("Uploads", []) == []
            assert gw.blob_size(f"{digest[:2]}/{digest}.bin") is None
            assert list(files(gw, apis).ListFiles(fm.ListFilesRequest(), metadata=md, timeout=10).files) == []
            assert gw.temporary_uploads() == []

            info = upload(gw, apis["files"], md, data, filename="big.bin")
            assert info.sha256 == digest and download(gw, apis["files"], md, info.id)[2] == digest
            assert faulty.client("s3").list_multipart_uploads(Bucket=place.bucket).get("Uploads", []) == []


def test_a_multipart_upload_cancelled_by_the_client_is_aborted(binaries, apis, tmp_path):
    """The client cancels a 17 MiB upload while its second part is on its way to S3 (moto_peer holds that
    request): the gateway still sends AbortMultipartUpload, from the cancelled call, so no upload in progress is
    left in the bucket, and gives back its hold on the blob."""
    fm, fs = apis["files"]
    with run_moto() as held:
        place = AWSPlace(held)
        with aws_gateway(binaries, tmp_path / "data", place) as gw:
            md = gw.tokens.metadata("uid-cancel")
            data = os.urandom(17 << 20)
            digest = hashlib.sha256(data).hexdigest()

            def requests():
                yield fm.UploadFileRequest(header=fm.UploadHeader(filename="big.bin"))
                for i in range(0, len(data), 64 << 10):
                    yield fm.UploadFileRequest(chunk=data[i:i + (64 << 10)])

            held.faults(hold=True, operations=["s3.PUT?partNumber"], query="partNumber=2")
            try:
                call = fs.FileServiceStub(gw.channel).UploadFile.future(requests(), metadata=md, timeout=300)
                wait_until(lambda: time.sleep(0.05) or held.stats()["requests"].get("s3.PUT?partNumber", 0) == 2, timeout=120)
                call.cancel()
                # The gateway logs the call once its handler has returned.
                wait_until(lambda: time.sleep(0.05) or "FileService/UploadFile" in gw.log(), timeout=120)
                assert "rpc.grpc.status_code=CANCELLED" in gw.log()
                requests_seen = held.stats()["requests"]
            finally:
                held.faults(every=0)  # lets the held part go on, to an upload that no longer exists
            assert requests_seen.get("s3.DELETE?uploadId") == 1, requests_seen
            assert held.client("s3").list_multipart_uploads(Bucket=place.bucket).get("Uploads", []) == []
            assert gw.blob_size(f"{digest[:2]}/{digest}.bin") is None
            assert upload(gw, apis["files"], md, data, filename="big.bin").sha256 == digest


def test_a_paused_store_fails_fast_once_the_breaker_opens_and_recovers_without_losing_acknowledged_events(binaries, apis, tmp_path):
    with run_moto() as paused:
        place = AWSPlace(paused, timeout=1)
        with aws_gateway(binaries, tmp_path / "data", place) as gw:
            em, md = apis["events"][0], gw.tokens.metadata("uid-pause")
            stub = events(gw, apis)
            acknowledged = [stub.PublishEvent(em.PublishEventRequest(event=new_event(apis, i)), metadata=md, timeout=10) for i in range(10)]
            os.kill(paused.proc.pid, signal.SIGSTOP)
            try:
                outcomes = []
                for i in range(40):
                    try:
                        acknowledged.append(stub.PublishEvent(em.PublishEventRequest(event=new_event(apis, 100 + i)), metadata=md, timeout=20))
                        outcomes.append("ok")
                    except grpc.RpcError as e:
                        outcomes.append((e.code(), e.details()))
                        if e.code() == grpc.StatusCode.UNAVAILABLE and "fails fast" in e.details():
                            break
                assert outcomes[-1][0] == grpc.StatusCode.UNAVAILABLE and "fails fast" in outcomes[-1][1], outcomes
                assert all(o == "ok" or o[0] == grpc.StatusCode.UNAVAILABLE for o in outcomes), outcomes
            finally:
                os.kill(paused.proc.pid, signal.SIGCONT)
            deadline = time.monotonic() + 30
            while True:
                try:
                    acknowledged.append(stub.PublishEvent(em.PublishEventRequest(event=new_event(apis, 999)), metadata=md, timeout=5))
                    break
                except grpc.RpcError as e:
                    assert time.monotonic() < deadline, f"no recovery within 30 s: {e.code()} {e.details()}"
                    time.sleep(0.5)
            stored = {e.id: e.sequence for page in all_pages(lambda t: stub.ListEvents(em.ListEventsRequest(page_token=t), metadata=md, timeout=10))
                      for e in page.events}
            assert all(stored.get(e.id) == e.sequence for e in acknowledged), "an acknowledged event was lost"
