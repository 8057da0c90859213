"""FileService end to end: grpcio against the built `gateway` on its embedded default (SQLite records and
local content-addressed blobs in a temporary data directory), plus download links fetched with curl."""

import hashlib
import os
import pathlib
import subprocess
import threading
import time

import grpc
import pytest

from gateway_fixtures import BACKENDS, AWSPlace, all_pages, run_gateway, run_gateway_on

CHUNK = 64 * 1024


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(request, binaries, pb2, tmp_path_factory):
    with run_gateway_on(request.param, binaries, tmp_path_factory.mktemp("gateway-files"), request) as gw:
        yield gw


@pytest.fixture(scope="module")
def api(pb2):
    from gateway.file.v1 import file_service_pb2 as messages, file_service_pb2_grpc as services
    return messages, services


def files_stub(gateway, api):
    return api[1].FileServiceStub(gateway.channel)


def chunks_of(data: bytes, size=CHUNK):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def upload(gateway, api, md, data_or_chunks, filename="file.bin", content_type="", metadata=None, **header):
    m = api[0]

    def requests():
        yield m.UploadFileRequest(header=m.UploadHeader(filename=filename, content_type=content_type,
                                                        metadata=metadata or {}, **header))
        chunks = chunks_of(data_or_chunks) if isinstance(data_or_chunks, bytes) else data_or_chunks
        for chunk in chunks:
            yield m.UploadFileRequest(chunk=chunk)

    return files_stub(gateway, api).UploadFile(requests(), metadata=md, timeout=300)


def download(gateway, api, md, file_id, offset=0, length=0):
    responses = files_stub(gateway, api).DownloadFile(api[0].DownloadFileRequest(id=file_id, offset=offset, length=length),
                                                      metadata=md, timeout=300)
    first = next(responses)
    assert first.WhichOneof("data") == "info"
    digest, size = hashlib.sha256(), 0
    body = bytearray()
    for item in responses:
        assert item.WhichOneof("data") == "chunk" and len(item.chunk) <= CHUNK
        digest.update(item.chunk)
        size += len(item.chunk)
        if size <= (1 << 20):
            body += item.chunk
    return first.info, size, digest.hexdigest(), bytes(body)


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


@pytest.mark.parametrize("size", [0, 1, 5 << 20])
def test_upload_and_download_are_byte_identical(gateway, api, size):
    md = gateway.tokens.metadata("uid-files")
    data = os.urandom(size)
    info = upload(gateway, api, md, data, filename="blob.dat", metadata={"purpose": "test", "empty": ""})
    assert (info.size, info.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert info.key == f"{info.sha256[:2]}/{info.sha256}.bin"
    assert info.content_type == "application/octet-stream" and info.owner_id == "uid-files"
    assert dict(info.metadata) == {"purpose": "test", "empty": ""}
    got, got_size, got_hash, _ = download(gateway, api, md, info.id)
    assert (got_size, got_hash) == (size, info.sha256)
    assert got.id == info.id


def test_content_type_is_detected_from_magic_numbers(gateway, api):
    md = gateway.tokens.metadata("uid-magic")
    samples = {
        b"\xff\xd8\xff\xe0" + os.urandom(20): ("image/jpeg", "jpg"),
        b"\x89PNG\r\n\x1a\n" + os.urandom(20): ("image/png", "png"),
        b"GIF89a" + os.urandom(20): ("image/gif", "gif"),
        b"%PDF-1.7\n" + os.urandom(20): ("application/pdf", "pdf"),
        b"PK\x03\x04" + os.urandom(20): ("application/zip", "zip"),
        b"\x1f\x8b\x08" + os.urandom(20): ("application/gzip", "gz"),
        b"plain text": ("application/octet-stream", "bin"),
    }
    for data, (content_type, ext) in samples.items():
        info = upload(gateway, api, md, data, filename="x")
        assert (info.content_type, info.key.rsplit(".", 1)[1]) == (content_type, ext)
    given = upload(gateway, api, md, b"\x89PNG\r\n\x1a\n", content_type="image/x-custom")
    assert given.content_type == "image/x-custom"


def test_ranges(gateway, api):
    md = gateway.tokens.metadata("uid-range")
    data = os.urandom(300_000)
    info = upload(gateway, api, md, data)
    for offset, length, expected in [(0, 10, data[:10]), (1000, 70_000, data[1000:71_000]),
                                     (299_990, 0, data[299_990:]), (299_990, 100, data[299_990:]),
                                     (300_000, 0, b"")]:
        _, size, digest, body = download(gateway, api, md, info.id, offset, length)
        assert (size, digest) == (len(expected), hashlib.sha256(expected).hexdigest())
    with pytest.raises(grpc.RpcError) as e:
        download(gateway, api, md, info.id, offset=300_001)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith("offset: ")


def test_same_bytes_are_stored_once_and_survive_one_owners_delete(gateway, api):
    alice, bob = gateway.tokens.metadata("uid-dedup-a"), gateway.tokens.metadata("uid-dedup-b")
    data = os.urandom(100_000)
    a = upload(gateway, api, alice, data, filename="a.bin")
    b = upload(gateway, api, bob, data, filename="b.bin")
    assert a.key == b.key and not a.deduplicated and b.deduplicated and a.id != b.id
    assert gateway.blob_size(a.key) == len(data)
    files_stub(gateway, api).DeleteFile(api[0].DeleteFileRequest(id=a.id), metadata=alice, timeout=10)
    assert gateway.blob_size(a.key) == len(data)
    assert download(gateway, api, bob, b.id)[2] == hashlib.sha256(data).hexdigest()
    files_stub(gateway, api).DeleteFile(api[0].DeleteFileRequest(id=b.id), metadata=bob, timeout=10)
    assert gateway.blob_size(a.key) is None
    with pytest.raises(grpc.RpcError) as e:
        files_stub(gateway, api).GetFileInfo(api[0].GetFileInfoRequest(id=b.id), metadata=bob, timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_another_users_file_is_permission_denied(gateway, api):
    m, files = api[0], files_stub(gateway, api)
    alice, mallory = gateway.tokens.metadata("uid-owner"), gateway.tokens.metadata("uid-mallory")
    info = upload(gateway, api, alice, b"secret")
    for call in [lambda: files.GetFileInfo(m.GetFileInfoRequest(id=info.id), metadata=mallory, timeout=10),
                 lambda: download(gateway, api, mallory, info.id),
                 lambda: files.DeleteFile(m.DeleteFileRequest(id=info.id), metadata=mallory, timeout=10),
                 lambda: files.GetDownloadUrl(m.GetDownloadUrlRequest(id=info.id), metadata=mallory, timeout=10)]:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.id not in [f.id for f in files.ListFiles(m.ListFilesRequest(), metadata=mallory, timeout=10).files]
    admin = gateway.tokens.metadata("uid-root", admin=True)
    assert files.GetFileInfo(m.GetFileInfoRequest(id=info.id), metadata=admin, timeout=10).id == info.id


def test_list_files_pages_the_callers_files(gateway, api):
    m, files = api[0], files_stub(gateway, api)
    md = gateway.tokens.metadata("uid-lister")
    made = [upload(gateway, api, md, f"file {i}".encode(), filename=f"f{i}.txt").id for i in range(7)]
    seen = [f.id for page in all_pages(lambda token: files.ListFiles(
        m.ListFilesRequest(page_size=3, page_token=token), metadata=md, timeout=10)) for f in page.files]
    assert seen == made


@pytest.mark.parametrize("header, field", [
    ({"filename": ""}, "header.filename"),
    ({"filename": "../etc/passwd"}, "header.filename"),
    ({"filename": "x", "metadata": {f"k{i}": "v" for i in range(33)}}, "header.metadata"),
    ({"filename": "x", "metadata": {"k": "v" * 9000}}, "header.metadata"),
    ({"filename": "x", "expected_size": 5}, "header.expected_size"),
    ({"filename": "x", "expected_sha256": "00" * 32}, "header.expected_sha256"),
])
def test_bad_headers_and_mismatches_are_invalid_and_leave_nothing(gateway, api, header, field):
    md = gateway.tokens.metadata("uid-bad")
    header = dict(header)  # the parameters are shared by every backend's run
    name = header.pop("filename")
    with pytest.raises(grpc.RpcError) as e:
        upload(gateway, api, md, b"four", filename=name, **header)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith(field)
    assert gateway.temporary_uploads() == []


class PeakRSS:
    """Samples a process's resident set every 20 ms while a block runs: the peak is what users feel, the RSS
    after the work has ended hides any buffer that was freed before it."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def __enter__(self):
        self.start = rss_kib(self.pid)
        self.peak = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))

    @property
    def growth_kib(self):
        return self.peak - self.start


def test_a_200_mib_upload_and_download_stream_with_bounded_peak_memory(gateway, api):
    md = gateway.tokens.metadata("uid-big")
    block = os.urandom(1 << 20)
    expected = hashlib.sha256()
    for _ in range(200):
        expected.update(block)
    # A warm-up transfer each way first, so that the peaks measure buffering rather than the first use of the
    # allocator's arenas by the threads involved.
    warm = upload(gateway, api, md, os.urandom(4 << 20))
    download(gateway, api, md, warm.id)
    with PeakRSS(gateway.proc.pid) as up:
        info = upload(gateway, api, md, (block[i:i + CHUNK] for _ in range(200) for i in range(0, len(block), CHUNK)))
    assert (info.size, info.sha256) == (200 << 20, expected.hexdigest())
    with PeakRSS(gateway.proc.pid) as down:
        _, got_size, got_hash, _ = download(gateway, api, md, info.id)
    assert (got_size, got_hash) == (200 << 20, info.sha256)
    # Streaming: at any moment the process holds a few flow-control windows and buffers, never the file.
    # Not under AddressSanitizer (scripts/test-asan), whose quarantine keeps freed memory resident on purpose.
    if "ASAN_OPTIONS" not in os.environ:
        assert up.growth_kib < 16 * 1024, (up.start, up.peak)
        assert down.growth_kib < 16 * 1024, (down.start, down.peak)


def curl(url, http2=True):
    out = subprocess.run(["curl", "-sS", *(["--http2-prior-knowledge"] if http2 else []), "-o", "-", "-w", "\n%{http_code} %{content_type}", url],
                         capture_output=True, timeout=60)
    body, _, status_line = out.stdout.rpartition(b"\n")
    return int(status_line.split()[0]), status_line.split()[1].decode() if b" " in status_line else "", body


def test_download_links(gateway, api):
    if gateway.backend == "aws":
        pytest.skip("the AWS backend answers S3 presigned URLs (test_s3_download_urls_are_presigned)")
    m, files = api[0], files_stub(gateway, api)
    md = gateway.tokens.metadata("uid-links")
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(200_000)
    info = upload(gateway, api, md, data, filename="pic.png")
    link = files.GetDownloadUrl(m.GetDownloadUrlRequest(id=info.id), metadata=md, timeout=10)
    assert link.url.startswith(f"http://127.0.0.1:{gateway.port}/files/{info.id}?expires=")
    assert 14 * 60 <= link.expires_at.seconds - time.time() <= 16 * 60

    status, content_type, body = curl(link.url)
    assert (status, content_type, hashlib.sha256(body).hexdigest()) == (200, "image/png", info.sha256)
    altered = [link.url.replace("expires=", "expires=1"), link.url[:-1] + ("A" if link.url[-1] != "A" else "B"),
               link.url.replace(info.id, info.id[:-1] + ("0" if info.id[-1] != "0" else "1")),
               link.url.split("&sig=")[0]]
    for url in altered:
        assert curl(url)[0] == 403, url
    short = files.GetDownloadUrl(m.GetDownloadUrlRequest(id=info.id, ttl={"seconds": 1}), metadata=md, timeout=10)
    assert curl(short.url)[0] == 200
    time.sleep(2.2)
    assert curl(short.url)[0] == 403
    assert curl(f"http://127.0.0.1:{gateway.port}/nothing/here")[0] == 404

    # The link dies with its file, though another owner's upload of the same bytes keeps them.
    other = gateway.tokens.metadata("uid-links-other")
    assert upload(gateway, api, other, data, filename="same.png").deduplicated
    files.DeleteFile(m.DeleteFileRequest(id=info.id), metadata=md, timeout=10)
    assert curl(link.url)[0] == 404


def test_s3_download_urls_are_presigned(gateway, api, monkeypatch):
    """GetDownloadUrl on the AWS backend answers an S3 presigned GET: the same URL botocore's
    generate_presigned_url makes at the same instant, and one the S3 endpoint serves the bytes for."""
    if gateway.backend != "aws":
        pytest.skip("the embedded backend serves its own signed links (test_download_links)")
    import datetime
    import urllib.parse
    import botocore.auth
    m, files = api[0], files_stub(gateway, api)
    md = gateway.tokens.metadata("uid-presign")
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(50_000)
    info = upload(gateway, api, md, data, filename='pic "1".png')
    link = files.GetDownloadUrl(m.GetDownloadUrlRequest(id=info.id), metadata=md, timeout=10)
    url = urllib.parse.urlsplit(link.url)
    query = urllib.parse.parse_qs(url.query)
    assert (url.netloc, url.path) == (f"127.0.0.1:{gateway.aws.moto.port}", f"/{gateway.aws.bucket}/{info.key}")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-SignedHeaders"] == ["host"]
    assert query["X-Amz-Expires"] == ["900"] and 14 * 60 <= link.expires_at.seconds - time.time() <= 16 * 60
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: signed_at)
    from botocore.config import Config
    s3 = gateway.aws.moto.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    expected = s3.generate_presigned_url("get_object", ExpiresIn=900, Params={
        "Bucket": gateway.aws.bucket, "Key": info.key, "ResponseContentType": "image/png",
        "ResponseContentDisposition": 'attachment; filename="pic 1.png"'})
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(expected).query)["X-Amz-Signature"] == query["X-Amz-Signature"]
    status, content_type, body = curl(link.url, http2=False)
    assert (status, hashlib.sha256(body).hexdigest()) == (200, info.sha256)
    short = files.GetDownloadUrl(m.GetDownloadUrlRequest(id=info.id, ttl={"seconds": 60}), metadata=md, timeout=10)
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(short.url).query)["X-Amz-Expires"] == ["60"]


def test_file_events_are_recorded(gateway, api, pb2):
    from gateway.event.v1 import event_service_pb2 as em, event_service_pb2_grpc as es
    from gateway.common.v1 import domain_events_pb2 as de
    md = gateway.tokens.metadata("uid-file-events")
    info = upload(gateway, api, md, b"event me")
    files_stub(gateway, api).DeleteFile(api[0].DeleteFileRequest(id=info.id), metadata=md, timeout=10)
    log = es.EventServiceStub(gateway.channel).ListEvents(em.ListEventsRequest(filter=em.EventFilter(aggregate_ids=[info.id])),
                                                          metadata=md, timeout=10).events
    assert [e.type for e in log] == ["FileUploaded", "FileDeleted"]
    uploaded = de.FileUploaded.FromString(log[0].payload)
    assert (uploaded.sha256, uploaded.size, uploaded.owner_id) == (info.sha256, 8, "uid-file-events")
