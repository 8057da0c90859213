// swift-tools-version: 6.0
// Template of the swift-protobuf peer for scripts/bench-codec, which copies this folder to
// .cache/bench/swift-protobuf-peer (git-ignored), builds protoc-gen-swift there, generates
// Sources/swift-protobuf-bench/Generated from proto/ and builds the executable. Not part of the gateway package.
import PackageDescription

let package = Package(
    name: "swift-protobuf-peer",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        .executableTarget(
            name: "swift-protobuf-bench",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
