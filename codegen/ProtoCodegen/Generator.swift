/// The generator's entry points, independent of the file system.
public enum Generator {
    /// Generated Swift sources, by module name and file name.
    public static func swiftSources(
        descriptorSet set: DescriptorSet,
        modules: [(name: String, files: [String])]
    ) throws -> [String: [String: String]] {
        var moduleOfFile: [String: String] = [:]
        for m in modules {
            for f in m.files {
                guard set.file(named: f) != nil else { throw CodegenError("\(f) is not in the descriptor set") }
                moduleOfFile[f] = m.name
            }
        }
        let table = TypeTable(files: set.files, moduleOfFile: moduleOfFile)
        if let cycle = table.recursiveMessage(in: set.files) {
            throw CodegenError(
                "recursive message types are not supported (protobuf-c decodes them without a depth limit): "
                    + cycle.joined(separator: " → ")
            )
        }
        var out: [String: [String: String]] = [:]
        for m in modules {
            let files = m.files.compactMap { set.file(named: $0) }
            var sources: [String: String] = [:]
            for f in files {
                sources[FileGenerator.outputName(for: f.name)] = try FileGenerator(file: f, module: m.name, table: table).generate()
            }
            let registry = ModuleGenerator(
                module: m.name, files: files, table: table, descriptorSet: try set.serializedSet(of: m.files)
            )
            sources[registry.typeName + ".swift"] = try registry.generate()
            out[m.name] = sources
        }
        return out
    }
}
