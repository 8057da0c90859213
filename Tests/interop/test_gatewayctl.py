"""`gatewayctl` from outside: the built CLI against a real `gateway` (embedded, local mode) on a free port. JSON
output is parsed and checked against what the gateway stored (read back with grpcio)."""

import hashlib
import json
import os
import pathlib
import pty
import select
import signal
import socket
import stat
import subprocess
import threading
import time

import grpc
import pytest

from conftest import free_port
from gateway_fixtures import all_pages, run_gateway


class CLI:
    """Runs the built gatewayctl with its own config directory and the gateway's address."""

    def __init__(self, binaries, config_dir, server):
        self.binary = str(binaries / "gatewayctl")
        self.env = dict(os.environ, XDG_CONFIG_HOME=str(config_dir), GATEWAY_SERVER=server)
        self.env.pop("GATEWAY_TOKEN", None)

    def run(self, *args, input=None, check=True, timeout=120):
        out = subprocess.run([self.binary, *args], input=input, env=self.env, capture_output=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"gatewayctl {' '.join(args)} exited {out.returncode}: {out.stderr.decode()}")
        return out

    def json(self, *args, **kwargs):
        return json.loads(self.run(*args, "--output", "json", **kwargs).stdout)

    def lines(self, *args, **kwargs):
        return [json.loads(line) for line in self.run(*args, "--output", "json", **kwargs).stdout.splitlines()]


@pytest.fixture(scope="module")
def gateway(binaries, pb2, tmp_path_factory):
    with run_gateway(binaries, tmp_path_factory.mktemp("ctl-gateway")) as gw:
        yield gw


@pytest.fixture(scope="module")
def api(pb2):
    from gateway.user.v1 import user_service_pb2 as messages, user_service_pb2_grpc as services
    return messages, services


def login(binaries, gateway, tmp_path, uid, admin=False, email=None):
    cli = CLI(binaries, tmp_path / f"config-{uid}", f"127.0.0.1:{gateway.port}")
    args = ["login", "--local", "--data-dir", str(gateway.data_dir), "--uid", uid]
    if admin:
        args.append("--admin")
    if email:
        args += ["--email", email]
    cli.run(*args)
    return cli


def test_login_saves_credentials_with_mode_0600_and_whoami_reads_them(binaries, gateway, tmp_path):
    cli = login(binaries, gateway, tmp_path, "uid-who", email="who@example.com")
    credentials = tmp_path / "config-uid-who" / "gatewayctl" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    out = cli.run("whoami", "--output", "json")
    token = json.loads(out.stdout.splitlines()[0])["token"]
    assert (token["uid"], token["email"], token["aud"]) == ("uid-who", "who@example.com", "local")
    assert 3500 < token["expires_in_seconds"] <= 3600
    assert "no user for this account yet" in out.stderr.decode()
    cli.run("logout")
    assert not credentials.exists()
    assert cli.run("whoami", check=False).returncode == 1


def test_user_commands_match_what_the_gateway_stored(binaries, gateway, tmp_path, api):
    cli = login(binaries, gateway, tmp_path, "uid-ctl")
    created = cli.json("user", "create", "--email", "Ctl.User@Example.com", "--display-name", "Ctl")
    m, stub = api[0], api[1].UserServiceStub(gateway.channel)
    stored = stub.GetUser(m.GetUserRequest(id=created["id"]), metadata=gateway.tokens.metadata("uid-ctl"), timeout=10)
    assert (created["email"], created["displayName"], created["firebaseUid"], created["version"]) == (stored.email, "Ctl", "uid-ctl", "1")
    assert cli.json("user", "get", created["id"])["id"] == created["id"]
    assert cli.json("user", "me")["id"] == created["id"]
    assert cli.json("user", "get-by-email", "ctl.user@example.com")["id"] == created["id"]
    updated = cli.json("user", "update", created["id"], "--display-name", "Renamed", "--expected-version", "1")
    assert (updated["displayName"], updated["version"]) == ("Renamed", "2")
    stale = cli.run("user", "update", created["id"], "--display-name", "Again", "--expected-version", "1", check=False)
    assert stale.returncode == 64 + 10 and b"ABORTED" in stale.stderr and b"stored version is 2" in stale.stderr
    session = cli.json("session", "create", "--device", "laptop", "--ttl", "600")
    assert session["device"] == "laptop" and cli.lines("session", "list")[0]["id"] == session["id"]
    assert cli.json("session", "revoke", session["id"])["revoked"] is True
    assert cli.lines("session", "list") == [] and len(cli.lines("session", "list", "--include-revoked")) == 1
    cli.run("user", "delete", created["id"], "--expected-version", "2")
    assert cli.run("user", "get", created["id"], check=False).returncode == 64 + 5


def test_list_all_follows_page_tokens_and_table_output_is_aligned(binaries, gateway, tmp_path, api):
    admin = login(binaries, gateway, tmp_path, "uid-root", admin=True)
    m, stub = api[0], api[1].UserServiceStub(gateway.channel)
    md = gateway.tokens.metadata("uid-root", admin=True)
    ids = {stub.CreateUser(m.CreateUserRequest(email=f"list{i}@example.com", display_name=f"L{i}", firebase_uid=f"uid-list-{i}"),
                           metadata=md, timeout=10).id for i in range(250)}
    listed = [u["id"] for u in admin.lines("user", "list", "--all", "--page-size", "40")]
    assert len(listed) == len(set(listed)) and ids <= set(listed)
    assert int(admin.run("user", "count").stdout) == len(listed)
    table = admin.run("user", "list", "--page-size", "5", "--output", "table").stdout.decode().splitlines()
    assert table[0].split()[:3] == ["ID", "EMAIL", "NAME"] and len(table) == 6
    email_column = table[0].index("EMAIL")
    assert all(line[email_column - 2:email_column] == "  " and line[email_column] != " " for line in table[1:])


def test_exit_codes_follow_grpcurl(binaries, gateway, tmp_path):
    cli = login(binaries, gateway, tmp_path, "uid-codes")
    assert cli.run("health").returncode == 0
    assert cli.run("user", "get", "not-a-ulid", check=False).returncode == 64 + 3
    assert cli.run("user", "get", "01J0000000000000000000000Z", check=False).returncode == 64 + 5
    denied = cli.run("user", "list", check=False)
    assert denied.returncode == 64 + 7 and denied.stderr.startswith(b"ERROR:\n  Code: PERMISSION_DENIED\n")
    assert cli.run("user", "me", "--token", "not.a.token", check=False).returncode == 64 + 16
    nobody = CLI(binaries, tmp_path / "config-uid-codes", f"127.0.0.1:{free_port()}")
    assert nobody.run("user", "me", check=False).returncode == 64 + 14
    for usage in (["user", "get"], ["no-such-command"], ["file", "download", "x", "-o", "y", "--range", "9-1"], ["user", "me", "--server", "nohost"]):
        assert cli.run(*usage, check=False).returncode == 2, usage
    missing = cli.run("file", "upload", str(tmp_path / "missing.bin"), check=False)
    assert missing.returncode == 1 and b"no such file" in missing.stderr
    assert b"Exit codes" in cli.run("--help").stdout


def home_cli(binaries, home, **env):
    """A gatewayctl whose settings come only from `home` (HOME, so ~/.config/gatewayctl) and `env`."""
    cli = CLI(binaries, home, "unused")
    for name in ("XDG_CONFIG_HOME", "GATEWAY_SERVER", "GATEWAY_TOKEN"):
        cli.env.pop(name, None)
    cli.env.update(HOME=str(home), **env)
    return cli


def write_config(home, **settings):
    folder = home / ".config" / "gatewayctl"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(settings))


@pytest.fixture
def silent_server():
    """host:port of a loopback socket that listens and never answers: the kernel completes the TCP handshake,
    nobody reads, so only the client's own deadline can end a call."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_the_server_comes_from_the_flag_then_the_environment_then_the_config_file(binaries, gateway, tmp_path):
    live, dead = f"127.0.0.1:{gateway.port}", f"127.0.0.1:{free_port()}"
    home = tmp_path / "home"
    cli = home_cli(binaries, home)
    # ~/.config/gatewayctl/config.json alone: its server and its output format.
    write_config(home, server=live, output="json")
    assert json.loads(cli.run("health").stdout) == {"status": "SERVING"}
    write_config(home, server=dead)
    assert cli.run("health", check=False).returncode == 64 + 14
    cli.env["GATEWAY_SERVER"] = ""  # empty is unset
    assert cli.run("health", check=False).returncode == 64 + 14
    # GATEWAY_SERVER over the file; --server over both.
    cli.env["GATEWAY_SERVER"] = live
    assert cli.run("health").stdout == b"SERVING\n"
    assert cli.run("health", "--server", dead, check=False).returncode == 64 + 14
    cli.env["GATEWAY_SERVER"] = dead
    assert cli.run("health", "--server", live).stdout == b"SERVING\n"
    # A bad value says where it came from, before any call.
    del cli.env["GATEWAY_SERVER"]
    for settings, message in [({"server": "nohost"}, b"config.json: server nohost is not host:port"),
                              ({"server": 50051}, b"config.json: server must be a string"),
                              ({"output": "yaml"}, b"config.json: output must be text, json or table")]:
        write_config(home, **settings)
        bad = cli.run("health", check=False)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    cli.env["GATEWAY_SERVER"] = "nohost"
    assert b"GATEWAY_SERVER nohost is not host:port" in cli.run("health", check=False).stderr


def test_the_token_comes_from_the_flags_then_the_environment_then_the_saved_login(binaries, gateway, tmp_path):
    home = tmp_path / "home"
    cli = home_cli(binaries, home, GATEWAY_SERVER=f"127.0.0.1:{gateway.port}")
    cli.run("login", "--local", "--data-dir", str(gateway.data_dir), "--uid", "uid-saved")
    assert (home / ".config/gatewayctl/credentials.json").exists()
    token_file = tmp_path / "token"
    token_file.write_text(gateway.tokens("uid-file") + "\n")

    def caller(*args):
        """The uid the gateway saw: CreateUser stores the caller's token subject."""
        return cli.json("user", "create", "--email", f"{os.urandom(4).hex()}@example.com", "--display-name", "P", *args)["firebaseUid"]

    assert caller() == "uid-saved"
    cli.env["GATEWAY_TOKEN"] = gateway.tokens("uid-env")
    assert caller() == "uid-env"
    assert caller("--token-file", str(token_file)) == "uid-file"
    assert caller("--token-file", str(token_file), "--token", gateway.tokens("uid-flag")) == "uid-flag"
    cli.env["GATEWAY_TOKEN"] = ""  # empty is unset: the saved login again
    assert cli.json("user", "me")["firebaseUid"] == "uid-saved"
    missing = cli.run("user", "me", "--token-file", str(tmp_path / "no-token"), check=False)
    assert missing.returncode == 1 and b"--token-file" in missing.stderr


def test_an_expired_timeout_is_deadline_exceeded_for_calls_and_streams(binaries, gateway, tmp_path, silent_server):
    home = tmp_path / "home"
    cli = home_cli(binaries, home, GATEWAY_SERVER=silent_server, GATEWAY_TOKEN=gateway.tokens("uid-slow"))
    # A server that never answers: the deadline, from the flag or else the config file, ends the call.
    late = cli.run("user", "me", "--timeout", "0.5", check=False, timeout=60)
    assert late.returncode == 64 + 4 and late.stderr.startswith(b"ERROR:\n  Code: DEADLINE_EXCEEDED\n"), late.stderr
    write_config(home, timeout=0.5)
    assert cli.run("user", "me", check=False, timeout=60).returncode == 64 + 4
    # The flag over the file: the file's value is not even looked at.
    write_config(home, timeout=-1)
    bad = cli.run("health", check=False)
    assert bad.returncode == 2 and b"config.json: timeout must be between 0 and 86400" in bad.stderr, bad.stderr
    write_config(home, timeout="30")
    assert b"config.json: timeout must be a number" in cli.run("health", check=False).stderr
    cli.env["GATEWAY_SERVER"] = f"127.0.0.1:{gateway.port}"
    assert cli.run("health", "--timeout", "30").stdout == b"SERVING\n"
    assert b"--timeout must be between" in cli.run("health", "--timeout", "0", check=False).stderr
    # --timeout bounds streams too (as grpcurl's -max-time does): a subscription that nothing matches and a
    # health watch end with DEADLINE_EXCEEDED instead of running on.
    write_config(home)
    for stream in (["event", "subscribe", "--type", "never.published"], ["health", "--watch"]):
        ended = cli.run(*stream, "--timeout", "1", check=False, timeout=60)
        assert ended.returncode == 64 + 4 and b"DEADLINE_EXCEEDED" in ended.stderr, (stream, ended.stderr)
    # And transfers, whose own deadline is a day, against the server that never answers.
    cli.env["GATEWAY_SERVER"] = silent_server
    small = tmp_path / "small.bin"
    small.write_bytes(b"x")
    for transfer in (["file", "upload", str(small)], ["file", "download", "01J0000000000000000000000Z", "-o", str(tmp_path / "out.bin")]):
        ended = cli.run(*transfer, "--timeout", "1", check=False, timeout=60)
        assert ended.returncode == 64 + 4 and b"DEADLINE_EXCEEDED" in ended.stderr, (transfer, ended.stderr)
    assert not (tmp_path / "out.bin").exists()


def test_health_completion_and_generic_calls_on_the_gateway(binaries, gateway, tmp_path):
    cli = login(binaries, gateway, tmp_path, "uid-generic", email="generic@example.com")
    assert cli.run("health").stdout == b"SERVING\n"
    assert cli.run("health", "gateway.user.v1.UserService").stdout == b"SERVING\n"
    assert cli.run("health", "grpc.nope.Service", check=False).returncode == 64 + 5
    # --watch streams the status until stopped: the first line comes at once.
    watch = subprocess.Popen([cli.binary, "health", "--watch"], env=cli.env, stdout=subprocess.PIPE)
    try:
        assert watch.stdout.readline() == b"SERVING\n"
    finally:
        watch.kill()
        watch.wait()

    services = cli.run("list").stdout.decode().split()
    assert {"gateway.user.v1.UserService", "gateway.file.v1.FileService", "gateway.event.v1.EventService"} <= set(services)
    assert "gateway.event.v1.EventService.Subscribe" in cli.run("list", "gateway.event.v1.EventService").stdout.decode().split()
    assert "string email = 2;" in cli.run("describe", "gateway.user.v1.User").stdout.decode()
    # `call` with reflection and the saved token does what the typed command does.
    created = cli.json("call", "gateway.user.v1.UserService/CreateUser", "-d",
                       '{"email": "generic@example.com", "displayName": "Gen"}')
    assert cli.json("call", "gateway.user.v1.UserService/GetCurrentUser") == cli.json("user", "me") == created
    published = cli.lines("call", "gateway.event.v1.EventService/PublishEvents", "-d",
                          '{"events": [{"type": "t", "aggregateId": "a", "payload": "aGk="}]}')
    assert published[0]["results"][0]["sequence"]

    for shell in ("bash", "zsh", "fish"):
        script = cli.run("--generate-completion-script", shell).stdout.decode()
        assert "gatewayctl" in script and "subscribe" in script


def rss_high_water_kib(pid):
    """The kernel's high-water mark of the resident memory of `pid`'s program (VmHWM in /proc/PID/status,
    proc(5); exec starts it afresh), in KiB; None once the process has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def peak_rss_kib(proc, peak=0):
    """Waits for `proc`, reading its memory's high-water mark while it runs; returns its exit code and the
    highest mark read (KiB). Not wait4's ru_maxrss: for a child of this test process that counts this process's
    own memory at the fork, which survives the exec (getrusage(2)), so it showed pytest's size, not the CLI's."""
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        peak = max(peak, rss_high_water_kib(proc.pid) or 0)
        time.sleep(0.005)
    proc.wait()
    return proc.returncode, peak


def test_a_20_mib_round_trip_keeps_memory_bounded_and_draws_progress_only_on_a_terminal(binaries, gateway, tmp_path):
    cli = login(binaries, gateway, tmp_path, "uid-big")
    data = os.urandom(20 << 20)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    # The peak memory of a call that moves no file, to compare with: a health watch, read once it has answered.
    baseline = subprocess.Popen([cli.binary, "health", "--watch"], env=cli.env, stdout=subprocess.PIPE)
    assert baseline.stdout.readline() == b"SERVING\n"
    baseline_kib = rss_high_water_kib(baseline.pid)
    baseline.kill()
    baseline.wait()
    # On a pseudo-terminal: a progress bar on stderr.
    master, slave = pty.openpty()
    proc = subprocess.Popen([cli.binary, "file", "upload", str(source), "--output", "json"], env=cli.env,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn = b""
    peak_kib = 0
    while True:
        peak_kib = max(peak_kib, rss_high_water_kib(proc.pid) or 0)
        if select.select([master], [], [], 0.01)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal's last writer is gone
                chunk = b""
            drawn += chunk
            if chunk:
                continue
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
    output = proc.stdout.read()
    code, peak_kib = peak_rss_kib(proc, peak_kib)
    os.close(master)
    info = json.loads(output)
    assert code == 0 and info["sha256"] == hashlib.sha256(data).hexdigest() and info["size"] == str(len(data))
    assert b"big.bin" in drawn and b"100%" in drawn and b"MiB/s" in drawn
    assert 0 < peak_kib and peak_kib - baseline_kib < 32 * 1024, f"the upload's peak RSS is {peak_kib - baseline_kib} KiB above a plain call's"
    # Piped: no progress bar at all. The download streams to the file: its memory stays bounded too.
    back = tmp_path / "back.bin"
    download = subprocess.Popen([cli.binary, "file", "download", info["id"], "-o", str(back)], env=cli.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    code, peak_kib = peak_rss_kib(download)
    stderr = download.stderr.read()
    assert code == 0, stderr
    assert hashlib.sha256(back.read_bytes()).hexdigest() == info["sha256"]
    assert b"[" not in stderr and b"%" not in stderr and b"SHA-256 " + info["sha256"].encode() in stderr
    assert 0 < peak_kib and peak_kib - baseline_kib < 32 * 1024, f"the download's peak RSS is {peak_kib - baseline_kib} KiB above a plain call's"
    assert cli.lines("file", "list")[-1]["id"] == info["id"]
    assert cli.json("file", "info", info["id"])["size"] == str(len(data))
    assert cli.run("file", "url", info["id"]).stdout.startswith(f"http://127.0.0.1:{gateway.port}/files/".encode())
    part = tmp_path / "part.bin"
    cli.run("file", "download", info["id"], "-o", str(part), "--range", "100-199")
    assert part.read_bytes() == data[100:200]
    cli.run("file", "delete", info["id"])
    gone = cli.run("file", "download", info["id"], "-o", str(tmp_path / "gone.bin"), check=False)
    assert gone.returncode == 64 + 5 and not (tmp_path / "gone.bin").exists(), "no partial file is left"


def test_several_files_upload_at_once_each_printed_and_stored(binaries, gateway, tmp_path):
    from gateway.file.v1 import file_service_pb2 as fm, file_service_pb2_grpc as fs
    cli = login(binaries, gateway, tmp_path, "uid-many")
    sizes = [1, 1000, 65_535, 65_536, 65_537, 300_000, 3 << 20, 7]
    contents = {tmp_path / f"part-{i}.bin": os.urandom(size) for i, size in enumerate(sizes)}
    for path, data in contents.items():
        path.write_bytes(data)
    uploaded = cli.lines("file", "upload", *map(str, contents), "--parallel", "3")
    assert sorted(info["filename"] for info in uploaded) == sorted(path.name for path in contents)
    assert len({info["id"] for info in uploaded}) == len(contents)
    stub, md = fs.FileServiceStub(gateway.channel), gateway.tokens.metadata("uid-many")
    for info in uploaded:
        data = contents[tmp_path / info["filename"]]
        assert (info["sha256"], info["size"]) == (hashlib.sha256(data).hexdigest(), str(len(data)))
        # What the gateway stored: the record, the blob under its key, and the bytes it serves back.
        stored = stub.GetFileInfo(fm.GetFileInfoRequest(id=info["id"]), metadata=md, timeout=10)
        assert (stored.key, stored.sha256, stored.size) == (info["key"], info["sha256"], len(data))
        assert gateway.blob_size(stored.key) == len(data)
        served = b"".join(part.chunk for part in stub.DownloadFile(fm.DownloadFileRequest(id=info["id"]), metadata=md, timeout=60))
        assert served == data
    # Text output: id, key, SHA-256 and path, one line per file.
    lines = [line.split("  ") for line in cli.run("file", "upload", *map(str, contents)).stdout.decode().splitlines()]
    assert sorted(line[3] for line in lines) == sorted(map(str, contents))
    for file_id, key, sha256, path in lines:
        assert sha256 == hashlib.sha256(contents[pathlib.Path(path)]).hexdigest() and sha256 in key
        assert stub.GetFileInfo(fm.GetFileInfoRequest(id=file_id), metadata=md, timeout=10).key == key
    # One missing file among them: nothing is sent.
    before = len(cli.lines("file", "list", "--all"))
    missing = cli.run("file", "upload", *map(str, contents), str(tmp_path / "missing.bin"), check=False)
    assert missing.returncode == 1 and b"missing.bin: no such file" in missing.stderr
    assert len(cli.lines("file", "list", "--all")) == before == 2 * len(contents)


def test_events_publish_list_and_verbose_headers_without_tokens(binaries, gateway, tmp_path):
    cli = login(binaries, gateway, tmp_path, "uid-events")
    payload = tmp_path / "payload.json"
    payload.write_text('{"order": 1}')
    first = cli.json("event", "publish", "--type", "OrderPlaced", "--aggregate-id", "o-1", "--data", f"@{payload}",
                     "--attr", "region=eu", "--idempotency-key", "o-1-placed")
    again = cli.json("event", "publish", "--type", "OrderPlaced", "--aggregate-id", "o-1", "--data", "x", "--idempotency-key", "o-1-placed")
    assert again["id"] == first["id"] and again["duplicate"] is True
    lines = "\n".join(json.dumps({"type": "Batch", "aggregateId": f"b-{i}", "payload": "aGk="}) for i in range(3))
    batch = cli.lines("event", "publish-batch", input=lines.encode())
    assert [int(r["sequence"]) for r in batch] == list(range(int(first["sequence"]) + 1, int(first["sequence"]) + 4))
    bad = cli.run("event", "publish-batch", input=b'{"type": "X"}\n{"typo": 1}\n', check=False)
    assert bad.returncode == 2 and b"line 2" in bad.stderr
    listed = cli.lines("event", "list", "--type", "OrderPlaced")
    assert listed[0]["id"] == first["id"] and json.loads(__import__("base64").b64decode(listed[0]["payload"])) == {"order": 1}
    assert listed[0]["attributes"] == {"region": "eu"}
    verbose = cli.run("event", "list", "-v", "--token", gateway.tokens("uid-events"))
    assert b"authorization: <redacted>" in verbose.stderr and gateway.tokens("uid-events").split(".")[2].encode() not in verbose.stderr


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_subscribe_resumes_across_a_gateway_restart_without_gap_or_duplicate(binaries, pb2, tmp_path, stop):
    """`event subscribe --count N` while a publisher keeps publishing; the gateway is stopped (SIGTERM: a
    graceful shutdown; SIGKILL: it dies on the spot, mid-publish) and restarted on the same port and data
    directory. The CLI prints every stored event exactly once, in order: the log as the gateway has it."""
    from gateway.event.v1 import event_service_pb2 as em, event_service_pb2_grpc as es
    data, port, total = tmp_path / "data", free_port(), 60
    restarted = threading.Event()
    acknowledged = {}  # idempotency key -> the sequence the gateway answered

    def publish(md):
        # Each event under its own idempotency key, sent again until acknowledged: a publish whose reply was
        # lost with the gateway is stored once all the same. The last third waits for the restart.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = es.EventServiceStub(channel)
            for i in range(total):
                if i == 2 * total // 3:
                    restarted.wait()
                for _ in range(50):
                    try:
                        event = em.NewEvent(type="Tick", aggregate_id="t", idempotency_key=f"tick-{i}")
                        reply = stub.PublishEvent(em.PublishEventRequest(event=event), metadata=md, timeout=10, wait_for_ready=True)
                        acknowledged[f"tick-{i}"] = reply.sequence
                        break
                    except grpc.RpcError:
                        restarted.wait()
                time.sleep(0.005)  # spread the publishes out, so that the stop lands among them

    with run_gateway(binaries, data, "--port", str(port)) as first:
        cli = login(binaries, first, tmp_path, "uid-sub")
        admin = first.tokens.metadata("uid-admin", admin=True)
        subscriber = subprocess.Popen([cli.binary, "event", "subscribe", "--from", "1", "--type", "Tick", "--count", str(total)],
                                      env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        publisher = threading.Thread(target=publish, args=(first.tokens.metadata("uid-sub"),), daemon=True)
        publisher.start()
        received = [json.loads(subscriber.stdout.readline()) for _ in range(10)]
        first.proc.send_signal(stop)
        first.proc.wait()
    with run_gateway(binaries, data, "--port", str(port)) as second:
        restarted.set()
        received += [json.loads(line) for line in subscriber.stdout]
        assert subscriber.wait(timeout=120) == 0, subscriber.stderr.read()
        publisher.join(timeout=120)
        assert not publisher.is_alive() and len(acknowledged) == total
        stub = es.EventServiceStub(second.channel)
        stored = [e for page in all_pages(lambda token: stub.ListEvents(em.ListEventsRequest(
            filter=em.EventFilter(types=["Tick"]), page_size=100, page_token=token), metadata=admin, timeout=10)) for e in page.events]
    printed = [(int(e["sequence"]), e["idempotencyKey"]) for e in received]
    assert printed == [(e.sequence, e.idempotency_key) for e in stored]
    assert sorted(key for _, key in printed) == sorted(acknowledged) and sorted(acknowledged.values()) == [s for s, _ in printed]
    assert b"reconnecting" in subscriber.stderr.read()


class FirebaseStandIn:
    """The two Firebase REST endpoints gatewayctl signs in with, on 127.0.0.1: Identity Toolkit
    `accounts:signInWithPassword` and Secure Token `token` (refresh), minting ID tokens with a key of its own and
    serving that key's certificate the way Google does, for the gateway (`--firebase-cert-url`)."""

    API_KEY = "test-api-key"

    def __init__(self, project):
        import http.server
        import secrets
        import urllib.parse
        from firebase_fixtures import SigningKey
        self.project = project
        self.key = SigningKey()
        self.accounts = {"ada@example.com": ("correct horse", "uid-ada")}
        self.refresh_tokens = {}
        self.revoked = set()
        self.refreshes = 0
        self.minted = __import__("itertools").count()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/certs":
                    return self.reply(200, {stand_in.key.kid: stand_in.key.certificate_pem})
                self.reply(404, {})

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                if urllib.parse.parse_qs(url.query).get("key") != [stand_in.API_KEY]:
                    return self.reply(400, {"error": {"message": "API_KEY_INVALID"}})
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if url.path == "/v1/accounts:signInWithPassword":
                    request = json.loads(body)
                    password, uid = stand_in.accounts.get(request["email"], (None, None))
                    if password != request["password"]:
                        return self.reply(400, {"error": {"message": "INVALID_PASSWORD"}})
                    refresh = secrets.token_urlsafe(24)
                    stand_in.refresh_tokens[refresh] = (uid, request["email"])
                    return self.reply(200, {"idToken": stand_in.id_token(uid, request["email"]), "refreshToken": refresh,
                                            "expiresIn": "3600", "localId": uid})
                if url.path == "/v1/token":
                    form = urllib.parse.parse_qs(body.decode())
                    refresh = form["refresh_token"][0]
                    if refresh in stand_in.revoked or refresh not in stand_in.refresh_tokens:
                        return self.reply(400, {"error": {"message": "TOKEN_EXPIRED"}})
                    stand_in.refreshes += 1
                    uid, email = stand_in.refresh_tokens[refresh]
                    return self.reply(200, {"id_token": stand_in.id_token(uid, email), "refresh_token": refresh,
                                            "expires_in": "3600", "user_id": uid})
                self.reply(404, {})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def id_token(self, uid, email):
        from firebase_fixtures import id_token_claims
        now = int(__import__("time").time())
        # A custom claim that differs each time, so a refreshed token differs from the last even within a second.
        return self.key.sign(id_token_claims(now, uid=uid, provider="password", project=self.project, email=email,
                                             token_number=next(self.minted)))

    def close(self):
        self.server.shutdown()


def test_firebase_sign_in_refreshes_expired_tokens_and_asks_to_log_in_again_when_revoked(binaries, pb2, tmp_path):
    firebase = FirebaseStandIn("demo-project")
    try:
        with run_gateway(binaries, tmp_path / "data", "--firebase-project-id", "demo-project",
                         "--firebase-cert-url", f"{firebase.url}/certs") as gateway:
            cli = CLI(binaries, tmp_path / "config", f"127.0.0.1:{gateway.port}")
            login = ["login", "--email", "ada@example.com", "--api-key", firebase.API_KEY, "--password-stdin",
                     "--identity-toolkit-url", firebase.url, "--secure-token-url", firebase.url]
            wrong = cli.run(*login, input=b"wrong password\n", check=False)
            assert wrong.returncode == 1 and b"email or password is wrong" in wrong.stderr
            cli.run(*login, input=b"correct horse\n")
            credentials = tmp_path / "config" / "gatewayctl" / "credentials.json"
            assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
            created = cli.json("user", "create", "--email", "ada@example.com", "--display-name", "Ada")
            assert created["firebaseUid"] == "uid-ada"

            def expire():
                saved = json.loads(credentials.read_text())
                saved["firebase"]["expiresAt"] = 0
                credentials.write_text(json.dumps(saved))
                return saved["firebase"]["idToken"]

            # An expired ID token is refreshed before the call, and the new one saved.
            old = expire()
            verbose = cli.run("user", "me", "-v")
            assert firebase.refreshes == 1 and json.loads(credentials.read_text())["firebase"]["idToken"] != old
            assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
            saved = json.loads(credentials.read_text())["firebase"]
            for secret in (saved["idToken"], saved["refreshToken"], old):
                assert secret.encode() not in verbose.stderr and secret.encode() not in verbose.stdout
            assert b"authorization: <redacted>" in verbose.stderr
            # A revoked refresh token: one clear message, no call.
            firebase.revoked.add(saved["refreshToken"])
            expire()
            refused = cli.run("user", "me", check=False)
            assert refused.returncode == 1 and b"log in again" in refused.stderr
    finally:
        firebase.close()
