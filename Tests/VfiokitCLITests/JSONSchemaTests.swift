import Foundation
import Testing

/// `docs/vfiokit.schema.json` is the script contract (issue 19 §5): real output of every command
/// under `--json` must satisfy it, so the file cannot drift from what the commands print.
@Suite("docs/vfiokit.schema.json describes real --json output")
struct JSONSchemaTests {
    /// A JSON value as the decoder read it: booleans and integers kept apart.
    indirect enum Value: Decodable {
        case null, bool(Bool), integer(Int), number(Double), string(String), array([Value]), object([String: Value])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .null }
            else if let value = try? container.decode(Bool.self) { self = .bool(value) }
            else if let value = try? container.decode(Int.self) { self = .integer(value) }
            else if let value = try? container.decode(Double.self) { self = .number(value) }
            else if let value = try? container.decode(String.self) { self = .string(value) }
            else if let value = try? container.decode([Value].self) { self = .array(value) }
            else { self = .object(try container.decode([String: Value].self)) }
        }

        var typeName: String {
            switch self {
            case .null: "null"
            case .bool: "boolean"
            case .integer: "integer"
            case .number: "number"
            case .string: "string"
            case .array: "array"
            case .object: "object"
            }
        }

        subscript(key: String) -> Value? { if case .object(let object) = self { object[key] } else { nil } }
    }

    static let schema: Value = {
        let data = FileManager.default.contents(atPath: CLI.packageRoot.path + "/docs/vfiokit.schema.json") ?? Data()
        return (try? JSONDecoder().decode(Value.self, from: data)) ?? .null
    }()

    /// The keywords the schema uses: type, required, properties, items, enum, $ref, allOf, oneOf.
    /// Returns one line per violation, with its JSON path.
    static func violations(of value: Value, against schema: Value, at path: String = "$") -> [String] {
        var found: [String] = []
        if case .string(let reference)? = schema["$ref"] {
            let name = String(reference.dropFirst("#/$defs/".count))
            guard let definition = Self.schema["$defs"]?[name] else { return ["\(path): unknown $ref \(reference)"] }
            found += violations(of: value, against: definition, at: path)
        }
        if case .array(let all)? = schema["allOf"] { for part in all { found += violations(of: value, against: part, at: path) } }
        if case .array(let any)? = schema["oneOf"], !any.contains(where: { violations(of: value, against: $0, at: path).isEmpty }) {
            found.append("\(path): matches none of oneOf")
        }
        if let type = schema["type"] {
            let allowed: [String] =
                switch type {
                case .string(let name): [name]
                case .array(let names): names.compactMap { if case .string(let name) = $0 { name } else { nil } }
                default: []
                }
            let actual = value.typeName
            if !allowed.contains(actual) && !(actual == "integer" && allowed.contains("number")) {
                found.append("\(path): \(actual), expected \(allowed.joined(separator: " or "))")
            }
        }
        if case .array(let options)? = schema["enum"] {
            let matches = options.contains { option in
                switch (option, value) {
                case (.string(let a), .string(let b)): a == b
                case (.null, .null): true
                default: false
                }
            }
            if !matches { found.append("\(path): \(value) is not one of the enum") }
        }
        if case .object(let object) = value {
            if case .array(let required)? = schema["required"] {
                for case .string(let key) in required where object[key] == nil { found.append("\(path): missing key \(key)") }
            }
            if case .object(let properties)? = schema["properties"] {
                for (key, property) in properties { if let child = object[key] { found += violations(of: child, against: property, at: "\(path).\(key)") } }
            }
        }
        if case .array(let elements) = value, let items = schema["items"] {
            for (index, element) in elements.enumerated() { found += violations(of: element, against: items, at: "\(path)[\(index)]") }
        }
        return found
    }

    static func check(_ arguments: [String], definition: String, status: Int32 = 0) throws {
        let result = try CLI.run(arguments + ["--json"])
        #expect(result.status == status, "\(arguments): \(result.stderr)")
        let value = try JSONDecoder().decode(Value.self, from: Data(result.stdout.utf8))
        let problems = violations(of: value, against: .object(["$ref": .string("#/$defs/\(definition)")]))
        #expect(problems.isEmpty, "\(arguments.joined(separator: " ")): \(problems.prefix(10).joined(separator: "\n"))")
    }

    @Test("the schema parses and defines every output")
    func schemaLoads() {
        for name in ["error", "groups", "explain", "topology", "check", "group", "plan", "member", "rule", "rules"] {
            #expect(Self.schema["$defs"]?[name] != nil, "\(name)")
        }
    }

    @Test("groups, explain, topology and report on machines, a host tree with kernel groups and one with the IOMMU off", arguments: [
        (["groups", "--machine", "default"], "groups"), (["groups", "--machine", "switch-nonacs", "-s", "04:"], "groups"),
        (["explain", "04:00.1", "--machine", "switch-nonacs"], "explain"), (["explain", "3d:00.0", "--machine", "default"], "explain"),
        (["topology", "--machine", "default"], "topology"), (["report", "--machine", "switch-nonacs"], "reliability"),
    ])
    func machines(_ arguments: [String], _ definition: String) throws {
        try Self.check(arguments, definition: definition)
    }

    @Test("host trees: kernel groups that differ, and the IOMMU off")
    func hosts() throws {
        let kernel = try HostTree(groups: try HostTree.manifestGroups(merging: ["0000:05:00.0", "0000:05:00.1"]), units: ["dmar0"])
        defer { kernel.remove() }
        let off = try HostTree(groups: nil, units: [])
        defer { off.remove() }
        for tree in [kernel, off] {
            try Self.check(["groups", "--sysfs", tree.sys], definition: "groups")
            try Self.check(["explain", "05:00.1", "--sysfs", tree.sys], definition: "explain")
            try Self.check(["topology", "--sysfs", tree.sys], definition: "topology")
        }
    }

    @Test("rules: one rule, the listing, and an unknown rule's error")
    func rules() throws {
        try Self.check(["rules", "IG-13"], definition: "rule")
        try Self.check(["rules"], definition: "rules")
        try Self.check(["rules", "XX-99"], definition: "error", status: 65)
    }

    @Test("check on a host tree, and errors of every status")
    func checkAndErrors() throws {
        let root = try CheckCommandTests.host()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.check(["check", "--root", root], definition: "check")
        try Self.check(["check", "--root", root + "/nonexistent"], definition: "error", status: 66)
        try Self.check(["groups", "--machine", "default", "--iommu", "bogus"], definition: "error", status: 64)
        try Self.check(["explain", "99:00.0", "--machine", "default"], definition: "error", status: 65)
        try Self.check(["groups", "--dump", "/nonexistent/dump"], definition: "error", status: 66)
    }

    @Test("the validator is not vacuous: a missing key, a wrong type and a stray enum value are caught")
    func validatorCatches() throws {
        let bad = try JSONDecoder().decode(Value.self, from: Data(#"{"error": {"errno": 5, "message": "m"}}"#.utf8))
        let problems = Self.violations(of: bad, against: .object(["$ref": .string("#/$defs/error")]))
        #expect(problems.contains("$.error: missing key rule"))
        #expect(problems.contains("$.error.errno: integer, expected string"))
        let verdict = try JSONDecoder().decode(Value.self, from: Data(#"{"item": "iommu", "title": "t", "verdict": "maybe", "detail": "d", "remedy": []}"#.utf8))
        let items = Self.schema["$defs"]?["check"]?["properties"]?["items"]?["items"] ?? .null
        #expect(Self.violations(of: verdict, against: items).count == 1)
    }
}
