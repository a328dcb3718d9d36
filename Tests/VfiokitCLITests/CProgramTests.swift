import Foundation
import Testing

/// Unmodified C programs under `vfiokit run`: the project's own conformance program, compiled
/// here with `cc`, and the kernel's VFIO selftests from `../shared/kselftests`.
@Suite("vfiokit run: C programs", .serialized)
struct CProgramTests {
    static let kselftestsAvailable = FileManager.default.isExecutableFile(atPath: CLI.packageRoot.deletingLastPathComponent().path + "/shared/kselftests/build.sh")

    /// `cc -O2 [flags] source -o temp`; the binary's path.
    static func compile(_ source: String, flags: [String] = []) throws -> String {
        let binary = CLI.temporaryPath("cprogram")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["cc", "-Wall", "-Werror", "-O2"] + flags + ["-o", binary, CLI.packageRoot.appendingPathComponent(source).path]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "cc \(source) failed")
        return binary
    }

    @Test("Tests/CPrograms/vfio_conformance.c passes every check under vfiokit run (paths, fds, ioctls, trapped registers, DMA, MSI-X, FEATURE, IOEVENTFD, fork)")
    func conformanceProgram() throws {
        let binary = try Self.compile("Tests/CPrograms/vfio_conformance.c")
        defer { try? FileManager.default.removeItem(atPath: binary) }
        let result = try CLI.run(["run", "--machine", "default", "--", binary, "0000:5f:00.0"])
        let failed = result.stdout.split(separator: "\n").filter { $0.hasPrefix("not ok") }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))\n\(result.stderr)")
        #expect(result.stdout.contains("# 0 of 68 checks failed"), "\(result.stdout.suffix(400))")
        #expect(result.status == 0)
    }

    @Test("the program's exit status is run's; a --bind naming no function is a usage error (64); a missing program is 127")
    func exitStatus() throws {
        #expect(try CLI.run(["run", "--", "/bin/sh", "-c", "exit 3"]).status == 3)
        #expect(try CLI.run(["run", "--", "/bin/sh", "-c", "kill -KILL $$"]).status == 128 + 9)
        let unbound = try CLI.run(["run", "--bind", "0000:42:00.0", "--", "/bin/true"])
        #expect(unbound.status == 64 && unbound.stderr.contains("0000:42:00.0"), "\(unbound.stderr)")
        #expect(try CLI.run(["run", "--", "/nonexistent/program"]).status == 127)
    }

    @Test("the program sees the machine's sysfs and /dev/vfio, and the host's other paths")
    func paths() throws {
        let script = """
            readlink /sys/bus/pci/devices/0000:00:04.0/iommu_group; readlink /sys/bus/pci/devices/0000:00:04.0/driver; \
            cat /sys/kernel/iommu_groups/1/type; ls /dev/vfio; cat /sys/module/vfio_iommu_type1/parameters/dma_entry_limit; \
            test -e /etc/hostname && echo host-paths
            """
        let result = try CLI.run(["run", "--bind", "0000:00:04.0", "--", "/bin/sh", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasSuffix("kernel/iommu_groups/1") == true, "\(lines)")
        #expect(lines.dropFirst().first?.hasSuffix("bus/pci/drivers/vfio-pci") == true, "\(lines)")
        #expect(lines.contains("DMA-FQ") || lines.contains("DMA"), "\(lines)")
        #expect(lines.contains("1") && lines.contains("vfio") && lines.contains("65535") && lines.contains("host-paths"), "\(lines)")
    }

    @Test("--dump: a dump's function bound with --bind is the program's only /dev/vfio group, below its bridges in /sys/devices")
    func dumpSource() throws {
        let dump = CLI.packageRoot.appendingPathComponent("devices/default/lspci-xxxx.txt").path
        let result = try CLI.run([
            "run", "--dump", dump, "--bind", "0000:03:00.0", "--", "/bin/sh", "-c",
            "ls /dev/vfio; readlink /sys/bus/pci/devices/0000:03:00.0; readlink /sys/bus/pci/devices/0000:03:00.0/iommu_group",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.split(separator: "\n") == ["8", "devices", "vfio", "../../../devices/pci0000:00/0000:00:1c.4/0000:03:00.0", "../../../../kernel/iommu_groups/8"],
            "\(result.stdout)")
    }

    /// TAP results of one selftest binary: `name` → the line after `ok`/`not ok N`.
    static func tap(_ output: String) -> [(name: String, ok: Bool, skipped: Bool)] {
        output.split(separator: "\n").compactMap { line in
            let ok = line.hasPrefix("ok ")
            guard ok || line.hasPrefix("not ok ") else { return nil }
            let words = line.split(separator: " ")
            let name = String(words[ok ? 2 : 3])
            return (name, ok, line.contains("# SKIP"))
        }
    }

    /// The kernel selftests run on 0000:00:04.0 (the CBDMA of `devices/default`) and how many cases
    /// each has: every IOMMU mode — type1, type1v2, iommufd's compat type1/type1v2 and native
    /// iommufd (the selftests' default) — for the binaries that take modes.
    static let selftests: [(binary: String, cases: Int)] = [
        ("vfio_dma_mapping_test", 30), ("vfio_dma_mapping_mmio_test", 15), ("vfio_iommufd_setup_test", 6),
        ("vfio_pci_device_test", 5), ("vfio_pci_driver_test", 35),
    ]

    @Test(
        "the kernel's VFIO selftests pass every case on 0000:00:04.0 in all five IOMMU modes",
        .enabled(if: kselftestsAvailable, "../shared/kselftests is absent: the kernel selftests are not run"),
        arguments: selftests)
    func kernelSelftest(_ binary: String, cases count: Int) throws {
        let directory = try Self.builtSelftests()
        let result = try CLI.run(["run", "--machine", "default", "--bind", "0000:00:04.0", "--", directory + "/" + binary, "0000:00:04.0"])
        let cases = Self.tap(result.stdout)
        #expect(result.status == 0, "\(result.stdout.suffix(3000))\n\(result.stderr.suffix(2000))")
        #expect(cases.count == count, "\(result.stdout.suffix(2000))")
        for test in cases {
            #expect(test.ok, "\(test.name) failed:\n\(result.stdout)")
            // The hugetlb variants skip where the host has no huge pages, as on Linux; the reset case
            // where the device has no reset method (the CBDMA is an RCiEP without FLR).
            if test.skipped { #expect(test.name.contains("hugetlb") || test.name.hasSuffix(".reset"), "\(test.name) skipped") }
        }
    }

    @Test(
        "the kernel's vfio_pci_device_init_perf_test: three devices opened at once from three threads, in all five IOMMU modes",
        .enabled(if: kselftestsAvailable, "../shared/kselftests is absent: the kernel selftests are not run"))
    func concurrentInit() throws {
        let directory = try Self.builtSelftests()
        let result = try CLI.run([
            "run", "--machine", "default", "--bind", "0000:00:04.0", "--bind", "0000:00:04.1", "--",
            directory + "/vfio_pci_device_init_perf_test", "0000:00:04.0", "0000:00:04.1", "0000:5f:00.0",
        ])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("# Totals: pass:5 fail:0"), "\(result.stdout)")
    }

    /// `$VFIOKIT_KSELFTESTS` (CI builds them once), else built here into a temporary directory.
    static func builtSelftests() throws -> String {
        if let prebuilt = ProcessInfo.processInfo.environment["VFIOKIT_KSELFTESTS"],
            FileManager.default.isExecutableFile(atPath: prebuilt + "/vfio_dma_mapping_test")
        {
            return prebuilt
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-kselftests").path
        if FileManager.default.isExecutableFile(atPath: directory + "/vfio_dma_mapping_mmio_test") { return directory }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [CLI.packageRoot.appendingPathComponent(".ci/build-kselftests").path, directory]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "building the kernel selftests failed (needs gcc, uuid-dev, libcap-dev)")
        return directory
    }
}

extension CProgramTests {
    /// `Tests/CPrograms/nvme_bringup.c`: a userspace NVMe driver's bring-up of 0000:5e:00.0, in
    /// plain C against `<linux/vfio.h>`, under `vfiokit run`.
    @Test(
        "Tests/CPrograms/nvme_bringup.c brings the NVMe controller up end to end under vfiokit run: identify, number of queues, namespace list and descriptors, I/O queue pairs, write, read back, flush, an outstanding AER, a polled and an interrupt-driven completion, shutdown"
    )
    func nvmeBringUpProgram() throws {
        let binary = try Self.compile("Tests/CPrograms/nvme_bringup.c")
        defer { try? FileManager.default.removeItem(atPath: binary) }
        let result = try CLI.run(["run", "--machine", "default", "--", binary, "0000:5e:00.0"])
        let lines = result.stdout.split(separator: "\n")
        let failed = lines.filter { $0.hasPrefix("not ok") }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))\n\(result.stderr)")
        #expect(lines.filter { $0.hasPrefix("ok ") }.count == 46, "\(result.stdout)")
        for step in ["Set Features Number of Queues", "namespace identification descriptor list: NGUID", "polled completion", "interrupt-driven completion",
            "the blocks read back are the pattern written", "Flush NSID FFFFFFFFh", "is still outstanding", "shutdown complete"] {
            #expect(lines.contains { $0.hasPrefix("ok ") && $0.contains(step) }, "no passing step \"\(step)\"")
        }
        #expect(result.stdout.hasSuffix("# nvme bring-up of 0000:5e:00.0: complete\n# 0 of 46 checks failed\n"), "\(result.stdout.suffix(400))")
        #expect(result.status == 0)
    }
}
