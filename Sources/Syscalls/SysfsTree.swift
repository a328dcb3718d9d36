import Foundation
import Glibc
import IOMMU
import KernelRules
import PCIBus
import SystemPackage
import VFIO

/// The part of `/sys` and `/dev` a VFIO program reads, written out as real files, directories and
/// symbolic links under `root` (the preload library redirects `/sys/bus/pci`, `/sys/devices/pci*`,
/// `/sys/kernel/iommu_groups`, `/sys/module/vfio*` and `/dev/vfio` there), laid out as the
/// kernel's sysfs lays them out:
///
/// - `sys/devices/pciDDDD:BB/…/DDDD:BB:DD.F/`: `config` (the config space at start), `vendor`,
///   `device`, `class`, `subsystem_vendor`, `subsystem_device`, `revision`, `resource`, `numa_node`,
///   `driver_override`, and the links `driver` (`driver core`) and `iommu_group`
///   (`iommu_group_add_device`), each relative, so `readlink` + `basename` reads as on Linux;
/// - `sys/bus/pci/devices/BDF` → the device directory; `sys/bus/pci/drivers/NAME/BDF` → likewise;
/// - `sys/kernel/iommu_groups/N/`: `devices/BDF` links, `type`, `reserved_regions` (SYS-02, SYS-04);
/// - `sys/module/{vfio,vfio_pci,vfio_iommu_type1}/parameters/…` with the modules' defaults;
/// - `dev/vfio/vfio` and `dev/vfio/N` for every group with a function bound to vfio-pci,
///   `dev/iommu`, and `dev/vfio/devices/vfioN` with `…/BDF/vfio-dev/vfioN/dev` for every function
///   bound to vfio-pci (the nodes `open` itself never reaches: the preload library hands those
///   opens to the simulation);
/// - `sys/module/iommufd/parameters/allow_unsafe_interrupts`.
public enum SysfsTree {
    /// Writes the tree of `system` under `root` (an existing, empty directory).
    public static func write(_ system: VFIOSystem, under root: String) throws(VFIOError) {
        guard let topology = system.devices.topology else {
            throw VFIOError(.invalidArgument, rule: .none, "sysfs tree: the machine has no PCI topology")
        }
        var writer = TreeWriter(root: root)
        let paths = devicePaths(topology)
        var vfioGroups: Set<Int> = []
        for (index, function) in topology.functions.enumerated() {
            let path = paths[index]
            let directory = "sys/devices/" + path
            try writer.directory(directory)
            try writeAttributes(function, system: system, into: directory, &writer)
            let up = String(repeating: "../", count: path.split(separator: "/").count + 1)  // from the device dir to /sys
            try writer.link("sys/bus/pci/devices/\(function.address)", to: "../../../devices/" + path)
            if let driver = function.driver {
                try writer.directory("sys/bus/pci/drivers/\(driver)")
                try writer.link("\(directory)/driver", to: up + "bus/pci/drivers/\(driver)")
                try writer.link("sys/bus/pci/drivers/\(driver)/\(function.address)", to: "../../../../devices/" + path)
                if KernelDriver.isVFIO(driver), let group = system.core.device(function.address)?.groupID { vfioGroups.insert(group) }
            }
            if let group = system.core.device(function.address)?.groupID {
                try writer.link("\(directory)/iommu_group", to: up + "kernel/iommu_groups/\(group)")
            }
        }
        for group in system.core.groups {
            let directory = "sys/kernel/iommu_groups/\(group.id)"
            try writer.directory(directory + "/devices")
            for address in group.devices {
                guard let index = topology.index(of: address) else { continue }
                try writer.link("\(directory)/devices/\(address)", to: "../../../../devices/" + paths[index])
            }
            try writer.file(directory + "/type", group.sysfsType)
            try writer.file(directory + "/reserved_regions", group.reservedRegions.sysfsText)
        }
        for (module, parameters) in moduleParameters {
            try writer.file("sys/module/\(module)/initstate", "live\n")
            for (name, value) in parameters { try writer.file("sys/module/\(module)/parameters/\(name)", value + "\n") }
        }
        try writer.file("dev/vfio/vfio", "")
        for group in vfioGroups.sorted() { try writer.file("dev/vfio/\(group)", "") }
        try writer.file("dev/iommu", "")
        try writer.directory("dev/vfio/devices")
        for (number, address) in system.cdevAddresses.enumerated() {
            guard let index = topology.index(of: address) else { continue }
            let node = "sys/devices/\(paths[index])/vfio-dev/vfio\(number)"
            try writer.directory(node)
            try writer.file(node + "/dev", "\(cdevMajor):\(number)\n")
            try writer.file("dev/vfio/devices/vfio\(number)", "")
        }
        try writer.file("sys/module/iommufd/initstate", "live\n")
        try writer.file("sys/module/iommufd/parameters/allow_unsafe_interrupts", "N\n")
    }

    /// The character-device major the simulation gives `vfio-dev` nodes (dynamic on Linux).
    static let cdevMajor = 510

    /// `pciDDDD:BB/` then every bridge on the way down, then the function: the kernel's device path.
    private static func devicePaths(_ topology: PCITopology) -> [String] {
        topology.functions.indices.map { index in
            var chain = [topology.functions[index].address.description]
            var current = index
            while let parent = topology.parentBridge(of: current) {
                chain.append(topology.functions[parent].address.description)
                current = parent
            }
            let root = topology.bus(of: current).key
            chain.append(String(format: "pci%04x:%02x", root.domain, root.number))
            return chain.reversed().joined(separator: "/")
        }
    }

    private static func writeAttributes(_ function: PCIFunction, system: VFIOSystem, into directory: String, _ writer: inout TreeWriter) throws(VFIOError) {
        func hex(_ value: UInt32, _ digits: Int) -> String { "0x" + String(format: "%0\(digits)x", value) + "\n" }
        try writer.file(directory + "/config", bytes: function.config.bytes)
        try writer.file(directory + "/vendor", hex(UInt32(function.vendorID), 4))
        try writer.file(directory + "/device", hex(UInt32(function.deviceID), 4))
        try writer.file(directory + "/class", hex(function.classCode, 6))
        try writer.file(directory + "/subsystem_vendor", hex(UInt32(function.subsystemVendorID), 4))
        try writer.file(directory + "/subsystem_device", hex(UInt32(function.subsystemID), 4))
        try writer.file(directory + "/revision", hex(UInt32(function.revision), 2))
        try writer.file(directory + "/numa_node", "-1\n")
        try writer.file(directory + "/driver_override", "(null)\n")
        try writer.file(directory + "/resource", resourceText(system.devices.backends[function.address]))
    }

    /// `resource`: six BARs, the ROM and six more slots (bridge windows, unassigned here) as
    /// `start end flags`, zeros for an unassigned slot (`resource_show`).
    private static func resourceText(_ backend: (any PCIDeviceBackend)?) -> String {
        (0..<13).map { slot -> String in
            guard slot < 6, let bar = backend?.barResource(slot) else { return String(repeating: "0x0000000000000000 ", count: 2) + "0x0000000000000000\n" }
            let flags: UInt64 =
                switch bar.kind {
                case .io: 0x40101  // IORESOURCE_IO | SIZEALIGN
                case .memory32: 0x40200 | (bar.prefetchable ? 0x2000 : 0)  // IORESOURCE_MEM (| PREFETCH)
                case .memory64: 0x140204 | (bar.prefetchable ? 0x2000 : 0)  // IORESOURCE_MEM_64
                }
            return String(format: "0x%016llx 0x%016llx 0x%016llx\n", bar.busAddress, bar.busAddress + bar.size - 1, flags)
        }.joined()
    }

    /// The parameters `modinfo` lists for the VFIO modules, at their defaults.
    private static let moduleParameters: [(String, [(String, String)])] = [
        ("vfio", [("enable_unsafe_noiommu_mode", "N")]),
        ("vfio_iommu_type1", [("allow_unsafe_interrupts", "N"), ("disable_hugepages", "N"), ("dma_entry_limit", "65535")]),
        ("vfio_pci", [("ids", ""), ("nointxmask", "N"), ("disable_vga", "N"), ("disable_idle_d3", "N"), ("enable_sriov", "N"), ("disable_denylist", "N")]),
        ("vfio_pci_core", [("disable_idle_d3", "N"), ("disable_vga", "N"), ("nointxmask", "N")]),
    ]
}

/// Files, directories and links under a root, parents created as needed.
private struct TreeWriter {
    let root: String
    private var made: Set<String> = []

    init(root: String) { self.root = root }

    mutating func directory(_ relative: String) throws(VFIOError) {
        var path = ""
        for part in relative.split(separator: "/") {
            path += (path.isEmpty ? "" : "/") + part
            guard !made.contains(path) else { continue }
            if Glibc.mkdir(root + "/" + path, 0o755) != 0, Glibc.errno != EEXIST { throw failure("mkdir", path) }
            made.insert(path)
        }
    }

    mutating func file(_ relative: String, _ text: String) throws(VFIOError) { try file(relative, bytes: Array(text.utf8)) }

    mutating func file(_ relative: String, bytes: [UInt8]) throws(VFIOError) {
        try parent(of: relative)
        let fd = Glibc.open(root + "/" + relative, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create", relative) }
        defer { Glibc.close(fd) }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw failure("write", relative) }
    }

    mutating func link(_ relative: String, to target: String) throws(VFIOError) {
        try parent(of: relative)
        guard Glibc.symlink(target, root + "/" + relative) == 0 || Glibc.errno == EEXIST else { throw failure("symlink", relative) }
    }

    private mutating func parent(of relative: String) throws(VFIOError) {
        if let slash = relative.lastIndex(of: "/") { try directory(String(relative[..<slash])) }
    }

    private func failure(_ operation: String, _ relative: String) -> VFIOError {
        VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "sysfs tree: \(operation) \(root)/\(relative) failed")
    }
}
