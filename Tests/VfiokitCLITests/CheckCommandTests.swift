import Foundation
import Testing

/// `vfiokit check --root DIR` against host trees written here: sys/, proc/ and dev/ as a real
/// host has them, each test changing one thing (issue 19, `vfiokit check`).
@Suite("vfiokit check: VFIO readiness of a host tree")
struct CheckCommandTests {
    /// A host that is ready: Intel IOMMU on with groups, remapped MSIs, vfio modules, device nodes,
    /// unlimited memlock. `change` edits it before the check runs.
    static func host(_ change: (String) throws -> Void = { _ in }) throws -> String {
        let root = CLI.temporaryPath("check")
        let files = FileManager.default
        func write(_ path: String, _ text: String) throws {
            try files.createDirectory(atPath: (root + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: root + path, atomically: true, encoding: .utf8)
        }
        func mkdir(_ path: String) throws { try files.createDirectory(atPath: root + path, withIntermediateDirectories: true) }
        try mkdir("/sys/class/iommu/dmar0")
        try mkdir("/sys/class/iommu/dmar1")
        for group in 0..<3 { try write("/sys/kernel/iommu_groups/\(group)/type", group == 2 ? "identity\n" : "DMA-FQ\n") }
        try write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro intel_iommu=on quiet\n")
        try write("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\n")
        try write("/proc/interrupts", "           CPU0\n 120:          0  IR-PCI-MSI-0000:00:14.0    0-edge      xhci_hcd\n")
        for module in ["vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1"] { try mkdir("/sys/module/\(module)") }
        try write("/dev/vfio/vfio", "")
        try write(
            "/proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units     \nMax locked memory         unlimited            unlimited            bytes     \n")
        try write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
        try change(root)
        return root
    }

    static func item(_ json: [String: Any], _ key: String) -> [String: Any]? {
        (json["items"] as? [[String: Any]])?.first { $0["item"] as? String == key }
    }

    @Test("a ready host: exit 0, no FAIL, every item on its own line")
    func ready() throws {
        let root = try Self.host()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try CLI.run(["check", "--root", root])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(!result.stdout.contains("FAIL"))
        #expect(result.stdout.contains("ok    IOMMU present and enabled  2 units: dmar0 dmar1"), "\(result.stdout)")
        #expect(result.stdout.contains("DMA-FQ ×2, identity ×1"))
        #expect(result.stdout.contains("interrupt remapping"))
        #expect(result.stdout.contains("ready: VFIO can take devices on this host"))
        let json = try CLI.run(["check", "--root", root, "--json"]).json()
        #expect(json["ready"] as? Bool == true)
        #expect(json["vendor"] as? String == "intel")
        #expect((json["items"] as? [[String: Any]])?.map { $0["item"] as? String } == [
            "iommu", "groups", "cmdline", "interruptRemapping", "domainType", "modules", "devVfio", "devIommu", "memlock", "hugepages",
        ])
        #expect(Self.item(json, "devIommu")?["verdict"] as? String == "info")
    }

    @Test("IOMMU off (no units, no groups, no intel_iommu=on): exit 1, FAIL lines saying what to change")
    func iommuOff() throws {
        let root = try Self.host { root in
            try FileManager.default.removeItem(atPath: root + "/sys/class/iommu")
            try FileManager.default.removeItem(atPath: root + "/sys/kernel/iommu_groups")
            try "root=/dev/sda1 ro quiet\n".write(toFile: root + "/proc/cmdline", atomically: true, encoding: .utf8)
            try "".write(toFile: root + "/proc/interrupts", atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try CLI.run(["check", "--root", root])
        #expect(result.status == 1)
        #expect(result.stdout.contains("FAIL  IOMMU present and enabled  no units in /sys/class/iommu"), "\(result.stdout)")
        #expect(result.stdout.contains("→ add intel_iommu=on to the kernel command line"))
        #expect(result.stdout.contains("→ enable VT-d"))
        #expect(result.stdout.contains("not ready: IOMMU present and enabled, IOMMU groups, kernel command line, interrupt remapping"))
        // Default output fits 132 columns: long remedies wrap under their own text (issue 19).
        let wide = result.stdout.split(separator: "\n").dropFirst().filter { (line: Substring) in line.count > 132 }
        #expect(wide.isEmpty, "lines over 132 columns: \(wide)")
        let json = try CLI.run(["check", "--root", root, "--json"]).json()
        #expect(json["ready"] as? Bool == false)
        #expect(Self.item(json, "iommu")?["verdict"] as? String == "fail")
        #expect(Self.item(json, "cmdline")?["verdict"] as? String == "fail")
    }

    @Test("intel_iommu=off on the command line: FAIL naming it, even with units present")
    func commandLineOff() throws {
        let root = try Self.host { root in
            try "ro intel_iommu=off\n".write(toFile: root + "/proc/cmdline", atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let json = try CLI.run(["check", "--root", root, "--json"]).json()
        let item = try #require(Self.item(json, "cmdline"))
        #expect(item["verdict"] as? String == "fail")
        #expect((item["remedy"] as? [String])?.first?.hasPrefix("remove intel_iommu=off") == true)
    }

    @Test("no remapped interrupts: FAIL (type1 refuses to attach); allow_unsafe_interrupts=Y makes it a warning")
    func interruptRemapping() throws {
        let root = try Self.host { root in
            try "           CPU0\n  24:   0  PCI-MSI 327680-edge  xhci_hcd\n".write(toFile: root + "/proc/interrupts", atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let off = try CLI.run(["check", "--root", root, "--json"])
        #expect(off.status == 1)
        #expect(Self.item(try off.json(), "interruptRemapping")?["verdict"] as? String == "fail")
        try FileManager.default.createDirectory(atPath: root + "/sys/module/vfio_iommu_type1/parameters", withIntermediateDirectories: true)
        try "Y\n".write(toFile: root + "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", atomically: true, encoding: .utf8)
        let unsafe = try CLI.run(["check", "--root", root, "--json"])
        #expect(unsafe.status == 0)
        #expect(Self.item(try unsafe.json(), "interruptRemapping")?["verdict"] as? String == "warn")
    }

    @Test("modules and /dev/vfio missing fail with modprobe vfio-pci; a small memlock limit warns")
    func modulesAndLimits() throws {
        let root = try Self.host { root in
            try FileManager.default.removeItem(atPath: root + "/sys/module")
            try FileManager.default.removeItem(atPath: root + "/dev/vfio")
            try "Max locked memory         8388608              8388608              bytes     \n".write(
                toFile: root + "/proc/self/limits", atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try CLI.run(["check", "--root", root])
        #expect(result.status == 1)
        #expect(result.stdout.contains("FAIL  vfio modules"))
        #expect(result.stdout.contains("→ modprobe vfio-pci"))
        #expect(result.stdout.contains("FAIL  /dev/vfio"))
        #expect(result.stdout.contains("warn  RLIMIT_MEMLOCK"))
        #expect(result.stdout.contains("8 MiB"))
    }

    @Test("--root that does not exist: 66 and the JSON error shape")
    func missingRoot() throws {
        let result = try CLI.run(["check", "--root", "/nonexistent-vfiokit-root", "--json"])
        #expect(result.status == 66)
        let error = try #require(try result.json()["error"] as? [String: Any])
        #expect(error["errno"] as? String == "ENOENT")
        #expect((error["message"] as? String)?.contains("--root /nonexistent-vfiokit-root") == true)
        #expect(error["rule"] is NSNull)
    }
}
