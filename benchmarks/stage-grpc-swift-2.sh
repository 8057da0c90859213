#!/usr/bin/env bash
# Stages the grpc-swift-2 benchmark server (template: benchmarks/grpc-swift-2-server) in
# .cache/bench/grpc-swift-2-server and builds it in release; prints the binary's path. Rebuilt only when the
# template, the schemas or the toolchain change. Build logs go to .cache/bench/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPLATE=benchmarks/grpc-swift-2-server
PEER=.cache/bench/grpc-swift-2-server
LOGS=.cache/bench/logs
GRPC_PROTO=/usr/share/grpc-proto     # Debian grpc-proto
PROTOS=(grpc/testing/messages.proto grpc/testing/benchmark_service.proto)
mkdir -p "$LOGS"
say() { echo "grpc-swift-2 peer: $*" >&2; }
logged() {
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "FAILED: $* (full log: $log)"
    exit 1
  fi
}

bin=$PEER/.build/release/grpc-swift-2-bench-server
stamp=$PEER/.inputs.sha256
inputs=$(
  cd "$TEMPLATE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  cd "$GRPC_PROTO" && sha256sum "${PROTOS[@]}"
  swift --version 2>&1
  protoc --version
)
inputs=$(sha256sum <<<"$inputs" | cut -d' ' -f1)
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ]; then
  echo "$bin"
  exit 0
fi

say "setting up $PEER (the first build takes 15 minutes or more on 2 cores)"
mkdir -p "$PEER"
rm -rf "$PEER/Sources" "$stamp"     # keep .build: the plugins and the built dependencies
cp -R "$TEMPLATE/." "$PEER/"
for plugin in protoc-gen-swift protoc-gen-grpc-swift-2; do
  say "  $plugin (log: $LOGS/$plugin.log)"
  logged "$LOGS/$plugin.log" swift build -c release --product "$plugin" --package-path "$PEER"
done
gen=$PEER/Sources/grpc-swift-2-bench-server/Generated
mkdir -p "$gen"
protoc -I "$GRPC_PROTO" \
  --plugin=protoc-gen-swift="$PEER/.build/release/protoc-gen-swift" --swift_out="$gen" \
  --plugin=protoc-gen-grpc-swift-2="$PEER/.build/release/protoc-gen-grpc-swift-2" \
  --grpc-swift-2_opt=Client=false,Server=true --grpc-swift-2_out="$gen" \
  "${PROTOS[@]}"
say "  grpc-swift-2-bench-server (log: $LOGS/grpc-swift-2-bench-server.log)"
logged "$LOGS/grpc-swift-2-bench-server.log" \
  swift build -c release --product grpc-swift-2-bench-server --package-path "$PEER"
echo "$inputs" >"$stamp"
echo "$bin"
