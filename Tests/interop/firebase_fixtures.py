"""Firebase-shaped signing keys, tokens and a local key server, built with independent code (PyJWT and
`cryptography`), shaped like Google's real `{kid: PEM}` key documents. Nothing here reaches Google."""

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import threading
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PROJECT = "demo-project"
ID_TOKEN_PATH = "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
SESSION_COOKIE_PATH = "/identitytoolkit/v3/relyingparty/publicKeys"


class SigningKey:
    """An RSA-2048 key with a self-signed certificate shaped like Google's; kid = SHA-1 of the DER cert."""

    def __init__(self, common_name="securetoken.system.gserviceaccount.com"):
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=17))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.private_key, hashes.SHA256())
        )
        self.kid = hashlib.sha1(self.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
        self.certificate_pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        self.private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def sign(self, claims, algorithm="RS256", headers=None):
        header = {"kid": self.kid}
        header.update(headers or {})
        return jwt.encode(claims, self.private_pem, algorithm=algorithm, headers=header)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A token assembled by hand, for shapes PyJWT refuses to make."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def hs256_with_public_key(key: SigningKey, claims: dict) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the public certificate."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': key.kid}).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(key.certificate_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def id_token_claims(now, uid="Xq3vDk0cNnPqZ1LmUo8sTaYbW2e4", provider="google.com", project=PROJECT, **overrides):
    """The claim layout of a real ID token, for the given sign-in provider."""
    identities = {
        "google.com": {"google.com": ["109876543210987654321"], "email": ["ada@example.com"]},
        "password": {"email": ["ada@example.com"]},
        "phone": {"phone": ["+15555550100"]},
        "anonymous": {},
    }[provider]
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now - 120,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"identities": identities, "sign_in_provider": provider},
    }
    if provider in ("google.com", "password"):
        claims.update(email="ada@example.com", email_verified=True, name="Ada Lovelace",
                      picture="https://example.com/ada.png")
    if provider == "phone":
        claims["phone_number"] = "+15555550100"
    if provider == "anonymous":
        claims["provider_id"] = "anonymous"
    claims.update(overrides)
    return claims


def session_cookie_claims(now, **overrides):
    claims = id_token_claims(now, provider="password")
    claims.update(iss=f"https://session.firebase.google.com/{PROJECT}", exp=now + 14 * 86400)
    claims.update(overrides)
    return claims


class KeyServer:
    """Serves `{kid: PEM}` documents at Google's two paths on 127.0.0.1 (a free port), with
    `Cache-Control: max-age`. Tests swap the keys, break it, and count the requests per path."""

    def __init__(self, id_keys, session_keys, max_age=3600):
        self.lock = threading.Lock()
        self.documents = {}
        self.hits = {ID_TOKEN_PATH: 0, SESSION_COOKIE_PATH: 0}
        self.max_age = max_age
        self.status = 200
        self.set_keys(id_keys, session_keys)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    if self.path in server.hits:
                        server.hits[self.path] += 1
                    status, body, max_age = server.status, server.documents.get(self.path), server.max_age
                if body is None:
                    status, body = 404, b"{}"
                elif status != 200:
                    body = b'{"error": "unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                if max_age is not None:
                    self.send_header("Cache-Control", f"public, max-age={max_age}, must-revalidate, no-transform")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def set_keys(self, id_keys, session_keys):
        with self.lock:
            self.documents = {
                ID_TOKEN_PATH: json.dumps({k.kid: k.certificate_pem for k in id_keys}).encode(),
                SESSION_COOKIE_PATH: json.dumps({k.kid: k.certificate_pem for k in session_keys}).encode(),
            }

    def fail_with(self, status):
        with self.lock:
            self.status = status

    def hit_count(self, path=ID_TOKEN_PATH):
        with self.lock:
            return self.hits[path]

    @property
    def id_url(self):
        return f"http://127.0.0.1:{self.port}{ID_TOKEN_PATH}"

    @property
    def session_url(self):
        return f"http://127.0.0.1:{self.port}{SESSION_COOKIE_PATH}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def now() -> int:
    return int(time.time())


class IdentityToolkit:
    """A stand-in for Google's OAuth token endpoint and Identity Toolkit `accounts:lookup`, on 127.0.0.1: it
    checks the JWT-bearer assertion with PyJWT against the service account's public key, and answers lookups
    from `users` ({uid: {"disabled": bool, "validSince": "seconds"}}). Counts exchanges and lookups."""

    def __init__(self):
        self.key = SigningKey(common_name="gateway@demo-project.iam.gserviceaccount.com")
        self.lock = threading.Lock()
        self.users = {}
        self.access_tokens = set()
        self.exchanges = 0
        self.lookups = 0
        self.failing = False
        self.problems = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, status, document):
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.failing:
                    return self.reply(503, {"error": {"code": 503, "message": "unavailable"}})
                if self.path == "/token":
                    return self.token(body)
                if self.path == f"/v1/projects/{PROJECT}/accounts:lookup":
                    return self.lookup(body)
                self.reply(404, {"error": {"code": 404}})

            def token(self, body):
                import urllib.parse
                form = urllib.parse.parse_qs(body.decode())
                try:
                    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"], form
                    claims = jwt.decode(form["assertion"][0], server.key.private_key.public_key(), algorithms=["RS256"],
                                        audience=server.token_uri, issuer=server.client_email)
                    assert "https://www.googleapis.com/auth/identitytoolkit" in claims["scope"].split()
                    assert jwt.get_unverified_header(form["assertion"][0]).get("kid") == "sa-key-1"
                except Exception as error:  # noqa: BLE001 - reported to the test
                    server.problems.append(f"token exchange: {error!r}")
                    return self.reply(400, {"error": "invalid_grant"})
                with server.lock:
                    server.exchanges += 1
                    token = f"access-{server.exchanges}"
                    server.access_tokens.add(token)
                self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

            def lookup(self, body):
                bearer = self.headers.get("Authorization", "")
                if not bearer.startswith("Bearer ") or bearer[7:] not in server.access_tokens:
                    server.problems.append(f"lookup with authorization {bearer[:20]!r}")
                    return self.reply(401, {"error": {"code": 401}})
                uids = json.loads(body)["localId"]
                with server.lock:
                    server.lookups += 1
                    users = [dict(localId=uid, **server.users[uid]) for uid in uids if uid in server.users]
                self.reply(200, {"kind": "identitytoolkit#GetAccountInfoResponse", **({"users": users} if users else {})})

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_uri = f"{self.url}/token"
        self.client_email = "gateway@demo-project.iam.gserviceaccount.com"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def service_account(self, path):
        """Writes a service account key file in Google's format pointing at this server; returns the path."""
        path.write_text(json.dumps({
            "type": "service_account", "project_id": PROJECT, "private_key_id": "sa-key-1",
            "private_key": self.key.private_pem.decode(), "client_email": self.client_email,
            "client_id": "1234567890", "token_uri": self.token_uri,
        }))
        return path

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
