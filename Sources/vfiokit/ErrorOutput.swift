import ArgumentParser
import Foundation
import KernelRules
import PCIBus

/// The one shape of a failure, for people and for scripts: `error: ERRNO: what and why (RULE)` on
/// stderr, and under `--json` also `{"error": {"errno": "ENOENT", "message": "...", "rule": null}}`
/// on stdout, every key always present.
struct ErrorReport: Encodable {
    struct Body: Encodable {
        let errno: String
        let message: String
        let rule: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(errno, forKey: .errno)
            try container.encode(message, forKey: .message)
            try container.encode(rule, forKey: .rule)
        }
        enum Keys: String, CodingKey { case errno, message, rule }
    }
    let error: Body
}

/// Says what failed (stderr, and stdout as JSON under --json); the caller exits with its status.
func reportError(errno: String, _ message: String, rule: String? = nil, json: Bool) throws {
    warn("error: \(errno): \(message)\(rule.map { " (\($0))" } ?? "")")
    if json { try printJSON(ErrorReport(error: .init(errno: errno, message: message, rule: rule))) }
}

func reportError(_ error: PCIBusError, json: Bool) throws {
    // The one failure an option turns into a warning: say which.
    let hint = error.kind == .capabilityLoop ? "; --allow-capability-loops reads it anyway, ending the chain there with a warning" : ""
    try reportError(errno: error.errno.symbolicName, error.message + hint, json: json)
}

func reportError<Layer>(_ error: SimulationError<Layer>, json: Bool) throws {
    try reportError(errno: error.errno.symbolicName, error.message, rule: error.rule == .none ? nil : error.rule.id, json: json)
}

extension VFIOKitCommand {
    /// ArgumentParser's own usage errors (exit 64) as the JSON error shape when `--json` is on the
    /// command line, so a script never has to parse prose.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            // An ExitCode was thrown after the command reported its own error.
            if arguments.contains("--json"), code.rawValue == 64, !(error is ExitCode) {
                let message = fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "usage error"
                let trimmed = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
                try? printJSON(ErrorReport(error: .init(errno: "EINVAL", message: trimmed, rule: nil)))
            }
            exit(withError: error)
        }
    }
}

/// An optional that encodes as `null` when absent instead of leaving its key out: every key of the
/// JSON contract is always present.
@propertyWrapper
struct Nullable<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}
