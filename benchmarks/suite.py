#!/usr/bin/env python3
"""The comparison suite behind scripts/bench: our gRPC server next to grpc-go's and grpc-swift-2's (and
nghttpd as the HTTP/2 floor), on one machine, in one run.

Every measurement starts its server fresh, pinned to CPU 0, with the load generator on CPU 1; servers take
turns in A B … / … B A order over the rounds, and the tables show medians and ratios (ours / peer). Loads:
h2load (unary) and gateway-bench run (every scenario, against every server that speaks it). Writes
results.json, results.md and PNG charts into the output directory, and prints the Markdown.

Run by scripts/bench, which builds and stages the binaries and passes their paths in the environment."""

import argparse
import datetime
import json
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVER_CPU, LOAD_CPU = "0", "1"
SCENARIOS = ["unary", "streaming-ping-pong", "streaming-qps", "server-streaming", "client-streaming"]
GATEWAY_SCENARIOS = ["health", "get-user", "publish", "publish-batch", "publish-stream"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Server:
    """A server to measure: how to start it on a port, and what it speaks."""

    def __init__(self, name, command, grpc=True, env=None):
        self.name, self.command, self.grpc, self.env = name, command, grpc, env

    def start(self, port):
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *self.command(port)], stdout=subprocess.DEVNULL,
                                stderr=log, env=self.env)
        try:
            wait_port(port)
        except RuntimeError:
            proc.kill()
            log.seek(0)
            raise RuntimeError(f"{self.name} did not start: {log.read().decode(errors='replace')[-2000:]}")
        proc.log = log
        return proc

    def run(self, measure):
        """Starts the server fresh, runs `measure(port, pid)`, stops it."""
        port = free_port()
        proc = self.start(port)
        try:
            return measure(port, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Load:
    def __init__(self, args):
        self.args = args
        self.bench = os.environ["BENCH_GATEWAY_BENCH"]
        self.h2load = os.environ.get("BENCH_H2LOAD", "h2load")
        self.body = tempfile.NamedTemporaryFile(delete=False)
        # The request `gateway-bench run --scenario unary` sends (a SimpleRequest with an empty payload,
        # `1a 00`), with its headers: the two load generators ask the server for the same work, so their
        # figures can be compared (an empty request costs a server ~15% less per call).
        self.body.write(b"\x00\x00\x00\x00\x02\x1a\x00")
        self.body.close()

    def h2load_rps(self, port, grpc=True, connections=10, streams=10, tls=False,
                   path="/grpc.testing.BenchmarkService/UnaryCall"):
        if grpc:
            # Over TLS, h2load negotiates h2 by ALPN (and checks no certificate).
            target = [f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}", "-d", self.body.name,
                      "-H", "content-type: application/grpc", "-H", "te: trailers",
                      "-H", "user-agent: gateway-swift-rpc/0.1", "-H", "grpc-accept-encoding: identity, deflate, gzip"]
        else:
            target = [f"http://127.0.0.1:{port}/empty"]
        out = subprocess.run(["taskset", "-c", LOAD_CPU, self.h2load, f"-c{connections}", f"-m{streams}",
                              "-D", str(max(1, round(self.args.seconds))), f"--warm-up-time={int(self.args.warmup * 1000)}ms",
                              *target],
                             capture_output=True, text=True, timeout=self.args.seconds + 60)
        match = re.search(r"finished in .*?, ([0-9.]+) req/s", out.stdout)
        ok = re.search(r"status codes: (\d+) 2xx", out.stdout)
        if not match or not ok or int(ok.group(1)) == 0:
            raise RuntimeError(f"h2load failed: {out.stdout[-1500:]}{out.stderr[-500:]}")
        return float(match.group(1))

    def gateway_bench(self, port, pid, scenario, *extra, connections=10, streams=10, seconds=None, allow_errors=False):
        """One `gateway-bench run`'s JSON report. Errors fail the run, except on the curves (`allow_errors`),
        where a server that drops calls at some load is a result: the table shows the count."""
        command = ["taskset", "-c", LOAD_CPU, self.bench, "run", "--target", f"127.0.0.1:{port}", "--scenario", scenario,
                   "--connections", str(connections), "--streams", str(streams),
                   "--duration", str(seconds or self.args.seconds), "--warmup", str(self.args.warmup),
                   "--server-pid", str(pid), "--json", *extra]
        out = subprocess.run(command, capture_output=True, text=True, timeout=(seconds or self.args.seconds) + 120)
        if out.returncode != 0:
            raise RuntimeError(f"gateway-bench {scenario} failed: {out.stderr[-1500:]}")
        report = json.loads(out.stdout)
        if report["errors"] and not allow_errors:
            raise RuntimeError(f"gateway-bench {scenario}: errors {report['errors']}")
        return report

    def idle_kib_per_connection(self, port, pid, connections):
        before = rss_kib(pid)
        proc = subprocess.Popen(["taskset", "-c", LOAD_CPU, self.bench, "idle", "--target", f"127.0.0.1:{port}",
                                 "--connections", str(connections), "--hold", "30"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"gateway-bench idle: {line}{proc.stderr.read()[-1000:]}")
            time.sleep(2)  # let the server settle
            held = rss_kib(pid)
        finally:
            proc.kill()
            proc.wait()
        return (held - before) / connections


def servers(args):
    env = os.environ
    ours = [env["BENCH_GATEWAY_BENCH"], "server", "--port"]
    found = [Server("ours", lambda port: [*ours, str(port)])]
    if env.get("BENCH_GRPC_GO"):
        found.append(Server("grpc-go", lambda port: [env["BENCH_GRPC_GO"], "-port", str(port), "-test_name", "bench"]))
    if env.get("BENCH_GRPC_SWIFT_2"):
        found.append(Server("grpc-swift-2", lambda port: [env["BENCH_GRPC_SWIFT_2"], str(port)]))
    return [s for s in found if not args.only or s.name in args.only]


def tls_servers(args):
    """The interop servers (TestService; grpc-go's benchmark server has no TLS), each in h2c and over TLS with
    the interop suite's server1 certificate (RSA 2048): the cost of TLS is the ratio of the two."""
    env, found = os.environ, []
    cert, key = env.get("BENCH_TLS_CERT"), env.get("BENCH_TLS_KEY")
    if env.get("BENCH_INTEROP_SERVER") and cert and key:
        ours = env["BENCH_INTEROP_SERVER"]
        found += [Server("ours h2c", lambda port: [ours, "--port", str(port)]),
                  Server("ours TLS", lambda port: [ours, "--port", str(port), "--use_tls=true",
                                                   "--tls_cert_file", cert, "--tls_key_file", key])]
    if env.get("BENCH_GRPC_GO_INTEROP"):
        go = env["BENCH_GRPC_GO_INTEROP"]
        found += [Server("grpc-go h2c", lambda port: [go, f"--port={port}"]),
                  Server("grpc-go TLS", lambda port: [go, f"--port={port}", "--use_tls=true"])]
    return [s for s in found if not args.only or s.name.split()[0] in args.only]


def nghttpd(args):
    if not os.environ.get("BENCH_NGHTTPD"):
        return None
    docroot = tempfile.mkdtemp()
    (pathlib.Path(docroot) / "empty").write_bytes(b"")
    return Server("nghttpd", lambda port: [os.environ["BENCH_NGHTTPD"], "--no-tls", "-d", docroot, str(port)], grpc=False)


def gateway_server(args, log_level="info"):
    """The gateway with its default settings (one access-log line per RPC at `info`), logging to a file, but
    without the per-user rate limits: the load is one user at benchmark rates."""
    binary = os.environ.get("BENCH_GATEWAY")
    if not binary:
        return None
    data = tempfile.mkdtemp()
    server = Server("gateway", lambda port: [binary, "serve", "--port", str(port), "--data-dir", data,
                                             "--log-level", log_level, "--reads-per-second", "0",
                                             "--writes-per-second", "0"])
    server.data = data
    return server


def rounds(args, peers, measure):
    """`measure(server)` for every server, over the rounds, alternating the order; returns {name: [results]}."""
    results = {s.name: [] for s in peers}
    for r in range(args.rounds):
        order = peers if r % 2 == 0 else list(reversed(peers))
        for server in order:
            results[server.name].append(measure(server))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections for the memory measurement")
    parser.add_argument("--only", nargs="*", help="servers to run (ours, grpc-go, grpc-swift-2)")
    parser.add_argument("--skip-curves", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = pathlib.Path(args.out or ROOT / "bench-results" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    load = Load(args)
    grpc_servers = servers(args)
    say = lambda text: print(f"bench: {text}", file=sys.stderr, flush=True)
    results = {"machine": machine(), "args": vars(args), "servers": [s.name for s in grpc_servers]}

    say("unary with h2load (-c10 -m10)")
    floor = nghttpd(args)
    every = grpc_servers + ([floor] if floor else [])
    results["h2load"] = rounds(args, every, lambda s: s.run(lambda port, pid: load.h2load_rps(port, grpc=s.grpc)))

    tls = tls_servers(args)
    if tls:
        say("unary over TLS and h2c with h2load (-c10 -m10), TestService/UnaryCall on the interop servers")
        results["tls"] = rounds(args, tls, lambda s: s.run(lambda port, pid: load.h2load_rps(
            port, tls=s.name.endswith("TLS"), path="/grpc.testing.TestService/UnaryCall")))

    results["scenarios"] = {}
    for scenario in SCENARIOS:
        say(f"{scenario} with gateway-bench (10 connections x 10 streams)")
        results["scenarios"][scenario] = rounds(
            args, grpc_servers, lambda s: s.run(lambda port, pid: load.gateway_bench(port, pid, scenario)))

    gateway = gateway_server(args)
    if gateway:
        # 100 calls in flight, as h2load -c10 -m10; every figure is also given as a ratio to Health/Check.
        results["gateway"] = {}
        for scenario in GATEWAY_SCENARIOS:
            say(f"the gateway's {scenario} (10 connections x 10 streams)")
            # Health/Check is public: called without a token, as load balancers call it (a token would be verified).
            login = [] if scenario == "health" else ["--local-login", "--data-dir", gateway.data]
            results["gateway"][scenario] = [gateway.run(lambda port, pid: load.gateway_bench(
                port, pid, scenario, *login)) for _ in range(args.rounds)]
        quiet = gateway_server(args, "warning")
        say("the gateway's health with --log-level warning (10 connections x 10 streams)")
        results["gateway"]["health, --log-level warning"] = [quiet.run(lambda port, pid: load.gateway_bench(
            port, pid, "health")) for _ in range(args.rounds)]

    if not args.skip_curves:
        results["connections"] = {}
        for connections in [1, 10, 100, 1000]:
            say(f"unary over {connections} connection(s), one stream each")
            results["connections"][connections] = {s.name: s.run(lambda port, pid: load.gateway_bench(
                port, pid, "unary", connections=connections, streams=1, allow_errors=True)) for s in grpc_servers}
        results["payload"] = {}
        for size in [16, 1024, 65536, 1048576]:
            say(f"unary with {size} B payloads")
            results["payload"][size] = {s.name: s.run(lambda port, pid: load.gateway_bench(
                port, pid, "unary", "--payload", str(size), allow_errors=True)) for s in grpc_servers}
        say(f"server memory per idle connection ({args.idle} connections)")
        results["idle"] = {s.name: s.run(lambda port, pid: load.idle_kib_per_connection(port, pid, args.idle))
                           for s in grpc_servers}

    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    markdown = report(results)
    (out / "results.md").write_text(markdown)
    charts(results, out)
    print(markdown)
    say(f"written to {out}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return f"{os.cpu_count()} CPUs, {cpu}; servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}"


def median(values):
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def with_errors(report, text):
    """`text`, followed by the failed calls when there were any (a curve's point that dropped calls)."""
    failed = sum(report["errors"].values())
    return f"{text} ({failed:,} failed: {', '.join(report['errors'])})" if failed else text


def report(results):
    names = results["servers"]
    peers = [n for n in names if n != "ours"]
    lines = [f"# scripts/bench, {datetime.datetime.now():%Y-%m-%d %H:%M}", "", f"Machine: {results['machine']}.",
             f"Medians of {results['args']['rounds']} rounds of {results['args']['seconds']} s (after "
             f"{results['args']['warmup']} s of warm-up), each server started fresh; ratios are ours / peer.", ""]
    header = ["measurement"] + names + [f"ours/{p}" for p in peers]
    lines += ["## Throughput (operations per second)", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]

    def row(label, per_server):
        medians = {n: median(per_server.get(n, [])) for n in names}
        ratios = [fmt(medians["ours"] / medians[p], 2) if medians.get("ours") and medians.get(p) else "—" for p in peers]
        return "| " + " | ".join([label] + [fmt(medians[n]) for n in names] + ratios) + " |"

    lines.append(row("unary, h2load -c10 -m10", results["h2load"]))
    for scenario, per_server in results["scenarios"].items():
        lines.append(row(f"{scenario}, gateway-bench", {n: [r["operationsPerSecond"] for r in rs] for n, rs in per_server.items()}))
    agreement = []
    for name in names:
        bench = median([r["operationsPerSecond"] for r in results["scenarios"]["unary"][name]])
        h2load = median(results["h2load"].get(name, []))
        if bench and h2load:
            bound = any(r["clientBound"] for r in results["scenarios"]["unary"][name])
            verdict = "client-bound, so a floor" if bound else ("within 15%" if abs(bench / h2load - 1) <= 0.15 else "NOT within 15%")
            agreement.append(f"{name} {fmt(bench / h2load, 2)} ({verdict})")
    if agreement:
        lines += ["", "Load generators agree? gateway-bench unary / h2load unary, same request and headers: "
                  + "; ".join(agreement) + "."]
    if "nghttpd" in results["h2load"]:
        lines += ["", f"HTTP/2 floor: nghttpd serves an empty file to h2load GETs at "
                      f"{fmt(median(results['h2load']['nghttpd']))} req/s."]
    lines += ["", "## Unary latency under load (gateway-bench, 10 x 10 streams, µs)", "",
              "| server | p50 | p90 | p99 | p99.9 | client CPU (cores) | server CPU µs/op |", "|---|---|---|---|---|---|---|"]
    for name in names:
        reports = results["scenarios"]["unary"][name]
        pick = lambda key: median([r["latency"][key] for r in reports])
        lines.append(f"| {name} | {fmt(pick('p50'))} | {fmt(pick('p90'))} | {fmt(pick('p99'))} | {fmt(pick('p999'))} | "
                     f"{fmt(median([r['client']['cores'] for r in reports]), 2)} | "
                     f"{fmt(median([r['server']['microsecondsPerOperation'] for r in reports]), 1)} |")
    if results.get("tls"):
        lines += ["", "## Unary over TLS (h2load -c10 -m10 over ALPN h2, TestService/UnaryCall on the interop servers, "
                      "the interop suite's RSA 2048 certificate)", "",
                  "| server | h2c req/s | TLS req/s | TLS / h2c |", "|---|---|---|---|"]
        ratios = {}
        for name in dict.fromkeys(n.split()[0] for n in results["tls"]):
            h2c, tls = median(results["tls"].get(f"{name} h2c", [])), median(results["tls"].get(f"{name} TLS", []))
            ratios[name] = tls / h2c if h2c and tls else None
            lines.append(f"| {name} | {fmt(h2c)} | {fmt(tls)} | {fmt(ratios[name], 2) if ratios[name] else '—'} |")
        if ratios.get("ours") and ratios.get("grpc-go"):
            verdict = "meets" if ratios["ours"] >= ratios["grpc-go"] else "misses"
            lines += ["", f"Our TLS/h2c ratio {fmt(ratios['ours'], 2)} against grpc-go's {fmt(ratios['grpc-go'], 2)}: "
                          f"{verdict} the goal (ours ≥ grpc-go's); TLS req/s ours/grpc-go "
                          f"{fmt(median(results['tls']['ours TLS']) / median(results['tls']['grpc-go TLS']), 2)}."]
    if "gateway" in results:
        lines += ["", "## The gateway's real path (default settings, embedded backend; 10 connections x 10 streams)", "",
                  "| scenario | ops/s | events/s | / health | p50 µs | p99 µs | server CPU µs/op |", "|---|---|---|---|---|---|---|"]
        health = median([r["operationsPerSecond"] for r in results["gateway"]["health"]])
        for scenario, reports in results["gateway"].items():
            ops = median([r["operationsPerSecond"] for r in reports])
            # publish-batch sends gateway-bench's default of 10 events per call.
            events = ops * {"publish": 1, "publish-batch": 10, "publish-stream": 1}[scenario] if scenario.startswith("publish") else None
            lines.append(f"| {scenario} | {fmt(ops)} | {fmt(events) if events else '—'} | "
                         f"{fmt((events or ops) / health, 2) if health else '—'} | "
                         f"{fmt(median([r['latency']['p50'] for r in reports]))} | {fmt(median([r['latency']['p99'] for r in reports]))} | "
                         f"{fmt(median([r['server']['microsecondsPerOperation'] for r in reports]), 1)} |")
    if "connections" in results:
        lines += ["", "## Unary throughput against connections (one stream each, ops/s)", "",
                  "| connections | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for connections, per_server in results["connections"].items():
            lines.append(f"| {connections} | " + " | ".join(
                with_errors(per_server[n], fmt(per_server[n]["operationsPerSecond"])) for n in names) + " |")
        lines += ["", "## Unary throughput against payload size (10 x 10 streams; ops/s, MB/s both ways)", "",
                  "| payload | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for size, per_server in results["payload"].items():
            lines.append(f"| {size} B | " + " | ".join(
                with_errors(per_server[n], f"{fmt(per_server[n]['operationsPerSecond'])} ({fmt(per_server[n]['megabytesPerSecond'], 1)} MB/s)")
                for n in names) + " |")
        lines += ["", f"## Server memory per idle connection ({results['args']['idle']} connections, RSS growth)", "",
                  "| server | KiB per connection |", "|---|---|"]
        for name in names:
            lines.append(f"| {name} | {fmt(results['idle'][name], 1)} |")
    silent = [f"{scenario} on {name}" for scenario, per_server in results["scenarios"].items()
              for name, reports in per_server.items() if median([r["operationsPerSecond"] for r in reports]) == 0]
    if silent:
        lines += ["", "No operation completed, without any error, in: " + ", ".join(silent) + " (see docs/design-notes.md)."]
    bound = [f"{scenario} on {name}" for scenario, per_server in results["scenarios"].items()
             for name, reports in per_server.items() if any(r["clientBound"] for r in reports)]
    if bound:
        lines += ["", "The load generator was saturated (these figures are the client's) in: " + ", ".join(bound) + "."]
    return "\n".join(lines) + "\n"


def charts(results, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is missing (scripts/bootstrap installs it); no charts", file=sys.stderr)
        return
    names = results["servers"]
    labels = ["unary (h2load)"] + [f"{s}" for s in results["scenarios"]]
    values = {n: [median(results["h2load"][n])] + [median([r["operationsPerSecond"] for r in results["scenarios"][s][n]])
                                                  for s in results["scenarios"]] for n in names}
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar([x + i * width for x in range(len(labels))], values[name], width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(labels))], labels, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("operations per second (median, log scale)")
    ax.set_title("Throughput by scenario, server on one CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    percentiles = ["p50", "p90", "p99", "p999"]
    for name in names:
        ax.plot(["p50", "p90", "p99", "p99.9"],
                [median([r["latency"][p] for r in results["scenarios"]["unary"][name]]) for p in percentiles], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_ylabel("latency, µs")
    ax.set_title("Unary latency percentiles (gateway-bench, 100 streams)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    plt.close(fig)

    if "connections" not in results:
        return
    for key, xlabel, title, metric, filename in [
        ("connections", "connections (one stream each)", "Unary throughput against connections", "operationsPerSecond", "connections.png"),
        ("payload", "payload, bytes", "Unary throughput against payload size", "megabytesPerSecond", "payload.png"),
    ]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        xs = list(results[key])
        for name in names:
            ax.plot(xs, [results[key][x][name][metric] for x in xs], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("operations per second" if metric == "operationsPerSecond" else "MB/s (both ways)")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / filename, dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    main()
