import Foundation
import Testing

/// End-to-end tests of `vfiokit`: real processes, real exit codes, the JSON contract.
@Suite("vfiokit end to end")
struct VfiokitCommandTests {
    static let msiGold = CLI.sharedFixtures + "/gold/msi-ms7721-amd-fm2.lspci-nnvvvxxxx.txt"

    @Test("groups --json keeps the contract {groups: [{id, devices}]}", .enabled(if: CLI.sharedAvailable))
    func groupsJSONContract() throws {
        let result = try CLI.run(["groups", "--dump", Self.msiGold, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let groups = try #require(try result.json()["groups"] as? [[String: Any]])
        #expect(groups.count == 10)
        #expect(groups[1]["id"] as? Int == 1)
        #expect(groups[1]["devices"] as? [String] == ["0000:00:04.0", "0000:01:00.0"])
        let functions = try #require(groups[1]["functions"] as? [[String: Any]])
        #expect(functions[1]["rule"] as? String == "IG-11")
    }

    @Test("explain names the chain of reasons and the port lacking ACS", .enabled(if: CLI.sharedAvailable))
    func explain() throws {
        let result = try CLI.run(["explain", "01:00.0", "--dump", Self.msiGold])
        #expect(result.status == 0)
        #expect(result.stdout.contains("IOMMU group 1 with 0000:00:04.0, 0000:01:00.0"))
        #expect(result.stdout.contains("IG-11"))
        #expect(result.stdout.contains("0000:00:04.0 — IG-14"))
        #expect(result.stdout.contains("Root Port has no ACS capability"))
    }

    @Test("explain of an ungrouped function says why", .enabled(if: CLI.sharedAvailable))
    func explainUngrouped() throws {
        let result = try CLI.run(["explain", "00:00.2", "--dump", Self.msiGold, "--json"])
        #expect(result.status == 0)
        #expect((try result.json()["notGrouped"] as? String)?.contains("IOMMU") == true)
    }

    @Test("topology prints the tree with group IDs", .enabled(if: CLI.sharedAvailable))
    func topology() throws {
        let result = try CLI.run(["topology", "--dump", Self.msiGold])
        #expect(result.status == 0)
        #expect(result.stdout.contains("[0000:00]"))
        #expect(result.stdout.contains("04.0  [group 1]"))
        #expect(result.stdout.contains("[0000:01]"))
        #expect(result.stdout.contains("00.2  [no group]"))
    }

    @Test("report on this host says whether the kernel has groups and shows the computed ones")
    func hostReport() throws {
        let result = try CLI.run(["report", "--json"])
        guard result.status == 0 else {
            // A machine without a readable sysfs must fail cleanly with EX_IOERR.
            #expect(result.status == 74, "\(result.stderr)")
            return
        }
        let json = try result.json()
        let comparison = try #require(json["kernelComparison"] as? [String: Any])
        #expect(comparison["summary"] as? String != nil)
        #expect((json["groups"] as? [Any])?.isEmpty == false)
    }

    @Test("report lists ACS per port and reset methods", .enabled(if: CLI.sharedAvailable))
    func report() throws {
        let result = try CLI.run(["report", "--dump", CLI.sharedFixtures + "/pciutils-tests/tree-asus-p6t6"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Ports and bridges"))
        #expect(result.stdout.contains("Root Port"))
        #expect(result.stdout.contains("Reset methods:"))
        #expect(result.stdout.contains("a dump carries no kernel groups"))
    }

    struct Failure: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let status: Int32
        let message: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    @Test(
        "bad input: a clear message, a non-zero exit, no crash",
        arguments: [
            Failure(arguments: ["groups", "--dump", "/nonexistent.txt"], status: 66, message: "ENOENT: /nonexistent.txt"),
            Failure(arguments: ["groups", "--sysfs", "/nonexistent"], status: 66, message: "ENOENT: --sysfs /nonexistent: no such directory"),
            Failure(arguments: ["groups", "--machine", "no-such-machine"], status: 66, message: "machine \"no-such-machine\" not found"),
            Failure(arguments: ["explain", "zz:00.0"], status: 64, message: "not a PCI address"),
            Failure(arguments: ["groups", "--dump", "a", "--machine", "b"], status: 64, message: "at most one of"),
        ])
    func failures(_ failure: Failure) throws {
        let result = try CLI.run(failure.arguments)
        #expect(result.status == failure.status, "\(result.stderr)")
        #expect(result.stderr.contains(failure.message), "\(result.stderr)")
    }

    @Test("a capability loop fails with ELOOP naming the device; --allow-capability-loops reports it", .enabled(if: CLI.sharedAvailable))
    func capabilityLoop() throws {
        let path = CLI.sharedFixtures + "/pciutils-tests/broken-ecaps"
        let strict = try CLI.run(["groups", "--dump", path])
        #expect(strict.status == 65)
        #expect(strict.stderr.contains("ELOOP: 0000:00:00.0"))
        let tolerant = try CLI.run(["groups", "--dump", path, "--allow-capability-loops"])
        #expect(tolerant.status == 0)
        #expect(tolerant.stderr.contains("chain loops"))
    }

    @Test("a malformed dump names file and line")
    func malformed() throws {
        let path = try CLI.writeTemporary("00:00.0 Host bridge\n00: 86 80 zz\n\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.run(["groups", "--dump", path])
        #expect(result.status == 65)
        #expect(result.stderr.contains("\(path):2: malformed hex row"))
    }

    @Test("demo --json: the README's main job copies, verifies and contains a deliberate fault (VST-13)")
    func demo() throws {
        let result = try CLI.run(["demo", "--machine", "default", "--json", "--copies", "8"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try result.json()
        #expect(json["verified"] as? Bool == true)
        #expect(json["copies"] as? Int == 8)
        #expect(json["bytes"] as? Int == 8 * 65536)
        #expect(json["device"] as? String == "0000:5f:00.0")
        let faults = try #require(json["faults"] as? [[String: Any]])
        #expect(faults.count == 1)
        #expect(faults.first?["reason"] as? String == "not-present")
        #expect(faults.first?["iova"] as? String == "0xdead0000")
        let fault = try #require(json["deliberateFault"] as? [String: Any])
        #expect(fault["destinationUntouched"] as? Bool == true)
        #expect(fault["interruptRaised"] as? Bool == false)
    }

    @Test("usage errors exit 64 naming the option, before any work (issue 19 §5)",
        arguments: [
            (["groups", "--machine", "default", "--iommu", "smmuv3-99"], "--iommu smmuv3-99: no such IOMMU profile"),
            (["bench", "--functions", "0", "--suite", "grouping"], "--functions 0"),
            (["bench", "--repetitions", "0", "--suite", "grouping"], "--repetitions 0"),
        ])
    func usageErrors(_ arguments: [String], _ message: String) throws {
        let result = try CLI.run(arguments)
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!result.stderr.contains("/tmp/"), "\(result.stderr)")
    }

    @Test("demo --device naming a function with no memcpy engine says what it is and where the engine is (issue 19 §5)")
    func demoWrongDevice() throws {
        let result = try CLI.run(["demo", "--device", "1c:00.0"])
        #expect(result.status == 65, "\(result.stderr)")
        #expect(result.stderr.contains("--device 0000:1c:00.0 is a function of the dump, with no device model, not a memcpy engine (the machine's: 0000:5f:00.0)"), "\(result.stderr)")
        #expect(!result.stderr.contains("VG-01"), "\(result.stderr)")
    }

    @Test("demo prints byte totals past 32 bits: 65536 copies of 64 KiB are 4294967296 bytes, not 0 (issue 19 §8)")
    func demoLargeTotal() throws {
        let result = try CLI.run(["demo", "--machine", "default", "--copies", "65536"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("65536 copies × 65536 bytes = 4294967296 bytes in "), "\(result.stdout)")
    }

    @Test("demo --p2p: without ACS the peer's BAR changes and the IOMMU sees nothing; with ACS it faults (IG-11, IG-20)")
    func demoPeerToPeer() throws {
        let result = try CLI.run(["demo", "--p2p", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try result.json()
        #expect(json["contained"] as? Bool == true)
        let attempts = try #require(json["attempts"] as? [[String: Any]])
        #expect(attempts.map { $0["ingressPort"] as? String } == ["0000:19:10.0", "0000:19:08.0"])
        #expect(attempts.map { $0["peerMemoryChanged"] as? Bool } == [true, false])
        #expect(attempts.map { ($0["iommuFaults"] as? [Any])?.count } == [0, 1])
    }

    @Test("demo on a machine without a memcpy engine fails with a clear message")
    func demoWithoutEngine() throws {
        let result = try CLI.run(["demo", "--machine", "switch-nonacs"])
        #expect(result.status == 65)
        #expect(result.stderr.contains("has no memcpy engine"))
    }

    @Test("bench --json prints results with same-run baselines")
    func bench() throws {
        let result = try CLI.run(["bench", "--json", "--functions", "300", "--repetitions", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let results = try #require(try result.json()["results"] as? [[String: Any]])
        #expect(
            results.map { $0["name"] as? String } == [
                "grouping-300", "grouping-scaling", "translate-64k", "translate-scaling", "map-unmap-4k", "map-unmap-2m",
                "pt-bytes-per-page", "dma-map-unmap-64k", "dma-map-scaling", "container-translate-64k", "ioas-map-unmap-64k", "dma-copy-4k",
                "dma-copy-64k", "memcpy-storm", "grace-period", "cbdma-copy-64k", "mmio-trap", "preload-map-unmap", "preload-dma-copy-64k",
            ])
        #expect(results.allSatisfy { ($0["value"] as? Double ?? 0) > 0 })
        let bytesPerPage = try #require(results.first { $0["name"] as? String == "pt-bytes-per-page" })
        #expect((bytesPerPage["value"] as? Double ?? 99) <= 16, "memory per page is a property of the table, not of speed")
    }
}
