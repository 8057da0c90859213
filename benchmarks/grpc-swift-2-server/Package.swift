// swift-tools-version: 6.0
// Template of the grpc-swift-2 peer for scripts/bench: a grpc.testing.BenchmarkService server on grpc-swift-2
// and its HTTP/2 transport over SwiftNIO. scripts/bench copies this folder to .cache/bench/grpc-swift-2-server
// (git-ignored), generates the messages and the service from Debian's grpc-proto with protoc-gen-swift and
// protoc-gen-grpc-swift-2 (built from the dependencies below), then builds it. Not part of the gateway package,
// so the main build never compiles grpc-swift-2.
import PackageDescription

let package = Package(
    name: "grpc-swift-2-server",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        .executableTarget(
            name: "grpc-swift-2-bench-server",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
