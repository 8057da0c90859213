import ArgumentParser

@main
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-bench",
        abstract: "Load tests of gRPC servers and of the gateway (scripts/bench runs them next to peers).",
        subcommands: [BenchRun.self, BenchServer.self, BenchIdle.self, AuthBench.self]
    )
}
