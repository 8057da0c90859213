"""Firebase token verification, black-box: tokens made by PyJWT + cryptography, keys served by a local key
server with Cache-Control, verdicts from `gateway verify-token` (the server's own verifier), checked against
firebase-admin as a reference verifier."""

import base64
import json
import os
import subprocess
import time

import pytest

from firebase_fixtures import (PROJECT, SESSION_COOKIE_PATH, IdentityToolkit, KeyServer, SigningKey, b64, compact,
                               hs256_with_public_key, id_token_claims, now, session_cookie_claims)


@pytest.fixture(scope="module")
def keys():
    return {name: SigningKey() for name in ("id1", "id2", "session1", "other")}


class Verifier:
    """A running `gateway verify-token`: one token in, one JSON verdict out."""

    def __init__(self, binaries, tmp_path, key_server, *extra, session=False):
        command = [str(binaries / "gateway"), "verify-token", "--data-dir", str(tmp_path),
                   "--firebase-project-id", PROJECT,
                   "--firebase-cert-url", key_server.id_url,
                   "--firebase-session-cert-url", key_server.session_url, *extra]
        if session:
            command.append("--session-cookies")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def __call__(self, token):
        self.proc.stdin.write(token + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "verify-token exited"
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0


def vectors(keys):
    """(name, kind, token, expected reason or None when valid)."""
    t = now()
    id1, id2, session1, other = keys["id1"], keys["id2"], keys["session1"], keys["other"]
    c = lambda **o: id_token_claims(t, **o)  # noqa: E731
    good = id1.sign(c())
    h, p, s = good.split(".")

    def std_alphabet():
        # A signature in the standard alphabet (`+`, `/`): re-sign until it has one of them.
        for i in range(50):
            signature = base64.urlsafe_b64decode(id1.sign(c(jti=str(i))).split(".")[2] + "==")
            text = base64.b64encode(signature).decode().rstrip("=")
            if "+" in text or "/" in text:
                return ".".join(id1.sign(c(jti=str(i))).split(".")[:2] + [text])
        raise AssertionError("no signature with + or /")

    tampered = json.loads(base64.urlsafe_b64decode(p + "=="))
    tampered["sub"] = "someone-else"
    flipped = bytearray(base64.urlsafe_b64decode(s + "=="))
    flipped[10] ^= 0x01
    sig = base64.urlsafe_b64decode(s + "==")

    return [
        # valid
        ("google sign-in", "id", good, None),
        ("password sign-in", "id", id1.sign(c(provider="password")), None),
        ("phone sign-in", "id", id1.sign(c(provider="phone")), None),
        ("anonymous sign-in", "id", id1.sign(c(provider="anonymous")), None),
        ("tenant token", "id", id1.sign(c(firebase={"identities": {}, "sign_in_provider": "password", "tenant": "tenant-abc12"})), None),
        ("second key of the set", "id", id2.sign(c()), None),
        ("expired 30 s ago, within the 60 s leeway", "id", id1.sign(c(exp=t - 30)), None),
        ("admin custom claim", "id", id1.sign(c(admin=True)), None),
        ("no typ header", "id", id1.sign(c(), headers={"typ": None}), None),
        ("session cookie", "session", session1.sign(session_cookie_claims(t)), None),
        # time
        ("expired 61 s ago", "id", id1.sign(c(exp=t - 61)), "expired"),
        ("expired an hour ago", "id", id1.sign(c(iat=t - 7200, auth_time=t - 7200, exp=t - 3600)), "expired"),
        ("iat in the future", "id", id1.sign(c(iat=t + 600)), "notYetValid"),
        ("auth_time in the future", "id", id1.sign(c(auth_time=t + 600)), "notYetValid"),
        ("missing exp", "id", id1.sign({k: v for k, v in c().items() if k != "exp"}), "missingClaim"),
        ("missing iat", "id", id1.sign({k: v for k, v in c().items() if k != "iat"}), "missingClaim"),
        # claims
        ("wrong aud", "id", id1.sign(c(aud="other-project")), "wrongAudience"),
        ("array aud", "id", id1.sign(c(aud=[PROJECT])), "wrongAudience"),
        ("wrong iss", "id", id1.sign(c(iss="https://securetoken.google.com/other-project")), "wrongIssuer"),
        ("session cookie issuer on the ID token path", "id", id1.sign(c(iss=f"https://session.firebase.google.com/{PROJECT}")), "wrongIssuer"),
        ("empty sub", "id", id1.sign(c(sub="")), "invalidSubject"),
        ("129-character sub", "id", id1.sign(c(sub="a" * 129)), "invalidSubject"),
        ("non-string sub", "id", id1.sign(c(sub=12345)), "invalidSubject"),
        ("custom token audience", "id", id1.sign(c(aud="https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit")), "customToken"),
        # header
        ("missing kid", "id", compact({"alg": "RS256", "typ": "JWT"}, c(), sig), "malformed"),
        ("unknown kid", "id", other.sign(c()), "unknownKey"),
        ("oversized kid", "id", id1.sign(c(), headers={"kid": "k" * 200}), "malformed"),
        ("alg none, unsigned", "id", compact({"alg": "none", "kid": id1.kid, "typ": "JWT"}, c()), "unsupportedAlgorithm"),
        ("HS256 keyed with the public certificate", "id", hs256_with_public_key(id1, c()), "unsupportedAlgorithm"),
        ("RS512", "id", id1.sign(c(), algorithm="RS512"), "unsupportedAlgorithm"),
        ("lower-case rs256", "id", compact({"alg": "rs256", "kid": id1.kid}, c(), sig), "unsupportedAlgorithm"),
        ("jku header", "id", id1.sign(c(), headers={"jku": "https://attacker.example/keys"}), "embeddedKey"),
        ("jwk header", "id", id1.sign(c(), headers={"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}), "embeddedKey"),
        ("x5u header", "id", id1.sign(c(), headers={"x5u": "https://attacker.example/cert.pem"}), "embeddedKey"),
        # signature
        ("tampered payload", "id", f"{h}.{b64(json.dumps(tampered).encode())}.{s}", "invalidSignature"),
        ("tampered signature", "id", f"{h}.{p}.{b64(bytes(flipped))}", "invalidSignature"),
        ("truncated signature", "id", f"{h}.{p}.{b64(sig[:-1])}", "invalidSignature"),
        ("one-byte signature", "id", f"{h}.{p}.{b64(sig[:1])}", "invalidSignature"),
        ("other key under a served kid", "id", other.sign(c(), headers={"kid": id1.kid}), "invalidSignature"),
        ("signed by the session-cookie key", "id", session1.sign(c()), "unknownKey"),
        # encoding
        ("padded segment", "id", f"{h}=.{p}.{s}", "malformed"),
        ("padded signature", "id", f"{h}.{p}.{s}" + "=" * (-len(s) % 4 or 4), "malformed"),
        ("standard base64 alphabet", "id", std_alphabet(), "malformed"),
        ("two segments", "id", f"{h}.{p}", "malformed"),
        ("four segments", "id", f"{good}.{s}", "malformed"),
        ("whitespace inside", "id", f"{h}.{p[:10]} {p[10:]}.{s}", "malformed"),
        ("oversize token", "id", id1.sign(c(pad="x" * 20000)), "malformed"),
        # the two kinds
        ("session cookie presented as an ID token", "id", session1.sign(session_cookie_claims(t)), "wrongIssuer"),
        ("ID token presented as a session cookie", "session", good, "wrongIssuer"),
        ("session cookie signed with an ID-token key", "session", id1.sign(session_cookie_claims(t)), "unknownKey"),
    ]


@pytest.fixture(scope="module")
def key_server(keys):
    with KeyServer([keys["id1"], keys["id2"]], [keys["session1"]]) as server:
        yield server


def test_vectors(binaries, tmp_path, keys, key_server):
    cases = vectors(keys)
    assert len(cases) >= 30
    ids = Verifier(binaries, tmp_path, key_server)
    cookies = Verifier(binaries, tmp_path, key_server, session=True)
    wrong = []
    for name, kind, token, expected in cases:
        verdict = (ids if kind == "id" else cookies)(token)
        got = None if verdict["valid"] else verdict["reason"]
        if got != expected:
            wrong.append(f"{name}: expected {expected or 'valid'}, got {got or 'valid'} ({verdict.get('message')})")
        if not verdict["valid"]:
            assert token not in verdict["message"] and token.split(".")[0] not in verdict["message"], name
            assert verdict["code"] == "UNAUTHENTICATED", name
    ids.close()
    cookies.close()
    assert not wrong, "\n".join(wrong)
    # All of them cost one download per key URL, plus one rate-limited refresh for the unknown kids.
    assert key_server.hit_count() == 2
    assert key_server.hit_count(SESSION_COOKIE_PATH) == 2


def test_principal_claims(binaries, tmp_path, keys, key_server):
    verify = Verifier(binaries, tmp_path, key_server)
    verdict = verify(keys["id1"].sign(id_token_claims(now(), uid="user-1", admin=True)))
    verify.close()
    assert verdict["valid"] and verdict["uid"] == "user-1" and verdict["admin"] is True
    assert verdict["email"] == "ada@example.com"


def test_tenant_allow_list(binaries, tmp_path, keys, key_server):
    verify = Verifier(binaries, tmp_path, key_server, "--firebase-tenants", "tenant-a, tenant-b")
    tenant = lambda name: id_token_claims(now(), firebase={"identities": {}, "sign_in_provider": "password", "tenant": name})  # noqa: E731
    assert verify(keys["id1"].sign(tenant("tenant-b")))["valid"]
    for claims in (tenant("tenant-abc12"), id_token_claims(now())):
        verdict = verify(keys["id1"].sign(claims))
        assert (verdict["reason"], verdict["code"]) == ("tenantNotAllowed", "PERMISSION_DENIED")
    verify.close()


def test_leeway_is_configurable(binaries, tmp_path, keys, key_server):
    strict = Verifier(binaries, tmp_path, key_server, "--auth-leeway-seconds", "0")
    assert strict(keys["id1"].sign(id_token_claims(now(), exp=now() - 2)))["reason"] == "expired"
    strict.close()
    result = subprocess.run([str(binaries / "gateway"), "verify-token", "--auth-leeway-seconds", "301"],
                            capture_output=True, text=True, input="")
    assert result.returncode != 0 and "between 0 and 300" in result.stderr


def test_key_rotation_loses_nothing(binaries, tmp_path, keys):
    old, new, newer = keys["id1"], keys["id2"], SigningKey()
    with KeyServer([old], [keys["session1"]]) as server:
        verify = Verifier(binaries, tmp_path, server)
        assert verify(old.sign(id_token_claims(now())))["valid"]
        assert server.hit_count() == 1
        # Google publishes the next key before signing with it; tokens from either verify.
        server.set_keys([old, new], [keys["session1"]])
        for _ in range(20):
            assert verify(new.sign(id_token_claims(now())))["valid"]
            assert verify(old.sign(id_token_claims(now())))["valid"]
        assert server.hit_count() == 2, "a new kid costs exactly one refetch"
        # A second unknown kid within the rate limit is refused without another request.
        server.set_keys([new, newer], [keys["session1"]])
        assert verify(newer.sign(id_token_claims(now())))["reason"] == "unknownKey"
        assert server.hit_count() == 2
        verify.close()


def test_key_server_outage_with_a_valid_cache(binaries, tmp_path, keys):
    with KeyServer([keys["id1"]], [keys["session1"]]) as server:
        verify = Verifier(binaries, tmp_path, server)
        assert verify(keys["id1"].sign(id_token_claims(now())))["valid"]
        server.fail_with(500)
        for _ in range(50):
            assert verify(keys["id1"].sign(id_token_claims(now())))["valid"]
        verify.close()


@pytest.mark.parametrize("failure", ["down", "500", "no usable certificate"])
def test_no_usable_keys_is_unavailable(binaries, tmp_path, keys, failure):
    server = KeyServer([keys["id1"]], [keys["session1"]])
    if failure == "500":
        server.fail_with(500)
    elif failure == "no usable certificate":
        server.set_keys([], [])
    if failure == "down":
        server.httpd.server_close()  # the port is free again: nothing answers
    else:
        server.__enter__()
    verify = Verifier(binaries, tmp_path, server)
    verdict = verify(keys["id1"].sign(id_token_claims(now())))
    verify.close()
    if failure != "down":
        server.__exit__(None, None, None)
    assert (verdict["reason"], verdict["code"]) == ("keysUnavailable", "UNAVAILABLE")
    assert "unavailable" in verdict["message"]


# --- firebase-admin as the reference verifier ----------------------------------------------------------------

# Where firebase-admin and we disagree on purpose (measured against firebase-admin-python; the rules):
KNOWN_DIFFERENCES = {
    # firebase-admin does not check auth_time at all; we refuse a sign-in time in the future.
    "auth_time in the future": "firebase-admin ignores auth_time",
    # firebase-admin ignores these headers (keys always come from the fixed URL); we refuse tokens carrying them.
    "jku header": "firebase-admin ignores jku/jwk/x5u",
    "jwk header": "firebase-admin ignores jku/jwk/x5u",
    "x5u header": "firebase-admin ignores jku/jwk/x5u",
    # google-auth decodes segments with a lenient base64 decoder; we require strict unpadded base64url (RFC 7515).
    "padded signature": "google-auth accepts padding",
    "standard base64 alphabet": "google-auth accepts + and /",
    # firebase-admin has no size cap; we refuse tokens over 16 KiB before decoding.
    "oversize token": "firebase-admin has no size cap",
}


@pytest.fixture(scope="module")
def reference(key_server):
    """firebase-admin pointed at the local key server (a differential oracle)."""
    os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)  # emulator mode skips verification entirely
    import firebase_admin
    import google.auth.credentials
    from firebase_admin import auth, credentials

    class Anonymous(credentials.Base):
        def get_credential(self):
            return google.auth.credentials.AnonymousCredentials()

    app = firebase_admin.initialize_app(Anonymous(), {"projectId": PROJECT}, name=f"reference-{time.monotonic()}")
    verifier = auth._get_client(app)._token_verifier
    verifier.id_token_verifier.cert_url = key_server.id_url
    verifier.cookie_verifier.cert_url = key_server.session_url

    def verify(token, kind):
        try:
            if kind == "id":
                auth.verify_id_token(token, app=app, clock_skew_seconds=60)
            else:
                auth.verify_session_cookie(token, app=app, clock_skew_seconds=60)
            return True
        except (ValueError, firebase_admin.exceptions.FirebaseError):
            return False

    yield verify
    firebase_admin.delete_app(app)


def test_agrees_with_firebase_admin(binaries, tmp_path, keys, key_server, reference):
    ids = Verifier(binaries, tmp_path, key_server)
    cookies = Verifier(binaries, tmp_path, key_server, session=True)
    differences = {}
    for name, kind, token, _ in vectors(keys):
        ours = (ids if kind == "id" else cookies)(token)["valid"]
        theirs = reference(token, kind)
        if ours != theirs:
            differences[name] = f"ours {'accepts' if ours else 'refuses'}, firebase-admin {'accepts' if theirs else 'refuses'}"
    ids.close()
    cookies.close()
    unexplained = {k: v for k, v in differences.items() if k not in KNOWN_DIFFERENCES}
    assert not unexplained, unexplained
    # Each listed difference is one where we are the stricter side, and it still shows.
    assert all(v.startswith("ours refuses") for v in differences.values()), differences
    stale = set(KNOWN_DIFFERENCES) - set(differences)
    assert not stale, f"listed differences that no longer differ: {stale}"


# --- check_revoked through Identity Toolkit ------------------------------------------------------------------

def test_revocation_check(binaries, tmp_path, keys, key_server):
    with IdentityToolkit() as toolkit:
        t = now()
        toolkit.users = {
            "active": {"disabled": False},
            "disabled": {"disabled": True},
            "revoked": {"disabled": False, "validSince": str(t + 1)},    # revoked after the token was issued
            "reissued": {"disabled": False, "validSince": str(t - 600)},  # revoked before it: still valid
        }
        account = toolkit.service_account(tmp_path / "service-account.json")
        verify = Verifier(binaries, tmp_path, key_server, "--firebase-check-revoked",
                          "--firebase-service-account", str(account), "--identity-toolkit-url", toolkit.url)
        token = lambda uid: keys["id1"].sign(id_token_claims(t, uid=uid))  # noqa: E731
        verdicts = {uid: verify(token(uid)) for uid in ("active", "disabled", "revoked", "reissued", "deleted")}
        assert verdicts["active"]["valid"] and verdicts["reissued"]["valid"]
        assert verdicts["disabled"]["reason"] == "userDisabled"
        assert verdicts["revoked"]["reason"] == "revoked"
        assert verdicts["deleted"]["reason"] == "userNotFound"
        assert all(v["code"] == "UNAUTHENTICATED" for v in verdicts.values() if not v["valid"])
        # One OAuth exchange for every lookup; answers cached per user.
        assert toolkit.exchanges == 1
        for _ in range(5):
            assert verify(token("active"))["valid"]
        assert toolkit.lookups == 5
        # The directory down and nothing cached: fail closed, as UNAVAILABLE.
        toolkit.failing = True
        toolkit.users["new"] = {"disabled": False}
        verdict = verify(token("new"))
        assert (verdict["reason"], verdict["code"]) == ("revocationCheckUnavailable", "UNAVAILABLE")
        assert verify(token("active"))["valid"], "a cached answer still serves"
        verify.close()
        assert not toolkit.problems, toolkit.problems


def test_revocation_check_needs_a_service_account(binaries, tmp_path, key_server):
    result = subprocess.run([str(binaries / "gateway"), "verify-token", "--data-dir", str(tmp_path),
                             "--firebase-project-id", PROJECT, "--firebase-check-revoked"],
                            capture_output=True, text=True, input="")
    assert result.returncode != 0 and "--firebase-service-account" in result.stderr
