"""The built `gateway` on the embedded default (local mode, a temporary data directory) and tokens for it.

Tokens are signed here with PyJWT using the local key the gateway wrote into its data directory: the same
claim layout as `gateway token`, made by independent code, and fast enough to mint thousands."""

import contextlib
import hashlib
import pathlib
import subprocess
import time

import grpc
import jwt

from conftest import serve


class LocalTokens:
    """Mints Firebase-shaped ID tokens (project `local`) with the gateway's local signing key."""

    def __init__(self, data_dir: pathlib.Path):
        cert = (data_dir / "local-signing-cert.pem").read_bytes()
        self.kid = hashlib.sha256(cert).hexdigest()[:40]
        self.private_pem = (data_dir / "local-signing-key.pem").read_bytes()

    def __call__(self, uid, admin=False, email=None, lifetime=3600, **overrides):
        now = int(time.time())
        claims = {
            "iss": "https://securetoken.google.com/local", "aud": "local", "auth_time": now - 60,
            "user_id": uid, "sub": uid, "iat": now, "exp": now + lifetime,
            "firebase": {"identities": {}, "sign_in_provider": "custom"},
        }
        if email:
            claims.update(email=email, email_verified=True)
        if admin:
            claims["admin"] = True
        claims.update(overrides)
        return jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": self.kid})

    def metadata(self, uid, **kwargs):
        return (("authorization", f"Bearer {self(uid, **kwargs)}"),)


class Gateway:
    """A running gateway: its port, data directory, tokens, and a channel."""

    def __init__(self, proc, data_dir):
        self.proc = proc
        self.port = proc.port
        self.data_dir = data_dir
        self._tokens = None
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        #: The table and bucket (an AWSPlace) when the gateway runs on the AWS backend.
        self.aws = None

    @property
    def tokens(self):
        """Local-mode tokens (the key exists only once a local-mode gateway has started)."""
        if self._tokens is None:
            self._tokens = LocalTokens(self.data_dir)
        return self._tokens

    @property
    def backend(self):
        return "aws" if self.aws else "embedded"

    def log(self) -> str:
        self.proc.log.seek(0)
        return self.proc.log.read()

    def blob_size(self, key):
        """The stored size of the blob under `key`, or None when there is none: in the data directory, or the
        bucket as an independent S3 client (boto3) sees it."""
        if self.aws is None:
            path = self.data_dir / "blobs" / key
            return path.stat().st_size if path.exists() else None
        import botocore.exceptions
        try:
            return self.aws.moto.client("s3").head_object(Bucket=self.aws.bucket, Key=key)["ContentLength"]
        except botocore.exceptions.ClientError:
            return None

    def temporary_uploads(self):
        """Files of unfinished uploads left on disk (the AWS backend spools to unnamed files)."""
        folder = self.data_dir / ("spool" if self.aws else "blobs/tmp")
        return list(folder.iterdir()) if folder.exists() else []


@contextlib.contextmanager
def run_gateway(binaries, data_dir, *extra, env=None):
    with serve([str(binaries / "gateway"), "--port", "0", "--data-dir", str(data_dir), *extra], env=env) as proc:
        gateway = Gateway(proc, pathlib.Path(data_dir))
        try:
            yield gateway
        finally:
            gateway.channel.close()


def all_pages(fetch, limit=10_000):
    """Every page of a paged listing, `fetch(page_token)` returning a response with `next_page_token`. A
    listing that never ends fails the test instead of hanging it."""
    token = ""
    for _ in range(limit):
        page = fetch(token)
        yield page
        token = page.next_page_token
        if not token:
            return
    raise AssertionError(f"the listing did not end within {limit} pages")


# --- the AWS backend, on moto ------------------------------------------------------------------------------

import json
import os
import sys
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The backends the service suites run against; GATEWAY_TEST_BACKENDS=embedded narrows them.
BACKENDS = os.environ.get("GATEWAY_TEST_BACKENDS", "embedded,aws").split(",")
#: Credentials moto accepts (it checks none unless started strict).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_REGION": "us-east-1"}


class Moto:
    """A running moto_peer.py (Tests/aws): moto behind a front that serialises requests, counts them and can
    inject faults."""

    def __init__(self, proc):
        self.proc = proc
        self.port = proc.port
        self.endpoint = f"http://127.0.0.1:{proc.port}"

    def client(self, service, config=None, **credentials):
        import boto3
        credentials = credentials or {"aws_access_key_id": "test", "aws_secret_access_key": "test-secret"}
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", config=config, **credentials)

    def _control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self):
        return self._control("GET", "/_peer/stats")

    def reset_stats(self):
        self._control("POST", "/_peer/stats/reset", {})

    def faults(self, every=0, status=503, code="ServiceUnavailable", services=None, operations=None, query=None, hold=False):
        """Answers every `every`-th matching request with `status`/`code` instead of passing it to moto (0: no
        faults); with `hold`, keeps matching requests waiting until the next call of `faults`. Requests match
        when they are for one of `services` (`s3`), one of `operations` (as the counters name them:
        `sns.PublishBatch`, `s3.PUT?partNumber`) and their query string holds `query`."""
        body = {"every": every, "status": status, "code": code, "hold": hold}
        if services:
            body["services"] = services
        if operations:
            body["operations"] = operations
        if query:
            body["query"] = query
        self._control("POST", "/_peer/faults", body)


@contextlib.contextmanager
def run_moto(**environment):
    """moto on a free loopback port until the block ends (environment: e.g. INITIAL_NO_AUTH_ACTION_COUNT)."""
    env = dict(os.environ, **environment)
    with serve([sys.executable, str(ROOT / "Tests/aws/moto_peer.py"), "--exit-with-parent"], env=env) as proc:
        yield Moto(proc)


class AWSPlace:
    """A table and a bucket of one's own on a moto server, and the gateway flags that point at them."""

    def __init__(self, moto, table=None, bucket=None, timeout=5):
        suffix = uuid.uuid4().hex[:10]
        self.moto = moto
        self.table = table or f"gateway-{suffix}"
        self.bucket = bucket or f"blobs-{suffix}"
        self.timeout = timeout

    def flags(self):
        return ["--backend", "aws", "--aws-endpoint-url", self.moto.endpoint, "--dynamodb-table", self.table,
                "--s3-bucket", self.bucket, "--aws-timeout-seconds", str(self.timeout)]

    def migrate(self, binaries, data_dir):
        out = subprocess.run([str(binaries / "gateway"), "migrate", "--data-dir", str(data_dir), *self.flags()],
                             env=dict(os.environ, **AWS_ENV), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout


@contextlib.contextmanager
def run_gateway_on(backend, binaries, data_dir, request, *extra, place=None):
    """A gateway on `backend` (`embedded`, or `aws` on the session's moto, migrated first)."""
    if backend == "embedded":
        with run_gateway(binaries, data_dir, *extra) as gateway:
            yield gateway
        return
    place = place or AWSPlace(request.getfixturevalue("moto"))
    place.migrate(binaries, data_dir)
    with run_gateway(binaries, data_dir, *place.flags(), *extra, env=dict(os.environ, **AWS_ENV)) as gateway:
        gateway.aws = place
        yield gateway
