import ProtoCodegen
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let usage = """
usage: gateway-codegen lower <descriptor-set> <output>
           Writes the descriptor set reshaped for protoc-c (see DescriptorSet.loweredForProtobufC).
       gateway-codegen swift <descriptor-set> <output-dir> <Module>=<file.proto>[,<file.proto>...] ...
           Writes <output-dir>/<Module>/*.swift for the listed files of each module.
"""

func readFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw CodegenError("cannot open \(path)") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n == 0 { break }
        bytes += buffer[0..<n]
    }
    guard ferror(f) == 0 else { throw CodegenError("cannot read \(path)") }
    return bytes
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    guard let f = fopen(path, "wb") else { throw CodegenError("cannot create \(path)") }
    defer { fclose(f) }
    guard fwrite(bytes, 1, bytes.count, f) == bytes.count else { throw CodegenError("cannot write \(path)") }
}

func run(_ args: [String]) throws {
    switch args.first {
    case "lower" where args.count == 3:
        let set = try DescriptorSet(serialized: try readFile(args[1]))
        try writeFile(args[2], try set.loweredForProtobufC())
    case "swift" where args.count >= 4:
        let set = try DescriptorSet(serialized: try readFile(args[1]))
        let modules = try args[3...].map { spec -> (name: String, files: [String]) in
            let parts = spec.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw CodegenError("expected <Module>=<files>, got \(spec)") }
            return (String(parts[0]), parts[1].split(separator: ",").map(String.init))
        }
        for (module, sources) in try Generator.swiftSources(descriptorSet: set, modules: modules) {
            let dir = args[2] + "/" + module
            mkdir(dir, 0o755)
            for (name, text) in sources {
                try writeFile(dir + "/" + name, Array(text.utf8))
            }
        }
    default:
        throw CodegenError(usage)
    }
}

do {
    try run(Array(CommandLine.arguments.dropFirst()))
} catch {
    let message = Array("gateway-codegen: \(error)\n".utf8)
    _ = write(2, message, message.count)
    exit(1)
}
