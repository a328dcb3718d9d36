import Foundation
import Testing

/// The script contract (issue 19 §5): under `--json` every failure is
/// `{"error": {"errno": …, "message": …, "rule": …}}` on stdout, every key present, and the exit
/// status is the documented one (64 usage, 65 bad input, 66 missing, 74 I/O, 1 the answer is no).
@Suite("Script contract: JSON errors and exit codes")
struct ScriptContractTests {
    struct Case: CustomStringConvertible, Sendable {
        let arguments: [String]
        let status: Int32
        let errno: String
        let message: String
        var description: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(arguments: ["groups", "--dump", "/nonexistent/lspci.txt"], status: 66, errno: "ENOENT", message: "/nonexistent/lspci.txt"),
        Case(arguments: ["groups", "--sysfs", "/nonexistent-sysfs"], status: 66, errno: "ENOENT", message: "--sysfs /nonexistent-sysfs: no such directory"),
        Case(arguments: ["report", "--sysfs", "/proc/self"], status: 66, errno: "ENOENT", message: "--sysfs /proc/self: no devices/ there or under bus/pci"),
        Case(arguments: ["topology", "--sysfs", "/etc/hostname"], status: 65, errno: "ENOTDIR", message: "--sysfs /etc/hostname: not a directory"),
        Case(arguments: ["groups", "--machine", "default", "--iommu", "smmuv3-99"], status: 64, errno: "EINVAL", message: "--iommu smmuv3-99: no such IOMMU profile"),
        Case(arguments: ["explain", "99:00.0", "--machine", "default"], status: 65, errno: "ENODEV", message: "0000:99:00.0 is not present"),
        Case(arguments: ["explain", "zz", "--machine", "default"], status: 64, errno: "EINVAL", message: "\"zz\" is not a PCI address"),
        Case(arguments: ["type", "999", "--machine", "default"], status: 65, errno: "ENOENT", message: "no IOMMU group 999"),
        Case(arguments: ["type", "13", "identity", "--unbind", "00:00.0", "--machine", "default"], status: 64, errno: "EINVAL", message: "--unbind 0000:00:00.0: not a function of IOMMU group 13"),
    ]

    @Test("each failure: its exit status, and the error object with errno, message and rule", arguments: cases)
    func jsonError(_ test: Case) throws {
        let result = try CLI.run(test.arguments + ["--json"])
        #expect(result.status == test.status, "\(result.stderr)")
        let json = try result.json()
        let error = try #require(json["error"] as? [String: Any], "\(result.stdout)")
        #expect(Set(error.keys) == ["errno", "message", "rule"])
        #expect(error["errno"] as? String == test.errno)
        #expect((error["message"] as? String)?.contains(test.message) == true, "\(error)")
        #expect(result.stderr.lowercased().contains("error: "))
        // Without --json: the same status, the prose on stderr, nothing on stdout to parse.
        let text = try CLI.run(test.arguments)
        #expect(text.status == test.status)
        #expect(text.stderr.contains(test.message) || text.stderr.contains("Error: "), "\(text.stderr)")
    }

    @Test("a malformed dump: 65, the error object names the line")
    func malformedDump() throws {
        let path = try CLI.writeTemporary("00:00.0 Host bridge: Intel Corporation Device 0d57\n00: 86 80 zz\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.run(["groups", "--dump", path, "--json"])
        #expect(result.status == 65, "\(result.stderr)")
        let error = try #require(try result.json()["error"] as? [String: Any])
        #expect((error["message"] as? String)?.contains(path) == true)
        #expect(error["rule"] is NSNull)
    }

    @Test("type refused by the kernel: exit 1 (the answer is no), the error object carries errno and rule")
    func typeRefused() throws {
        let result = try CLI.run(["type", "13", "identity", "--machine", "default", "--json"])
        #expect(result.status == 1)
        let json = try result.json()
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["errno"] as? String == "EPERM")
        #expect(error["rule"] as? String == "DT-05")
        let accepted = try CLI.run(["type", "13", "identity", "--unbind", "1c:00.0", "--machine", "default", "--json"])
        #expect(accepted.status == 0)
        #expect(try accepted.json()["error"] is NSNull)
    }
}

@Suite("Script contract: kernel group numbers in type, the capability-loop hint")
struct ScriptContractHostTests {
    @Test("type on a host with kernel groups takes the kernel's number (/dev/vfio/N)")
    func typeKernelNumber() throws {
        let tree = try HostTree(groups: try HostTree.manifestGroups(offset: 100), units: ["dmar0"])
        defer { tree.remove() }
        let result = try CLI.run(["type", "109", "--sysfs", tree.sys, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try result.json()["group"] as? Int == 109)
        let computedNumber = try CLI.run(["type", "9", "--sysfs", tree.sys, "--json"])
        #expect(computedNumber.status == 65)
        #expect((try computedNumber.json()["error"] as? [String: Any])?["message"] as? String == "no IOMMU group 9 in host sysfs \(tree.pci) (/sys/kernel/iommu_groups has \((100...112).map(String.init).joined(separator: " ")))")
    }

    @Test("type on a kernel group without a computed equal: EOPNOTSUPP, 65, naming the members")
    func typeKernelGroupWithoutEqual() throws {
        let tree = try HostTree(groups: try HostTree.manifestGroups(merging: ["0000:05:00.0", "0000:05:00.1"]), units: ["dmar0"])
        defer { tree.remove() }
        let result = try CLI.run(["type", "10", "identity", "--sysfs", tree.sys, "--json"])
        #expect(result.status == 65)
        let error = try #require(try result.json()["error"] as? [String: Any])
        #expect(error["errno"] as? String == "EOPNOTSUPP")
        #expect((error["message"] as? String)?.hasPrefix("kernel group 10 {0000:05:00.0 0000:05:00.1} has no computed equal") == true)
    }

    @Test("a capability loop names the option that reads it anyway")
    func loopHint() throws {
        let path = try InputErrorTests.capabilityLoopDump()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.run(["groups", "--dump", path, "--json"])
        #expect(result.status == 65, "\(result.stderr)")
        #expect(result.stderr.contains("; --allow-capability-loops reads it anyway, ending the chain there with a warning"))
        let error = try #require(try result.json()["error"] as? [String: Any])
        #expect(error["errno"] as? String == "ELOOP")
        #expect((error["message"] as? String)?.contains("--allow-capability-loops") == true)
    }
}
