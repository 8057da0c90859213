"""The built `gateway` on the embedded default (local mode, a temporary data directory) and tokens for it.

Tokens are signed here with PyJWT using the local key the gateway wrote into its data directory: the same
claim layout as `gateway token`, made by independent code, and fast enough to mint thousands."""

import contextlib
import hashlib
import pathlib
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
        self.tokens = LocalTokens(data_dir)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def log(self) -> str:
        self.proc.log.seek(0)
        return self.proc.log.read()


@contextlib.contextmanager
def run_gateway(binaries, data_dir, *extra):
    with serve([str(binaries / "gateway"), "--port", "0", "--data-dir", str(data_dir), *extra]) as proc:
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
