import Foundation
import PCIBus

/// Where a host's sysfs lives, given `--sysfs`: the directory libpci scans (laid out as
/// `/sys/bus/pci`) and the sysfs root that holds `class/iommu` and `kernel/iommu_groups`.
/// `--sysfs /sys` and `--sysfs /sys/bus/pci` name the same host; a directory that is neither
/// (a tree a test wrote) is both at once.
struct HostSysfsLayout: Equatable {
    /// What libpci's sysfs method reads (`devices/DDDD:BB:DD.F`); nil for this host's own.
    let pciPath: String?
    /// The directory holding `class/iommu` and `kernel/iommu_groups`.
    let sysRoot: String

    init(sysfs: String?) {
        guard let sysfs else {
            pciPath = nil
            sysRoot = "/sys"
            return
        }
        let directory = sysfs.count > 1 && sysfs.hasSuffix("/") ? String(sysfs.dropLast()) : sysfs
        if FileManager.default.fileExists(atPath: directory + "/bus/pci/devices") {
            pciPath = directory + "/bus/pci"
            sysRoot = directory
        } else if directory.hasSuffix("/bus/pci") || directory == "bus/pci" {
            pciPath = directory
            let root = String(directory.dropLast("bus/pci".count))
            sysRoot = root.isEmpty ? "." : (root == "/" ? "/" : String(root.dropLast()))
        } else {
            pciPath = directory
            sysRoot = directory
        }
    }

    func path(_ relative: String) -> String { sysRoot == "/" ? "/" + relative : sysRoot + "/" + relative }
}

/// Whether a host (this one, or a `--sysfs` tree) has its IOMMU on, as sysfs shows it: the
/// IOMMU drivers register each unit under `/sys/class/iommu` (`iommu_device_sysfs_add`) and the
/// core creates `/sys/kernel/iommu_groups/N` for every group it forms (`iommu_group_alloc`). With
/// neither, no device has a group, `/dev/vfio` has nothing to open, and the groups a tool prints
/// are only what the kernel would form.
struct HostIOMMUState: Encodable, Equatable {
    /// The sysfs root examined.
    let sysfs: String
    /// Entries of `class/iommu` (`dmar0`, `ivhd0`, `smmu3.0x...`), sorted.
    let iommuUnits: [String]
    /// Numbers of the directories under `kernel/iommu_groups`, sorted.
    let kernelGroups: [Int]
    /// Units registered and groups formed.
    let enabled: Bool
    /// Why the host's groups cannot be trusted, when not enabled: what is missing.
    let reason: String?
    /// What to change, one step per line.
    let remedy: [String]

    init(layout: HostSysfsLayout) {
        sysfs = layout.sysRoot
        let files = FileManager.default
        let classPath = layout.path("class/iommu")
        let groupsPath = layout.path("kernel/iommu_groups")
        iommuUnits = ((try? files.contentsOfDirectory(atPath: classPath)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        kernelGroups = ((try? files.contentsOfDirectory(atPath: groupsPath)) ?? []).compactMap { Int($0) }.sorted()
        enabled = !iommuUnits.isEmpty && !kernelGroups.isEmpty
        if enabled {
            reason = nil
            remedy = []
            return
        }
        let missing = [
            iommuUnits.isEmpty ? "no IOMMU units in \(classPath)" : nil,
            kernelGroups.isEmpty ? "no groups in \(groupsPath)" : nil,
        ].compactMap { $0 }
        reason = "IOMMU off: \(missing.joined(separator: " and ")); VFIO can take no device on this host"
        remedy = HostIOMMUKind.read(sysRoot: layout.sysRoot, pciPath: layout.pciPath ?? "/sys/bus/pci").enableSteps
    }

    /// The switches that turn the IOMMU on, for one platform.
    static func remedy(for platform: IOMMUPlatformKind) -> [String] {
        switch platform {
        case .intelVTd:
            [
                "enable VT-d (Intel Virtualization Technology for Directed I/O) in the firmware setup",
                "add intel_iommu=on to the kernel command line (needed unless the kernel was built with CONFIG_INTEL_IOMMU_DEFAULT_ON), then reboot",
            ]
        case .amdVi:
            [
                "enable the IOMMU (AMD-Vi) in the firmware setup",
                "Linux turns AMD-Vi on by itself: remove amd_iommu=off or iommu=off from the kernel command line if present (amd_iommu=on is harmless), then reboot",
            ]
        case .armSMMUv3:
            ["enable the SMMU in the firmware (IORT table) and boot without iommu.passthrough=1 or arm-smmu-v3.disable_bypass=0 overrides, then reboot"]
        case .powerNV:
            ["PowerNV forms groups per PE when the IODA PHBs probe; check that the PHBs are not in bypass and that the kernel has CONFIG_SPAPR_TCE_IOMMU"]
        }
    }

    /// The text every command prints first when the IOMMU is off.
    /// Each item within `CompactLine.width` columns: wrapped at spaces, its continuation lines
    /// indented under the text after the item's own head ("IOMMU off: ", "  which IOMMU: ",
    /// "  to enable it: "); a word longer than the room (a long sysfs path) stays whole.
    var noticeLines: [String] {
        guard let reason else { return [] }
        func item(_ head: String, _ text: String) -> (String, String) {
            text.hasPrefix(head.drop { $0 == " " }) ? (head, String(text.dropFirst(head.count - head.prefix { $0 == " " }.count))) : ("  ", text)
        }
        let items = [item("IOMMU off: ", "\(reason).")]
            + remedy.map { $0.hasPrefix("which IOMMU: ") ? item("  which IOMMU: ", $0) : ("  to enable it: ", $0) }
            + [("  ", "The groups shown are what the kernel would form with the IOMMU on, not groups that exist.")]
        return items.flatMap { Self.hang($0.0, $0.1) }
    }

    /// `head + text` broken at spaces into lines of at most `width` columns, every line after the
    /// first indented by as many columns as `head` takes.
    static func hang(_ head: String, _ text: String, width: Int = CompactLine.width) -> [String] {
        CompactLine.fill(head, text.split(separator: " "), indent: String(repeating: " ", count: head.count), width: width)
    }
}

/// Which IOMMU a host has, for the steps that turn it on: the one decision that `check` and every
/// command's IOMMU-off notice share, so that on one machine they name the same switch. The
/// evidence, strongest first: the units the kernel registered (`dmar*` by the VT-d driver, `ivhd*`
/// by AMD-Vi, `smmu3.*` by SMMUv3); an AMD IOMMU function (class 0806, vendor 1022) on the bus;
/// the host bridges' vendor and the CPU's `vendor_id` in `/proc/cpuinfo`. Bare metal has the
/// bridge and the CPU of one vendor; where they disagree (a virtual machine's emulated chipset on
/// the other vendor's CPU, whose vIOMMU is the hypervisor's choice) both ways are given.
struct HostIOMMUKind: Equatable {
    /// One platform, or both x86 ones when the evidence is absent or disagrees.
    let platforms: [IOMMUPlatformKind]
    /// What decided it, said where the answer is not one platform.
    let why: String

    /// `check`'s JSON `vendor`: "intel", "amd", or nil when not one x86 platform.
    var vendor: String? {
        platforms == [.intelVTd] ? "intel" : platforms == [.amdVi] ? "amd" : nil
    }

    /// What to change, one step per line: the platforms' switches, preceded by the reason when
    /// there are two.
    var enableSteps: [String] {
        (platforms.count > 1 ? [why] : []) + platforms.flatMap { HostIOMMUState.remedy(for: $0) }
    }

    /// Decides from the evidence: `units` (entries of `class/iommu`), `hostBridgeVendors` (vendor
    /// IDs of class 0600 functions), `amdIOMMUFunction` (a class 0806 function of AMD), and the
    /// CPU as `/proc/cpuinfo` names it (`vendor_id`, or `CPU implementer` on Arm, `cpu : POWER`).
    static func decide(units: [String], hostBridgeVendors: [UInt16], amdIOMMUFunction: Bool, cpuinfo: String?) -> HostIOMMUKind {
        if units.contains(where: { $0.hasPrefix("dmar") }) { return HostIOMMUKind(platforms: [.intelVTd], why: "the kernel registered \(units[0])") }
        if units.contains(where: { $0.hasPrefix("ivhd") }) { return HostIOMMUKind(platforms: [.amdVi], why: "the kernel registered \(units[0])") }
        if units.contains(where: { $0.hasPrefix("smmu") }) { return HostIOMMUKind(platforms: [.armSMMUv3], why: "the kernel registered \(units[0])") }
        if amdIOMMUFunction { return HostIOMMUKind(platforms: [.amdVi], why: "an AMD IOMMU function (class 0806) is on the bus") }
        let lines = (cpuinfo ?? "").split(separator: "\n")
        func field(_ name: String) -> String? {
            lines.first { $0.hasPrefix(name) }.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
        }
        let cpuVendor = field("vendor_id")
        let cpu: IOMMUPlatformKind? =
            switch cpuVendor {
            case "GenuineIntel", "CentaurHauls", "Shanghai": .intelVTd
            case "AuthenticAMD", "HygonGenuine": .amdVi
            default: field("CPU implementer") != nil ? .armSMMUv3 : (field("cpu")?.hasPrefix("POWER") == true ? .powerNV : nil)
            }
        let bridgeKinds = Set(hostBridgeVendors.compactMap { vendor -> IOMMUPlatformKind? in
            switch vendor {
            case 0x8086, 0x1d17: .intelVTd
            case 0x1022, 0x1d94: .amdVi
            default: nil
            }
        })
        let bridge: IOMMUPlatformKind? = bridgeKinds.count == 1 ? bridgeKinds.first : nil
        let bridgeName = hostBridgeVendors.map { String(format: "%04x", $0) }.joined(separator: ", ")
        switch (bridge, cpu) {
        case let (bridge?, cpu?) where bridge == cpu:
            return HostIOMMUKind(platforms: [bridge], why: "the host bridge (\(bridgeName)) and the CPU (\(cpuVendor ?? "?")) agree")
        case let (bridge?, cpu?):
            return HostIOMMUKind(
                platforms: [.intelVTd, .amdVi],
                why: "which IOMMU: the host bridge is \(bridge == .intelVTd ? "Intel" : "AMD") (\(bridgeName)) but the CPU is \(cpuVendor ?? "\(cpu)"), "
                    + "as in a virtual machine, whose IOMMU is the one the hypervisor emulates (QEMU: -device intel-iommu or amd-iommu); both ways follow")
        case let (bridge?, nil):
            return HostIOMMUKind(platforms: [bridge], why: "the host bridge (\(bridgeName))")
        case let (nil, cpu?):
            return HostIOMMUKind(platforms: [cpu], why: "the CPU (\(cpuVendor ?? "\(cpu)"))")
        case (nil, nil):
            return HostIOMMUKind(
                platforms: [.intelVTd, .amdVi], why: "which IOMMU: neither the host bridge nor /proc/cpuinfo says Intel or AMD; both ways follow")
        }
    }

    /// Reads the evidence of a host: `class/iommu` under `sysRoot`, the functions under
    /// `pciPath/devices`, and `/proc/cpuinfo` beside `sysRoot` when it is a `sys` directory.
    static func read(sysRoot: String, pciPath: String) -> HostIOMMUKind {
        let files = FileManager.default
        func text(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
        func hex(_ path: String) -> UInt32? {
            text(path).flatMap { UInt32($0.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(2), radix: 16) }
        }
        let units = ((try? files.contentsOfDirectory(atPath: sysRoot + "/class/iommu")) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        var bridges: [UInt16] = []
        var amdIOMMU = false
        for name in ((try? files.contentsOfDirectory(atPath: pciPath + "/devices")) ?? []).sorted() {
            guard let vendor = hex("\(pciPath)/devices/\(name)/vendor"), let classCode = hex("\(pciPath)/devices/\(name)/class") else { continue }
            if classCode >> 8 == 0x0600, !bridges.contains(UInt16(vendor)) { bridges.append(UInt16(vendor)) }
            if classCode >> 8 == 0x0806, vendor == 0x1022 { amdIOMMU = true }
        }
        let trimmed = sysRoot.hasSuffix("/") && sysRoot.count > 1 ? String(sysRoot.dropLast()) : sysRoot
        let cpuinfo: String? =
            trimmed == "/sys" ? text("/proc/cpuinfo")
            : (trimmed as NSString).lastPathComponent == "sys" ? text((trimmed as NSString).deletingLastPathComponent + "/proc/cpuinfo") : nil
        return decide(units: units, hostBridgeVendors: bridges, amdIOMMUFunction: amdIOMMU, cpuinfo: cpuinfo)
    }
}
