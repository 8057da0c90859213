#!/usr/bin/env python3
"""moto_server (PyPI `moto[server]`, pinned in scripts/requirements.txt) as the AWS stand-in for the tests.

Started by the tests themselves on a free loopback port: it binds port 0 and prints `listening on HOST:PORT`.
It runs moto's own WSGI application (the one `moto_server` runs) behind a thin front that adds what the tests
need and `moto_server` lacks:

* **Keep-alive.** `moto_server` runs Werkzeug's development server, which closes the connection after every
  response (`Connection: close`), so connection reuse could not be observed. The front is served by waitress
  (PyPI), a threaded WSGI server with HTTP/1.1 keep-alive.
* **Serialised requests.** moto 5.2.1 answers HTTP 500 when two `TransactWriteItems` run at once (its
  in-memory tables are not locked). The front lets one request at a time into moto (a process-wide lock);
  connections stay concurrent.
* **Counters.** `GET /_peer/stats` answers JSON: requests per AWS operation (`dynamodb.GetItem`,
  `s3.PUT`, `sns.Publish` …) and the number of TCP connections seen (distinct client ports).
  `POST /_peer/stats/reset` zeroes them.
* **Faults.** `POST /_peer/faults` with `{"every": N, "status": 503, "code": "SlowDown", "services": ["s3"]}`
  answers every N-th matching request with that error instead of passing it to moto (no side effect in
  moto, as a load balancer's or AWS's own throttling answer); `{"every": 0}` turns faults off.
  `"operations": ["sns.PublishBatch", "s3.PUT?partNumber"]` narrows them to those operations (names as the
  counters spell them) and `"query": "partNumber=2"` to requests whose query string holds that text; only
  matching requests count towards N. `{"delay_ms": D}` delays every request by D ms before it reaches moto.
  `{"hold": true, …}` keeps each matching request (its body read, counted, not yet passed to moto) waiting
  until the next `POST /_peer/faults`, then passes it on: a request caught in flight, without timing.

* **Fast transactions.** moto 5.2.1's `TransactWriteItems` deep-copies every table it touches, once per
  action, to roll back on failure: a transaction costs time proportional to the table (200 ms at 9,000
  items, measured), which made the black-box suites crawl. The front replaces that backup with a copy of the
  items the transaction touches (their state before it), restored if it fails: the same all-or-nothing
  outcome, in time proportional to the transaction. moto's own code does all the work otherwise.

Strict signature checking is moto's own: set INITIAL_NO_AUTH_ACTION_COUNT in the environment.
With `--exit-with-parent` it exits when the process that started it is gone (a test runner killed midway).
"""

import argparse
import io
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def aws_service(environ):
    """The signing service named in the request's credential scope (moto routes on it too)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            return scope[3]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    credential = query.get("X-Amz-Credential", [""])[0].split("/")
    if len(credential) >= 4:
        return credential[3]
    return "unsigned"


def operation(environ, body):
    service = aws_service(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}.{target.split('.')[-1]}"
    if service in ("sns", "sqs", "sts", "iam") and body:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        return f"{service}.{action}"
    query = environ.get("QUERY_STRING", "")
    suffix = ""
    for marker in ("partNumber", "uploads", "uploadId", "list-type", "X-Amz-Signature"):
        if marker in query:
            suffix = f"?{marker}"
            break
    return f"{service}.{environ['REQUEST_METHOD']}{suffix}"


class Front:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.stats_lock = threading.Lock()
        self.requests = Counter()
        self.connections = set()
        self.faults = {"every": 0}
        self.fault_counter = 0
        self.released = threading.Event()  # set when the faults change: held requests go on

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_peer/"):
            return self.control(environ, start_response, path)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        # moto reads the body again: hand it a fresh stream.
        environ["wsgi.input"] = io.BytesIO(body)
        op = operation(environ, body)
        with self.stats_lock:
            if not path.startswith("/moto-api"):
                self.requests[op] += 1
            self.connections.add((environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")))
            query = environ.get("QUERY_STRING", "")
            fault = self.fault_for(op, query)
            hold = self.released if self.faults.get("hold") and self.matches(op, query) else None
        if hold:
            hold.wait(timeout=600)
        delay = self.faults.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000)
        if fault:
            return self.error(start_response, op, fault)
        with self.lock:
            # Run moto under the lock and drain its response there too: moto's handlers are lazy iterables.
            captured = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers

            chunks = list(self.app(environ, capture))
        start_response(captured["status"], captured["headers"])
        return chunks

    def matches(self, op, query):
        """Whether the faults' filters (services, operations, query) take in this request."""
        services, operations = self.faults.get("services"), self.faults.get("operations")
        if op.startswith("unsigned") or (services and op.split(".")[0] not in services):
            return False
        return not (operations and op not in operations) and self.faults.get("query", "") in query

    def fault_for(self, op, query):
        every = self.faults.get("every", 0)
        if not every or not self.matches(op, query):
            return None
        self.fault_counter += 1
        return self.faults if self.fault_counter % every == 0 else None

    @staticmethod
    def error(start_response, op, fault):
        status, code = fault.get("status", 500), fault.get("code", "InternalError")
        service = op.split(".")[0]
        if service == "dynamodb":
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected fault"}).encode()
            ctype = "application/x-amz-json-1.0"
        elif service == "s3":
            body = f"<Error><Code>{code}</Code><Message>injected fault</Message></Error>".encode()
            ctype = "application/xml"
        else:
            body = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>injected fault</Message>"
                    f"</Error></ErrorResponse>").encode()
            ctype = "text/xml"
        start_response(f"{status} Injected", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def control(self, environ, start_response, path):
        method = environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self.stats_lock:
            if path == "/_peer/stats" and method == "GET":
                answer = {"requests": dict(self.requests), "connections": len(self.connections)}
            elif path == "/_peer/stats/reset" and method == "POST":
                self.requests.clear()
                self.connections.clear()
                answer = {"ok": True}
            elif path == "/_peer/faults" and method == "POST":
                self.faults = json.loads(body or b"{}")
                self.fault_counter = 0
                self.released.set()
                self.released = threading.Event()
                answer = {"ok": True}
            else:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"unknown control path\n"]
        data = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def patch_transaction_backup():
    """Backs up only the items a transaction touches (see the module's documentation)."""
    import copy
    import types
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items
    real_deepcopy = copy.deepcopy
    # moto backs up with `copy.deepcopy(table)`: for tables, hand back the table itself.
    models.copy = types.SimpleNamespace(deepcopy=lambda value, memo=None: value if isinstance(value, Table) else real_deepcopy(value, memo))

    def transact_write_items(self, transact_items):
        before = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table_name = op.get("TableName")
            if table_name not in self.tables:
                continue
            table = self.tables[table_name]
            if "Item" in op:
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op.get("Key")
            if not key:
                continue
            try:
                current = self.get_item(table_name, key)
            except Exception:
                current = None
            before.append((table_name, key, real_deepcopy(current.to_json()["Attributes"]) if current else None))
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(before):
                if attributes is None:
                    try:
                        self.delete_item(table_name, key)
                    except Exception:
                        pass
                else:
                    self.put_item(table_name, attributes)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


def exit_with_parent():
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-with-parent", action="store_true")
    args = parser.parse_args()
    if args.exit_with_parent:
        exit_with_parent()
    patch_transaction_backup()
    logging.getLogger("waitress").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    server = waitress.create_server(Front(app), host=args.host, port=args.port, threads=16, channel_timeout=300,
                                    connection_limit=1000, clear_untrusted_proxy_headers=True)
    print(f"listening on {args.host}:{server.effective_port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
