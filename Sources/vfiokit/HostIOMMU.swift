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

    init(layout: HostSysfsLayout, platform: IOMMUPlatformKind) {
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
        remedy = Self.remedy(for: platform)
    }

    /// The switches that turn the IOMMU on, for the platform the root buses suggest.
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
    var noticeLines: [String] {
        guard let reason else { return [] }
        return ["\(reason)."] + remedy.map { "  to enable it: \($0)" }
            + ["  The groups shown are what the kernel would form with the IOMMU on, not groups that exist."]
    }
}
