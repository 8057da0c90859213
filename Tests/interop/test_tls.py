"""The gateway over TLS (OpenSSL, ALPN h2), seen by clients nobody here wrote: grpcio (BoringSSL), curl and
`openssl s_client`. Certificates are made per session with `cryptography`: two CAs, server certificates for
localhost/127.0.0.1, and client certificates for mutual TLS."""

import datetime
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import threading
import time

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import free_port, serve
from gateway_fixtures import run_gateway


class PKI:
    """Writes keys and certificates into a directory; each method returns the paths it wrote."""

    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.cas = {}

    def _write(self, name, certificate, key, password=None):
        cert_path, key_path = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        encryption = (serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
        return cert_path, key_path

    def ca(self, name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test {name}")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                       .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                       .not_valid_after(now + datetime.timedelta(days=365))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                       .sign(key, hashes.SHA256()))
        self.cas[name] = (certificate, key)
        return self._write(name, certificate, key)[0]

    def leaf(self, name, ca, common_name, sans, days=30, not_before_days=-1, rsa_key=False, password=None):
        ca_certificate, ca_key = self.cas[ca]
        key = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                                                x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                       .issuer_name(ca_certificate.subject).public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now + datetime.timedelta(days=not_before_days))
                       .not_valid_after(now + datetime.timedelta(days=days))
                       .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                       .sign(ca_key, hashes.SHA256()))
        return self._write(name, certificate, key, password)


LOCALHOST = [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = PKI(tmp_path_factory.mktemp("pki"))
    pki.ca("ca")
    pki.ca("other-ca")
    pki.leaf("server", "ca", "localhost", LOCALHOST, rsa_key=True)
    pki.leaf("server2", "other-ca", "localhost", LOCALHOST)
    pki.leaf("client", "ca", "payments", [x509.UniformResourceIdentifier("spiffe://example.org/payments")])
    pki.leaf("stranger", "other-ca", "stranger", [x509.DNSName("stranger")])
    pki.leaf("billing", "ca", "billing", [x509.UniformResourceIdentifier("spiffe://example.org/billing")])
    pki.leaf("expired", "ca", "localhost", LOCALHOST, days=-1, not_before_days=-30)
    pki.leaf("expiring", "ca", "localhost", LOCALHOST, days=3)
    pki.leaf("encrypted", "ca", "localhost", LOCALHOST, password=b"s3cret")
    return pki


def tls_flags(pki, name="server"):
    return ["--tls-cert", str(pki.dir / f"{name}.pem"), "--tls-key", str(pki.dir / f"{name}.key")]


def secure_channel(port, pki, ca="ca", client=None):
    root = (pki.dir / f"{ca}.pem").read_bytes()
    if client:
        credentials = grpc.ssl_channel_credentials(root, (pki.dir / f"{client}.key").read_bytes(),
                                                   (pki.dir / f"{client}.pem").read_bytes())
    else:
        credentials = grpc.ssl_channel_credentials(root)
    return grpc.secure_channel(f"localhost:{port}", credentials)


def health_check(channel, timeout=10):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status


def wait_for_log(gateway, text, timeout=20):
    """The gateway's log once it holds `text` (lines are written as things happen, not before the client sees
    their effect)."""
    deadline = time.monotonic() + timeout
    while text not in gateway.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{gateway.log()}"
        time.sleep(0.05)


def call_fails(channel):
    with pytest.raises(grpc.RpcError) as failure:
        health_check(channel, timeout=5)
    return failure.value.code()


@pytest.fixture(scope="module")
def tls_gateway(binaries, pki, tmp_path_factory):
    with run_gateway(binaries, tmp_path_factory.mktemp("data"), *tls_flags(pki)) as gateway:
        yield gateway


def test_grpcio_calls_the_gateway_over_tls(tls_gateway, pki, pb2):
    from gateway.user.v1 import user_service_pb2 as m, user_service_pb2_grpc as services
    with secure_channel(tls_gateway.port, pki) as channel:
        assert health_check(channel) == 1  # SERVING
        created = services.UserServiceStub(channel).CreateUser(
            m.CreateUserRequest(email="tls@example.com", display_name="TLS"),
            metadata=tls_gateway.tokens.metadata("tls-user", email="tls@example.com"), timeout=10)
        assert created.email == "tls@example.com"


def test_curl_and_openssl_negotiate_h2(tls_gateway, pki):
    ca = str(pki.dir / "ca.pem")
    version = subprocess.run(["curl", "-s", "--http2", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_version}",
                              f"https://localhost:{tls_gateway.port}/"], capture_output=True, text=True, timeout=30)
    assert version.stdout == "2"
    s_client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}", "-alpn", "h2",
                               "-CAfile", ca, "-verify_return_error"], input="", capture_output=True, text=True,
                              errors="replace", timeout=30)
    assert "ALPN protocol: h2" in s_client.stdout
    assert "Verify return code: 0 (ok)" in s_client.stdout


def test_sessions_resume_with_a_ticket(tls_gateway, pki, tmp_path):
    session = tmp_path / "session.pem"
    common = ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}", "-alpn", "h2",
              "-CAfile", str(pki.dir / "ca.pem")]
    # -ign_eof with empty input waits for the server's NewSessionTicket before closing (TLS 1.3 sends it after
    # the handshake).
    first = subprocess.run([*common, "-sess_out", str(session), "-ign_eof"], input="", capture_output=True, text=True,
                           errors="replace", timeout=30)
    assert "New, TLSv1.3" in first.stdout and session.exists()
    again = subprocess.run([*common, "-sess_in", str(session)], input="", capture_output=True, text=True,
                           errors="replace", timeout=30)
    assert "Reused, TLSv1.3" in again.stdout


def test_a_client_that_stops_in_the_handshake_is_closed_after_the_handshake_timeout(binaries, pki, tmp_path):
    with run_gateway(binaries, tmp_path, *tls_flags(pki), "--handshake-timeout-seconds", "1") as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
            raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
            raw.settimeout(60)
            assert raw.recv(1024) == b""
        with secure_channel(gateway.port, pki) as channel:
            assert health_check(channel) == 1


def test_plaintext_no_alpn_and_tls_1_1_clients_fail_cleanly_and_the_server_keeps_serving(tls_gateway, pki):
    with grpc.insecure_channel(f"127.0.0.1:{tls_gateway.port}") as plaintext:
        assert call_fails(plaintext) == grpc.StatusCode.UNAVAILABLE
    no_alpn = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}"],
                             input="", capture_output=True, text=True, errors="replace", timeout=30)
    assert "no application protocol" in no_alpn.stderr
    old = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}", "-alpn", "h2", "-tls1_1"],
                         input="", capture_output=True, text=True, errors="replace", timeout=30)
    assert old.returncode != 0 and "alert protocol version" in old.stderr
    with secure_channel(tls_gateway.port, pki) as channel:
        assert health_check(channel) == 1
    wait_for_log(tls_gateway, "the client offered no ALPN protocol")
    wait_for_log(tls_gateway, "unsupported protocol")


def test_handshakes_and_the_certificate_expiry_are_metrics(binaries, pki, tmp_path):
    import urllib.request
    metrics_port = free_port()
    with run_gateway(binaries, tmp_path, *tls_flags(pki), "--metrics-port", str(metrics_port)) as gateway:
        with secure_channel(gateway.port, pki) as channel:
            assert health_check(channel) == 1
        with secure_channel(gateway.port, pki, ca="other-ca") as channel:
            call_fails(channel)
        # The client gives up after the server's certificate: a failure for the server too (counted when the
        # connection closes, which may follow the call's failure by a moment).
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                text = response.read().decode()
            if 'tls_server_handshakes_total{result="failed",version="none"} 1' in text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert 'tls_server_handshakes_total{result="ok",version="TLSv1.3"} 1' in text
    assert 'tls_server_handshakes_total{result="failed",version="none"} 1' in text
    not_after = x509.load_pem_x509_certificate((pki.dir / "server.pem").read_bytes()).not_valid_after_utc.timestamp()
    expiry = next(line for line in text.splitlines() if line.startswith("tls_server_certificate_expiry_timestamp_seconds"))
    assert float(expiry.split()[1]) == not_after


def test_a_client_trusting_another_ca_refuses_the_server(tls_gateway, pki):
    with secure_channel(tls_gateway.port, pki, ca="other-ca") as channel:
        assert call_fails(channel) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_admits_the_configured_ca_only(binaries, pki, tmp_path):
    flags = [*tls_flags(pki), "--tls-client-ca", str(pki.dir / "ca.pem")]
    with run_gateway(binaries, tmp_path, *flags) as gateway:
        with secure_channel(gateway.port, pki, client="client") as channel:
            assert health_check(channel) == 1
        for client in [None, "stranger"]:
            with secure_channel(gateway.port, pki, client=client) as channel:
                assert call_fails(channel) == grpc.StatusCode.UNAVAILABLE
        wait_for_log(gateway, "peer did not return a certificate")
    optional = [*flags, "--tls-client-auth", "optional"]
    with run_gateway(binaries, tmp_path, *optional) as gateway:
        with secure_channel(gateway.port, pki) as channel:
            assert health_check(channel) == 1
        with secure_channel(gateway.port, pki, client="stranger") as channel:
            assert call_fails(channel) == grpc.StatusCode.UNAVAILABLE


def test_a_service_named_by_its_certificate_is_admitted_without_a_token(binaries, pki, tmp_path, pb2):
    """The mTLS rule next to the token rule: `--mtls-services` names backend services by a SAN; they call with
    an administrator's rights and no token. Another certificate from the same CA still needs a token."""
    from gateway.user.v1 import user_service_pb2 as m, user_service_pb2_grpc as services
    flags = [*tls_flags(pki), "--tls-client-ca", str(pki.dir / "ca.pem"), "--mtls-services", "spiffe://example.org/payments"]
    with run_gateway(binaries, tmp_path, *flags) as gateway:
        with secure_channel(gateway.port, pki, client="client") as channel:
            count = services.UserServiceStub(channel).CountUsers(m.CountUsersRequest(), timeout=10)
            assert count.count == 0
        wait_for_log(gateway, "user.id=spiffe://example.org/payments")
        with secure_channel(gateway.port, pki, client="billing") as channel:
            users = services.UserServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                users.CountUsers(m.CountUsersRequest(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            me = users.CreateUser(m.CreateUserRequest(email="billing@example.com", display_name="Billing"),
                                  metadata=gateway.tokens.metadata("billing-user", email="billing@example.com"), timeout=10)
            assert me.email == "billing@example.com"


def test_sighup_swaps_the_certificate_for_new_connections_and_an_open_stream_survives(binaries, pki, tmp_path, pb2):
    from gateway.event.v1 import event_service_pb2 as m, event_service_pb2_grpc as services
    live = tmp_path / "live"
    live.mkdir()

    def install(name):
        for ext in ["pem", "key"]:
            (live / f"current.{ext}.tmp").write_bytes((pki.dir / f"{name}.{ext}").read_bytes())
            os.replace(live / f"current.{ext}.tmp", live / f"current.{ext}")

    install("server")
    flags = ["--tls-cert", str(live / "current.pem"), "--tls-key", str(live / "current.key")]
    with run_gateway(binaries, tmp_path / "data", *flags) as gateway:
        metadata = gateway.tokens.metadata("sub", admin=True)
        events = services.EventServiceStub
        with secure_channel(gateway.port, pki) as old:
            # A call first, so that the old connection exists before the swap (grpcio connects lazily: a
            # Subscribe alone may connect after the reload, and meet the new certificate).
            assert health_check(old) == 1
            stream = events(old).Subscribe(m.SubscribeRequest(from_sequence=1), metadata=metadata, timeout=60)
            received, failures = [], []

            def read():
                try:
                    for item in stream:
                        if item.HasField("event"):
                            received.append(item.event.aggregate_id)
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.CANCELLED:
                        failures.append(error)

            reader = threading.Thread(target=read)
            reader.start()

            install("server2")
            gateway.proc.send_signal(signal.SIGHUP)
            wait_for_log(gateway, "TLS certificate reloaded")

            with secure_channel(gateway.port, pki, ca="other-ca") as fresh:
                assert health_check(fresh) == 1
                for i in range(3):
                    events(fresh).PublishEvent(m.PublishEventRequest(event=m.NewEvent(
                        type="Reloaded", aggregate_id=f"after-{i}", payload=b"{}")), metadata=metadata, timeout=10)
            with secure_channel(gateway.port, pki, ca="ca") as stale:
                assert call_fails(stale) == grpc.StatusCode.UNAVAILABLE

            deadline = time.monotonic() + 20
            while len(received) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            stream.cancel()
            reader.join(timeout=10)
            assert not reader.is_alive()
            assert not failures, failures
            assert received[:3] == ["after-0", "after-1", "after-2"]

        # A broken file keeps the current certificate, and says why.
        (live / "current.pem").write_text("not a certificate")
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for_log(gateway, "TLS reload failed")
        with secure_channel(gateway.port, pki, ca="other-ca") as channel:
            assert health_check(channel) == 1


@pytest.mark.parametrize("certificate,key,extra,expected", [
    ("missing", "server", [], "missing.pem: cannot read it: No such file or directory"),
    ("server", "client", [], "client.key: the key does not match the certificate in"),
    ("expired", "expired", [], "expired.pem: the certificate (CN=localhost,O=Example) expired at"),
    ("encrypted", "encrypted", [], "encrypted.key: the key is encrypted and no passphrase was given"),
    ("encrypted", "encrypted", ["--tls-key-passphrase", "wrong"], "encrypted.key: cannot decrypt the key (wrong passphrase?)"),
    (None, None, ["--host", "0.0.0.0", "--firebase-project-id", "demo"], "0.0.0.0 is not a loopback address and no certificate is set"),
    ("server", None, [], "--tls-cert needs its private key"),
    ("server", "server", ["--mtls-services", "spiffe://example.org/payments"], "--mtls-services admits services by verified client certificates: set --tls-client-ca"),
])
def test_a_bad_tls_configuration_stops_the_start_with_the_file_and_the_reason(binaries, pki, tmp_path, certificate, key, extra, expected):
    flags = list(extra)
    if certificate:
        flags += ["--tls-cert", str(pki.dir / f"{certificate}.pem")]
    if key:
        flags += ["--tls-key", str(pki.dir / f"{key}.key")]
    result = subprocess.run([str(binaries / "gateway"), "--port", "0", "--data-dir", str(tmp_path), *flags],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "s3cret" not in result.stderr and "wrong" not in result.stderr.replace("(wrong passphrase?)", "")
    assert "Fatal error" not in result.stderr and "Backtrace" not in result.stderr


def test_an_encrypted_key_with_its_passphrase_serves_and_an_expiring_certificate_warns(binaries, pki, tmp_path):
    env = {**os.environ, "GATEWAY_TLS_KEY_PASSPHRASE": "s3cret"}
    with run_gateway(binaries, tmp_path / "a", *tls_flags(pki, "encrypted"), env=env) as gateway:
        with secure_channel(gateway.port, pki) as channel:
            assert health_check(channel) == 1
        assert "s3cret" not in gateway.log()
    with run_gateway(binaries, tmp_path / "b", *tls_flags(pki, "expiring")) as gateway:
        with secure_channel(gateway.port, pki) as channel:
            assert health_check(channel) == 1
        wait_for_log(gateway, "the TLS certificate expires within 14 days")


def test_gateway_bench_loads_the_gateway_over_tls(binaries, tls_gateway, pki):
    out = subprocess.run([str(binaries / "gateway-bench"), "run", "--target", f"127.0.0.1:{tls_gateway.port}",
                          "--scenario", "health", "--connections", "2", "--streams", "2", "--duration", "1",
                          "--warmup", "0", "--tls", "--ca-cert", str(pki.dir / "ca.pem"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["errors"] == {} or not report["errors"]
    assert report["operations"] > 0
    refused = subprocess.run([str(binaries / "gateway-bench"), "run", "--target", f"127.0.0.1:{tls_gateway.port}",
                              "--scenario", "health", "--duration", "1", "--warmup", "0", "--tls",
                              "--ca-cert", str(pki.dir / "other-ca.pem"), "--json"], capture_output=True, text=True, timeout=120)
    report = json.loads(refused.stdout)
    assert report["operations"] == 0 and "UNAVAILABLE" in report["errors"]


def test_ten_thousand_handshakes_leave_no_ssl_objects_behind(binaries, pki, tmp_path):
    """Every connection's SSL, its BIOs and its reference to the context are freed: after 1,000 handshakes
    (allocator arenas warm), 9,000 more must not move the gateway's RSS. One leaked SSL with its BIOs is
    several KiB, so a leak would show as tens of MiB. (The Swift suite's handshake test runs under
    LeakSanitizer in the ASan job, which names any leaked object.)"""
    with run_gateway(binaries, tmp_path, *tls_flags(pki, "server2")) as gateway:
        context = ssl.create_default_context(cafile=str(pki.dir / "other-ca.pem"))
        context.set_alpn_protocols(["h2"])

        def rss_kib():
            status = pathlib.Path(f"/proc/{gateway.proc.pid}/status").read_text()
            return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])

        def handshakes(count):
            for _ in range(count):
                with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
                    with context.wrap_socket(raw, server_hostname="localhost") as tls:
                        assert tls.selected_alpn_protocol() == "h2"

        handshakes(1_000)
        warm = rss_kib()
        handshakes(9_000)
        assert rss_kib() - warm < 4 * 1024, f"RSS grew from {warm} KiB to {rss_kib()} KiB"


def gatewayctl(binaries, home, *args, env=None):
    """The built gatewayctl (a command, then its options) with settings only from `home` (its
    ~/.config/gatewayctl) and `env`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environment.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), **(env or {}))
    return subprocess.run([str(binaries / "gatewayctl"), *args], capture_output=True, text=True, env=environment, timeout=60)


def test_gatewayctl_over_tls_checks_the_certificate_and_its_name(binaries, tls_gateway, pki, tmp_path):
    server = ["--server", f"localhost:{tls_gateway.port}"]
    ca = ["--ca-cert", str(pki.dir / "ca.pem")]
    assert gatewayctl(binaries, tmp_path, "health", *server, *ca).returncode == 0
    token = tls_gateway.tokens("ctl-tls", email="ctl-tls@example.com")
    created = gatewayctl(binaries, tmp_path, "user", "create", "--email", "ctl-tls@example.com", "--display-name", "CTL",
                         *server, *ca, "--token", token, "--output", "json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["email"] == "ctl-tls@example.com"

    untrusted = gatewayctl(binaries, tmp_path, "health", *server, "--ca-cert", str(pki.dir / "other-ca.pem"))
    assert untrusted.returncode == 64 + 14 and "certificate verification failed" in untrusted.stderr
    misnamed = gatewayctl(binaries, tmp_path, "health", *server, *ca, "--server-name", "example.com")
    assert misnamed.returncode == 64 + 14 and "hostname mismatch" in misnamed.stderr
    plaintext = gatewayctl(binaries, tmp_path, "health", *server)
    assert plaintext.returncode == 64 + 14
    missing = gatewayctl(binaries, tmp_path, "health", *server, "--ca-cert", str(tmp_path / "nope.pem"))
    assert missing.returncode == 1 and "nope.pem: cannot read it" in missing.stderr

    # The same from the environment and from config.json.
    assert gatewayctl(binaries, tmp_path, "health", *server, env={"GATEWAY_TLS": "1", "GATEWAY_CA_CERT": ca[1]}).returncode == 0
    folder = tmp_path / ".config" / "gatewayctl"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"server": f"localhost:{tls_gateway.port}", "tls": True, "ca_cert": ca[1]}))
    assert gatewayctl(binaries, tmp_path, "health").returncode == 0


def test_gatewayctl_with_a_client_certificate_calls_as_the_service(binaries, pki, tmp_path):
    flags = [*tls_flags(pki), "--tls-client-ca", str(pki.dir / "ca.pem"), "--mtls-services", "spiffe://example.org/payments"]
    with run_gateway(binaries, tmp_path / "data", *flags) as gateway:
        common = ["--server", f"localhost:{gateway.port}", "--ca-cert", str(pki.dir / "ca.pem"), "--output", "json"]
        counted = gatewayctl(binaries, tmp_path, "user", "count", *common, "--client-cert", str(pki.dir / "client.pem"),
                             "--client-key", str(pki.dir / "client.key"))
        assert counted.returncode == 0, counted.stderr
        refused = gatewayctl(binaries, tmp_path, "user", "count", *common)
        assert refused.returncode == 64 + 14, refused.stderr


def test_sighup_without_tls_is_not_fatal(binaries, tmp_path):
    with run_gateway(binaries, tmp_path) as gateway:
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for_log(gateway, "SIGHUP: no TLS certificate to reload")
        assert gateway.proc.poll() is None
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        assert health_pb2_grpc.HealthStub(gateway.channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1
