import CurlHTTP
import Foundation
import GatewayApplication
import Synchronization

/// A moto server (the AWS stand-in of the tests, `Tests/aws/moto_peer.py`) on a free loopback port, started
/// by the first test that needs it and shared by the test process; it exits with the process. Tests isolate
/// themselves with names of their own (a table, a bucket, a topic per test), not by resetting it.
public final class MotoServer: Sendable {
    public let endpoint: String
    private let process: Process

    private static let shared = Mutex<Task<MotoServer, any Error>?>(nil)

    /// The shared default server (no signature checks).
    public static func start() async throws -> MotoServer {
        let task = shared.withLock { task in
            if let task { return task }
            let started = Task { try MotoServer(environment: [:]) }
            task = started
            return started
        }
        return try await task.value
    }

    /// A server of its own with moto's signature checking on after `unauthenticatedRequests` requests
    /// (`INITIAL_NO_AUTH_ACTION_COUNT`). Stop it with `stop()`.
    public static func startStrict(unauthenticatedRequests: Int) throws -> MotoServer {
        try MotoServer(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "\(unauthenticatedRequests)"])
    }

    private init(environment: [String: String]) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = root.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw MotoUnavailable(description: "\(python.path) is missing: run scripts/bootstrap")
        }
        let process = Process()
        process.executableURL = python
        process.arguments = [root.appendingPathComponent("Tests/aws/moto_peer.py").path, "--exit-with-parent"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line: [UInt8] = []
        while let byte = try output.fileHandleForReading.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") {
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening on "), let port = text.split(separator: ":").last else {
            process.terminate()
            throw MotoUnavailable(description: "moto_peer.py did not start: \(text)")
        }
        self.endpoint = "http://127.0.0.1:\(port)"
        self.process = process
    }

    public func stop() {
        process.terminate()
        process.waitUntilExit()
    }

    /// A name no other test uses (tables, buckets, topics).
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.lowercased().prefix(12))"
    }

    /// Requests per AWS operation and connections seen since the last `resetStats` (see moto_peer.py).
    public func stats() async throws -> (requests: [String: Int], connections: Int) {
        let (data, _) = try await control("GET", "/_peer/stats")
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        return (json["requests"] as? [String: Int] ?? [:], json["connections"] as? Int ?? 0)
    }

    /// Answers every `every`-th request of `services` with `status` and `code` instead of passing it on (0: off).
    public func injectFaults(every: Int, status: Int = 503, code: String = "ServiceUnavailable", services: [String]? = nil) async throws {
        var body: [String: Any] = ["every": every, "status": status, "code": code]
        if let services { body["services"] = services }
        _ = try await control("POST", "/_peer/faults", body: try JSONSerialization.data(withJSONObject: body))
    }

    private func control(_ method: String, _ path: String, body: Data? = nil) async throws -> (Data, Int) {
        let response = try await Self.http.send(HTTPRequest(method: method, url: endpoint + path, body: Array(body ?? Data())))
        return (Data(response.body), response.status)
    }

    /// Our libcurl client (Foundation's URLSession leaks inside libcurl under LeakSanitizer).
    private static let http = CurlHTTPClient()
}

public struct MotoUnavailable: Error, CustomStringConvertible {
    public var description: String
}
