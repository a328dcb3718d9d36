import Foundation
import Testing

/// A dump captured short (issue 19 §3): `lspci -xxx` (256 bytes) loses the extended capabilities,
/// ACS among them, and moves functions into other groups; `lspci -x` (64 bytes) loses every
/// capability. Either marks the groups unreliable with one line saying which functions and how to
/// re-capture, instead of silence or a complaint per function.
@Suite("Dumps captured short: one note, groups unreliable")
struct CaptureNoteTests {
    /// `devices/switch-nonacs`'s dump with every function cut to `bytes`.
    static func cut(to bytes: Int) throws -> String {
        let full = try String(contentsOfFile: CLI.packageRoot.path + "/devices/switch-nonacs/lspci-xxxx.txt", encoding: .utf8)
        // A row is "OFF: xx xx ...": keep the header lines and the rows below `bytes`.
        let kept = full.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            guard let colon = line.firstIndex(of: ":"), line[colon...].hasPrefix(": "), (2...3).contains(line[..<colon].count),
                let offset = Int(line[..<colon], radix: 16)
            else { return true }
            return offset < bytes
        }
        return try CLI.writeTemporary(kept.joined(separator: "\n"))
    }

    @Test("the full capture: reliable, no note")
    func full() throws {
        let result = try CLI.run(["groups", "--dump", CLI.packageRoot.path + "/devices/switch-nonacs/lspci-xxxx.txt", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("captured short"))
        #expect(try result.json()["groupsReliable"] as? Bool == true)
    }

    @Test("256 bytes (lspci -xxx): the groups change, and the note says so once with the re-capture command")
    func noExtendedSpace() throws {
        let path = try Self.cut(to: 256)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.run(["groups", "--dump", path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
        #expect(warnings.count == 1, "\(result.stderr)")
        #expect(warnings.first?.contains("PCI Express functions have no extended config space (lspci -xxx, 256 bytes; 0000:00:01.0") == true, "\(result.stderr)")
        #expect(warnings.first?.contains("sudo lspci -xxxx") == true)
        let json = try result.json()
        #expect(json["groupsReliable"] as? Bool == false)
        #expect((json["groupsUnreliableReason"] as? String)?.hasPrefix("dump captured short: ") == true)
        // The cut really moves functions: the full capture has 13 groups.
        #expect((json["groups"] as? [Any])?.count != 13)
        let text = try CLI.run(["groups", "--dump", path])
        #expect(text.stdout.contains("groups: UNRELIABLE (the dump was captured short"))
    }

    @Test("64 bytes (lspci -x): one note for all functions instead of a capability complaint per function")
    func headerOnly() throws {
        let path = try Self.cut(to: 64)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.run(["topology", "--dump", path])
        #expect(result.status == 0, "\(result.stderr)")
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
        #expect(warnings.count == 1, "\(result.stderr)")
        #expect(warnings.first?.contains("have only the 64-byte header (lspci -x;") == true)
        #expect(!result.stderr.contains("beyond the captured config space"))
        let json = try CLI.run(["explain", "03:00.0", "--dump", path, "--json"]).json()
        #expect(json["groupsReliable"] as? Bool == false)
        #expect((json["warnings"] as? [String])?.count == 1)
    }
}
