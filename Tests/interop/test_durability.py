"""Nothing lost: kill -9 the gateway in the middle of acknowledged writes, restart it on the same data
directory, and check that every acknowledged write is there, no partial blob is visible, no temporary upload
file survives the restart, and SQLite's integrity check passes."""

import concurrent.futures
import os
import sqlite3
import threading
import time

import grpc
import pytest

from gateway_fixtures import all_pages, run_gateway


@pytest.fixture(scope="module")
def stubs(pb2):
    from gateway.event.v1 import event_service_pb2 as em, event_service_pb2_grpc as es
    from gateway.file.v1 import file_service_pb2 as fm, file_service_pb2_grpc as fs
    from gateway.user.v1 import user_service_pb2 as um, user_service_pb2_grpc as us
    return {"events": (em, es.EventServiceStub), "files": (fm, fs.FileServiceStub), "users": (um, us.UserServiceStub)}


def wait_until(condition, timeout=60):
    """Polls `condition`; a test that would wait forever fails instead."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def kill_hard(gateway):
    gateway.proc.kill()
    gateway.proc.wait(timeout=10)


def integrity_ok(data_dir):
    with sqlite3.connect(data_dir / "gateway.sqlite") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_acknowledged_events_survive_kill_9(binaries, tmp_path, stubs):
    m, Stub = stubs["events"]
    acknowledged = []
    with run_gateway(binaries, tmp_path) as gateway:
        md = gateway.tokens.metadata("uid-durable")
        events = Stub(gateway.channel)

        def publish():
            for i in range(1000):
                try:
                    r = events.PublishEvent(m.PublishEventRequest(event=m.NewEvent(type="Durable", aggregate_id=f"a{i}",
                                                                                   payload=str(i).encode())),
                                            metadata=md, timeout=10)
                except grpc.RpcError:
                    return  # the server died under us: this one was not acknowledged
                acknowledged.append((r.id, r.sequence))

        publisher = threading.Thread(target=publish)
        publisher.start()
        wait_until(lambda: len(acknowledged) >= 400 or not publisher.is_alive())
        kill_hard(gateway)
        publisher.join()
    assert 400 <= len(acknowledged) < 1000, "the kill did not land in the middle"
    with run_gateway(binaries, tmp_path) as gateway:
        admin = gateway.tokens.metadata("uid-root", admin=True)
        stored = {e.id: e.sequence for page in all_pages(lambda token: Stub(gateway.channel).ListEvents(
            m.ListEventsRequest(page_size=1000, page_token=token), metadata=admin, timeout=10)) for e in page.events}
    assert all(stored.get(event_id) == sequence for event_id, sequence in acknowledged)
    assert sorted(stored.values()) == list(range(1, len(stored) + 1)), "sequence numbers have gaps"
    assert integrity_ok(tmp_path)


def test_an_upload_cut_by_kill_9_leaves_no_partial_blob(binaries, tmp_path, stubs):
    m, Stub = stubs["files"]
    first_chunks_sent = threading.Event()
    with run_gateway(binaries, tmp_path) as gateway:
        md = gateway.tokens.metadata("uid-upload")
        done = Stub(gateway.channel).UploadFile(iter([m.UploadFileRequest(header=m.UploadHeader(filename="done.bin")),
                                                      m.UploadFileRequest(chunk=b"complete")]), metadata=md, timeout=30)

        def requests():
            yield m.UploadFileRequest(header=m.UploadHeader(filename="cut.bin"))
            for i in range(10_000):
                yield m.UploadFileRequest(chunk=os.urandom(64 * 1024))
                if i == 50:
                    first_chunks_sent.set()
                    time.sleep(0.5)

        outcome = []
        uploader = threading.Thread(target=lambda: outcome.append(
            pytest.raises(grpc.RpcError, Stub(gateway.channel).UploadFile, requests(), metadata=md, timeout=60)))
        uploader.start()
        first_chunks_sent.wait(timeout=30)
        time.sleep(0.2)
        temporary = list((tmp_path / "blobs" / "tmp").iterdir())
        assert temporary, "the upload should be in progress in tmp/"
        kill_hard(gateway)
        uploader.join()
    blobs_before = sorted(p.relative_to(tmp_path / "blobs") for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    assert [str(p) for p in blobs_before if not str(p).startswith("tmp/")] == [done.key]
    with run_gateway(binaries, tmp_path) as gateway:
        assert list((tmp_path / "blobs" / "tmp").iterdir()) == [], "an orphan temporary file survived the restart"
        files = Stub(gateway.channel).ListFiles(m.ListFilesRequest(), metadata=gateway.tokens.metadata("uid-upload"), timeout=10).files
        assert [f.filename for f in files] == ["done.bin"]
    assert integrity_ok(tmp_path)


def test_a_blob_left_without_a_record_is_swept_at_start(binaries, tmp_path, stubs):
    """Bytes published under their key whose record was never written (a crash or an I/O failure between the
    two) are deleted when the gateway starts; blobs that records reference stay."""
    import hashlib
    m, Stub = stubs["files"]
    with run_gateway(binaries, tmp_path) as gateway:
        md = gateway.tokens.metadata("uid-sweep")
        kept = Stub(gateway.channel).UploadFile(iter([m.UploadFileRequest(header=m.UploadHeader(filename="kept.bin")),
                                                      m.UploadFileRequest(chunk=b"kept bytes")]), metadata=md, timeout=30)
    orphan_bytes = b"nobody recorded these"
    digest = hashlib.sha256(orphan_bytes).hexdigest()
    orphan = tmp_path / "blobs" / digest[:2] / f"{digest}.bin"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(orphan_bytes)
    with run_gateway(binaries, tmp_path) as gateway:
        wait_until(lambda: not orphan.exists(), timeout=30)
        assert (tmp_path / "blobs" / kept.key).exists()
        chunks = Stub(gateway.channel).DownloadFile(m.DownloadFileRequest(id=kept.id), metadata=gateway.tokens.metadata("uid-sweep"), timeout=10)
        assert b"".join(c.chunk for c in chunks if c.WhichOneof("data") == "chunk") == b"kept bytes"
        wait_until(lambda: "deleted blobs no file referenced" in gateway.log(), timeout=10)


def test_acknowledged_user_updates_survive_kill_9(binaries, tmp_path, stubs):
    from google.protobuf import field_mask_pb2
    m, Stub = stubs["users"]
    acknowledged = {}  # user id -> highest acknowledged version
    lock = threading.Lock()
    with run_gateway(binaries, tmp_path) as gateway:
        admin = gateway.tokens.metadata("uid-root", admin=True)
        users = Stub(gateway.channel)
        made = [users.CreateUser(m.CreateUserRequest(email=f"burst{i}@example.com", display_name="v1", firebase_uid=f"uid-burst-{i}"),
                                 metadata=admin, timeout=10) for i in range(10)]
        stop = threading.Event()

        def update(user):
            while not stop.is_set():
                try:
                    r = users.UpdateUser(m.UpdateUserRequest(user=m.User(id=user.id, display_name=f"at {time.monotonic_ns()}"),
                                                             update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
                                         metadata=admin, timeout=10)
                except grpc.RpcError:
                    return
                with lock:
                    acknowledged[user.id] = max(acknowledged.get(user.id, 0), r.version)

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            futures = [pool.submit(update, u) for u in made]
            wait_until(lambda: sum(acknowledged.values()) >= 300 or all(f.done() for f in futures))
            kill_hard(gateway)
            stop.set()
            for f in futures:
                f.result()
    with run_gateway(binaries, tmp_path) as gateway:
        admin = gateway.tokens.metadata("uid-root", admin=True)
        for user_id, version in acknowledged.items():
            stored = Stub(gateway.channel).GetUser(m.GetUserRequest(id=user_id), metadata=admin, timeout=10)
            assert stored.version >= version
        # Every stored version has its UserUpdated event (same transaction).
        from gateway.event.v1 import event_service_pb2 as em, event_service_pb2_grpc as es
        log = es.EventServiceStub(gateway.channel).ListEvents(em.ListEventsRequest(page_size=1000, filter=em.EventFilter(types=["UserUpdated"])),
                                                              metadata=admin, timeout=10).events
        per_user = {}
        for e in log:
            per_user[e.aggregate_id] = per_user.get(e.aggregate_id, 0) + 1
        for user_id in acknowledged:
            stored = Stub(gateway.channel).GetUser(m.GetUserRequest(id=user_id), metadata=admin, timeout=10)
            assert per_user.get(user_id, 0) == stored.version - 1
    assert integrity_ok(tmp_path)
