import ArgumentParser

@main
struct Gateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "A gRPC gateway for the users, files and events services.",
        subcommands: [Serve.self, Migrate.self, Token.self, VerifyToken.self],
        defaultSubcommand: Serve.self
    )
}
