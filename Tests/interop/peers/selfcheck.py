"""End-to-end check of the third-party peers themselves (no gateway involved):

    cd Tests/interop && ../../.venv/bin/python -m peers.selfcheck [--tls] [--quick]

1. Python interop client vs Python interop server: the 14 cases.
2. grpc-go interop client vs grpc-go interop server: the 14 cases.
3. grpc-go client vs Python server: a few cases (all 14 without --quick is not needed; pass --all).
4. grpc-go benchmark server + h2load: 1000 unary BenchmarkService/UnaryCall requests, all 2xx.
5. grpcurl -version.
Exit status 0 when everything passed.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import peers

FEW = ("empty_unary", "large_unary", "ping_pong", "custom_metadata", "special_status_message")


def interop(title, env, server_cmd, client_cmd, cases, tls) -> bool:
    port = peers.free_port()
    ok = True
    t0 = time.monotonic()
    with peers.Process(server_cmd(env, port, tls=tls), port=port):
        for case in cases:
            r = peers.run_client(client_cmd(env, port, case, tls=tls))
            if r.returncode != 0:
                ok = False
                print(f"   FAIL {case}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    status = "ok" if ok else "FAILED"
    print(f"== {title} ({'TLS' if tls else 'plaintext'}, port {port}): {len(cases)} cases {status} "
          f"({time.monotonic() - t0:.1f} s)")
    return ok


def bench(env, n=1000) -> bool:
    port = peers.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        body = pathlib.Path(tmp) / "empty.grpc"
        body.write_bytes(peers.grpc_frame(b""))  # SimpleRequest{} -> response_size 0
        name = f"grpc-gateway-peers-selfcheck-{port}"
        with peers.Process(peers.go_bench_server_cmd(env, port, name), port=port):
            r = subprocess.run([env["INTEROP_H2LOAD"], "-n", str(n), "-c", "2", "-m", "2", "-d", str(body),
                                "-H", "content-type: application/grpc", "-H", "te: trailers",
                                f"http://{peers.HOST}:{port}/grpc.testing.BenchmarkService/UnaryCall"],
                               capture_output=True, text=True, timeout=60)
        for suffix in (".cpu", ".mem"):
            pathlib.Path(f"/tmp/{name}{suffix}").unlink(missing_ok=True)
    m = re.search(r"status codes: (\d+) 2xx", r.stdout)
    done = re.search(r"requests: .*", r.stdout)
    ok = r.returncode == 0 and m is not None and int(m.group(1)) == n
    print(f"== go benchmark server + h2load (port {port}): {m.group(0) if m else '?'}; "
          f"{done.group(0) if done else '?'} -> {'ok' if ok else 'FAILED'}")
    if not ok:
        print(r.stdout, r.stderr)
    return ok


def grpcurl(env) -> bool:
    r = subprocess.run([env["INTEROP_GRPCURL"], "-version"], capture_output=True, text=True, timeout=30)
    out = (r.stdout + r.stderr).strip()
    ok = r.returncode == 0 and out.startswith("grpcurl v")
    print(f"== grpcurl -version: {out!r} -> {'ok' if ok else 'FAILED'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", action="store_true", help="also run the interop pairs over TLS")
    ap.add_argument("--all", action="store_true", help="all 14 cases for Go client vs Python server")
    a = ap.parse_args()
    env = peers.load_env()
    results = []
    for tls in ([False, True] if a.tls else [False]):
        results += [
            interop("python client -> python server", env, peers.python_server_cmd,
                    peers.python_client_cmd, peers.CASES, tls),
            interop("go client -> go server", env, peers.go_server_cmd, peers.go_client_cmd,
                    peers.CASES, tls),
            interop("go client -> python server", env, peers.python_server_cmd, peers.go_client_cmd,
                    peers.CASES if a.all else FEW, tls),
            interop("python client -> go server", env, peers.go_server_cmd, peers.python_client_cmd,
                    peers.CASES if a.all else FEW, tls),
        ]
    results += [bench(env), grpcurl(env)]
    print("selfcheck:", "all ok" if all(results) else "FAILURES")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
