import Foundation

/// Writes a directory in the layout libpci's sysfs method reads under `sysfs.path` (`lib/sysfs.c`:
/// `sysfs_scan`, `sysfs_fill_info`, `sysfs_read`): `devices/DDDD:BB:DD.F/` holding `config`,
/// `vendor`, `device`, `class`, `revision`, `subsystem_vendor`, `subsystem_device`, `irq` and
/// `resource`, with `driver` and `iommu_group` symlinks whose last component is the driver's name
/// and the group's number, as the kernel's sysfs has them. Tests point `--sysfs` or
/// `PCIConfigSource.host(sysfsPath:)` at it to play a host with kernel groups.
public enum SysfsTreeWriter {
    public struct Function: Sendable {
        public let address: PCIAddress
        /// What `config` holds: 4096 or 256 bytes as root reads them, 64 as an unprivileged reader does.
        public let config: [UInt8]
        public let driver: String?
        public let iommuGroup: Int?

        public init(address: PCIAddress, config: [UInt8], driver: String? = nil, iommuGroup: Int? = nil) {
            self.address = address
            self.config = config
            self.driver = driver
            self.iommuGroup = iommuGroup
        }
    }

    /// Writes a topology as a host: each function in its group of `kernelGroups` (none when
    /// absent) and bound to its driver of `drivers`.
    public static func write(
        _ topology: PCITopology, kernelGroups: [PCIAddress: Int], drivers: [PCIAddress: String], to root: String
    ) throws {
        try write(
            topology.functions.map {
                Function(
                    address: $0.address, config: $0.config.bytes, driver: drivers[$0.address],
                    iommuGroup: kernelGroups[$0.address])
            }, to: root)
    }

    /// Creates `root/devices/...` (and the link targets under `root/drivers` and
    /// `root/kernel/iommu_groups`); throws the file system's error naming the path it failed on.
    public static func write(_ functions: [Function], to root: String) throws {
        let files = FileManager.default
        for function in functions {
            let directory = "\(root)/devices/\(function.address)"
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let config = PCIConfigSpace(bytes: function.config)
            let attributes: [(String, String)] = [
                ("vendor", "0x" + hex(config.u16(PCIRegister.vendorID), width: 4)),
                ("device", "0x" + hex(config.u16(PCIRegister.deviceID), width: 4)),
                ("class", "0x" + hex(config.u32(PCIRegister.revision) >> 8, width: 6)),
                ("revision", "0x" + hex(config.u8(PCIRegister.revision), width: 2)),
                ("subsystem_vendor", "0x" + hex(config.u16(PCIRegister.subsystemVendorID), width: 4)),
                ("subsystem_device", "0x" + hex(config.u16(PCIRegister.subsystemID), width: 4)),
                ("irq", "0"),
                // start, end, flags for 6 BARs, the ROM and the bridge windows: all unassigned.
                ("resource", Array(repeating: "0x0000000000000000 0x0000000000000000 0x0000000000000000", count: 13).joined(separator: "\n")),
            ]
            for (name, value) in attributes {
                try Data((value + "\n").utf8).write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
            }
            try Data(function.config).write(to: URL(fileURLWithPath: "\(directory)/config"))
            if let driver = function.driver {
                try files.createDirectory(atPath: "\(root)/drivers/\(driver)", withIntermediateDirectories: true)
                try files.createSymbolicLink(atPath: "\(directory)/driver", withDestinationPath: "../../drivers/\(driver)")
            }
            if let group = function.iommuGroup {
                try files.createDirectory(atPath: "\(root)/kernel/iommu_groups/\(group)", withIntermediateDirectories: true)
                try files.createSymbolicLink(
                    atPath: "\(directory)/iommu_group", withDestinationPath: "../../kernel/iommu_groups/\(group)")
            }
        }
    }
}
