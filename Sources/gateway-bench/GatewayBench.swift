import ArgumentParser

@main
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-bench",
        abstract: "Benchmarks of the gateway (the scripts/bench-* scripts run them next to a peer).",
        subcommands: [AuthBench.self]
    )
}
