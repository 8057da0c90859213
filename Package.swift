// swift-tools-version: 6.0
import PackageDescription

// C libraries: one thin system-library target each, found with pkg-config (Debian package as provider).
let cLibraries: [Target] = [
    .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
    .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),
    .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
    .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
    // gzip message compression (grpc-encoding); zlib is what curl and OpenSSL already link.
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
]

// Generated code: protoc-c output (C target) + our generator's Swift (Swift target), one pair per schema group.
func protos(_ name: String, dependencies: [String] = [], path: String? = nil) -> [Target] {
    [
        .target(
            name: "C\(name)",
            dependencies: ["CProtobufC"] + dependencies.map { .target(name: "C\($0)") },
            path: "Sources/C\(name)"
        ),
        .target(
            name: name,
            dependencies: ["ProtoRuntime", "RPCCore", "CProtobufC", .target(name: "C\(name)")]
                + dependencies.map { .target(name: $0) },
            path: "Sources/\(name)"
        ),
    ]
}

let package = Package(
    name: "gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gateway", targets: ["gateway"]),
        .executable(name: "gatewayctl", targets: ["gatewayctl"]),
        // The client library for Swift services that call the gateway (and what gatewayctl is built on).
        .library(name: "GatewayClient", targets: ["GatewayClient"]),
        .executable(name: "gateway-bench", targets: ["gateway-bench"]),
        .executable(name: "gateway-codegen", targets: ["gateway-codegen"]),
        .library(name: "ProtoRuntime", targets: ["ProtoRuntime"]),
        .library(name: "RPCCore", targets: ["RPCCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Latency percentiles of gateway-bench.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: cLibraries
        + protos("StandardProtos")
        + protos("GatewayProtos", dependencies: ["StandardProtos"])
        + protos("ConformanceProtos", dependencies: ["StandardProtos"])
        + [
            // Runtime for generated messages: protobuf-c bridge, proto3 JSON, descriptors.
            .target(name: "ProtoRuntime", dependencies: ["CProtobufC"]),
            // Transport-agnostic RPC model: status, metadata, method descriptors, service and client protocols.
            .target(name: "RPCCore", dependencies: ["ProtoRuntime"]),
            // gRPC over HTTP/2: libnghttp2 driven sans-I/O from SwiftNIO channels; server and client.
            .target(
                name: "RPCHTTP2",
                dependencies: [
                    "RPCCore", "CNGHTTP2", "CZlib", "OpenSSLTLS",
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                ]
            ),

            // Domain: entities, values with validation, domain errors. Knows nothing of gRPC, C or I/O.
            .target(name: "GatewayDomain"),
            // Application layer: use cases and the ports they need. No C module, no transport.
            .target(name: "GatewayApplication", dependencies: ["GatewayDomain"]),
            // Adapters kept in process memory: the reference behaviour of each port, for unit tests.
            .target(name: "MemoryAdapters", dependencies: ["GatewayApplication", "OpenSSLCrypto"]),
            // The embedded default: SQLite records (and later local blobs and the event log) under the data directory.
            .target(
                name: "EmbeddedAdapters",
                dependencies: ["GatewayApplication", "CSQLite", "OpenSSLCrypto", .product(name: "NIOPosix", package: "swift-nio")]
            ),

            // Adapters over C libraries: OpenSSL (digests, RSA, certificates).
            .target(name: "OpenSSLCrypto", dependencies: ["COpenSSL"]),
            // TLS over OpenSSL for NIO channels (an SSL object over memory BIOs), server and client.
            .target(
                name: "OpenSSLTLS",
                dependencies: ["COpenSSL", "OpenSSLCrypto", .product(name: "NIOCore", package: "swift-nio")]
            ),
            // Firebase ID token / session cookie verification (the TokenVerifier port), and local mode.
            .target(name: "FirebaseAuth", dependencies: ["GatewayApplication", "OpenSSLCrypto", "ProtoRuntime"]),
            // Composition root: configuration, interceptors, service implementations.
            .target(
                name: "GatewayServer",
                dependencies: [
                    "GatewayApplication", "RPCCore", "RPCHTTP2", "FirebaseAuth", "CurlHTTP", "StandardServices",
                    "GatewayProtos", "OpenSSLCrypto", "OpenSSLTLS", "EmbeddedAdapters", "AWSAdapters", .product(name: "Logging", package: "swift-log"),
                    // Observability: per-RPC metrics (swift-metrics), their Prometheus export on a plain HTTP/1.1 listener.
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Prometheus", package: "swift-prometheus"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                ]
            ),
            // The HTTPClient port over libcurl's multi interface.
            .target(name: "CurlHTTP", dependencies: ["CCurl", "GatewayApplication"]),
            // The AWS backend: SigV4, credentials, retries, and the DynamoDB, S3 and SNS adapters, over the
            // HTTPClient port (libcurl in production). No AWS SDK: the wire protocols are spoken directly.
            .target(
                name: "AWSAdapters",
                dependencies: [
                    "GatewayApplication", "OpenSSLCrypto", "ProtoRuntime", .product(name: "Logging", package: "swift-log"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                ]
            ),

            // grpc.health.v1 and server reflection (v1 and v1alpha), for any server.
            .target(name: "StandardServices", dependencies: ["RPCCore", "StandardProtos", "ProtoRuntime"]),

            // The interop spec's TestService (server side) and test cases (client side).
            .target(name: "InteropTesting", dependencies: ["RPCCore", "StandardProtos"]),
            .executableTarget(
                name: "interop-server",
                dependencies: [
                    "InteropTesting", "RPCHTTP2", "StandardServices", "StandardProtos", "OpenSSLTLS",
                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                ]
            ),

            .executableTarget(
                name: "interop-client",
                dependencies: [
                    "InteropTesting", "RPCHTTP2", "RPCCore", "OpenSSLTLS",
                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                ]
            ),

            // Code generator (reads protoc's descriptor sets through protobuf-c).
            .target(
                name: "CDescriptorProtos",
                dependencies: ["CProtobufC"],
                path: "codegen/CDescriptorProtos"
            ),
            .target(
                name: "ProtoCodegen",
                dependencies: ["CDescriptorProtos", "CProtobufC", "ProtoRuntime"],
                path: "codegen/ProtoCodegen"
            ),
            .executableTarget(name: "gateway-codegen", dependencies: ["ProtoCodegen"], path: "codegen/gateway-codegen"),

            .executableTarget(
                name: "gateway",
                dependencies: [
                    "GatewayServer", "CurlHTTP", "GatewayApplication", "FirebaseAuth", "AWSAdapters",
                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Prometheus", package: "swift-prometheus"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                ]
            ),
            // Typed clients for the gateway's services over RPCHTTP2, with tokens, deadlines and retries of reads.
            .target(
                name: "GatewayClient",
                dependencies: ["GatewayProtos", "StandardProtos", "RPCCore", "RPCHTTP2", "OpenSSLTLS", "ProtoRuntime", "CurlHTTP", "GatewayApplication"]
            ),
            .executableTarget(
                name: "gatewayctl",
                dependencies: [
                    "GatewayClient", "FirebaseAuth", "OpenSSLCrypto", "GatewayApplication",
                    // Reads the FileDescriptorProtos that server reflection returns (list, describe, call).
                    "ProtoCodegen", "ProtoRuntime",
                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                ]
            ),
            // The load generator of gateway-bench: scenarios over our client transport, HdrHistogram latencies.
            .target(
                name: "LoadGenerator",
                dependencies: [
                    "RPCCore", "RPCHTTP2", "StandardProtos", "GatewayProtos", "ProtoRuntime",
                    .product(name: "Histogram", package: "hdrhistogram-swift"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                ]
            ),
            .executableTarget(
                name: "gateway-bench",
                dependencies: [
                    "GatewayServer", "FirebaseAuth", "GatewayApplication", "OpenSSLCrypto", "LoadGenerator", "InteropTesting",
                    "RPCHTTP2", "RPCCore", "OpenSSLTLS",
                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                    .product(name: "Logging", package: "swift-log"),
                ]
            ),
            // Black-box peer for the Python codec interop suite (Tests/interop).
            .executableTarget(name: "codec-conformance", dependencies: ["ConformanceProtos", "GatewayProtos", "ProtoRuntime"]),
            // The codec fuzz property (scripts/fuzz), shared by the libFuzzer target and the corpus replay test.
            .target(name: "CodecFuzzing", dependencies: ["ConformanceProtos", "GatewayProtos", "StandardProtos", "ProtoRuntime", "ProtoCodegen"]),
            .executableTarget(name: "codec-fuzz", dependencies: ["CodecFuzzing", "AWSAdapters", "RPCHTTP2", "FirebaseAuth", "GatewayServer"]),
            // Codec throughput, printed next to upb and swift-protobuf by scripts/bench-codec.
            .executableTarget(name: "codec-bench", dependencies: ["GatewayProtos", "StandardProtos", "ProtoRuntime"]),

            .testTarget(
                name: "ProtoRuntimeTests",
                dependencies: ["ProtoRuntime", "ConformanceProtos", "StandardProtos", "CodecFuzzing"],
                resources: [.copy("FuzzCorpus")]
            ),
            .testTarget(name: "GatewayApplicationTests", dependencies: ["GatewayApplication", "MemoryAdapters"]),
            // Starts the moto server (Tests/aws/moto_peer.py), the AWS stand-in of the tests that need one.
            .target(name: "MotoSupport", dependencies: ["CurlHTTP", "GatewayApplication"], path: "Tests/MotoSupport"),
            // One contract suite per port, run against every adapter.
            .testTarget(
                name: "AdapterContractTests",
                dependencies: [
                    "GatewayApplication", "MemoryAdapters", "EmbeddedAdapters", "AWSAdapters", "CurlHTTP", "MotoSupport", "OpenSSLCrypto",
                    .product(name: "Logging", package: "swift-log"),
                ]
            ),
            .testTarget(name: "ProtoCodegenTests", dependencies: ["ProtoCodegen", "ProtoRuntime", "ConformanceProtos", "StandardProtos"]),
            .testTarget(
                name: "AWSAdapterTests",
                dependencies: ["AWSAdapters", "CurlHTTP", "MotoSupport", "GatewayApplication", "OpenSSLCrypto", "ProtoRuntime", .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
                resources: [.copy("FuzzCorpus")]
            ),
            .testTarget(name: "RPCCoreTests", dependencies: ["RPCCore", "StandardProtos"]),
            // The client library's retry policy and token refresh, against a scripted server over real HTTP/2.
            .testTarget(name: "GatewayClientTests", dependencies: ["GatewayClient"]),
            .testTarget(name: "LoadGeneratorTests", dependencies: ["LoadGenerator"]),
            .testTarget(name: "GatewayServerTests", dependencies: ["GatewayServer", "FirebaseAuth", "CurlHTTP", .product(name: "NIOPosix", package: "swift-nio"), "GatewayApplication", "MemoryAdapters", "GatewayProtos", "RPCCore", "StandardProtos", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus")], resources: [.copy("FuzzCorpus")]),
            .testTarget(
                name: "FirebaseAuthTests", dependencies: ["FirebaseAuth", "GatewayApplication", "OpenSSLCrypto", "ProtoRuntime"],
                resources: [.copy("FuzzCorpus")]
            ),
            .testTarget(
                name: "RPCHTTP2Tests",
                dependencies: [
                    "RPCHTTP2", "RPCCore", "StandardProtos", "StandardServices", "InteropTesting", "OpenSSLTLS",
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                ],
                resources: [.copy("FuzzCorpus")]
            ),
        ],
    swiftLanguageModes: [.v6]
)
