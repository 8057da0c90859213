// swift-tools-version: 6.0
// A backend service that calls the gateway through the GatewayClient library. Copy this package to start
// your own; point the dependency at the gateway's repository instead of the path.
import PackageDescription

let package = Package(
    name: "gateway-examples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gateway", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "profile-service",
            dependencies: [.product(name: "GatewayClient", package: "gateway")]
        ),
    ]
)
