import Foundation

/// The IOMMU units of a machine in the order their drivers register them, and which functions
/// each one translates: what numbers the groups. Since Linux 6.8 `iommu_device_register` sets
/// the unit's ops and then probes the whole bus (`bus_iommu_probe`, device-add order), and a
/// driver's `probe_device` refuses a device whose unit has no ops yet (VT-d's
/// `intel_iommu_probe_device`: `!iommu->iommu.ops` → -ENODEV). So the first unit to register
/// gets its devices' groups first, bus order within it; the next unit's devices come after.
///
/// VT-d registers its DRHDs in `for_each_iommu` order; on a client machine the integrated
/// graphics DRHD (device scope 00:02.0 only) comes before the INCLUDE_PCI_ALL one, so an Intel
/// iGPU at 00:02.0 is group 0. AMD-Vi registers one unit per PCI root in IVRS order. A dump
/// carries neither table: the order comes from a manifest (`iommuUnits`), a host's
/// `/sys/class/iommu/*/devices`, or is inferred, and then `guess` says what was assumed.
public struct IOMMUUnitOrder: Sendable, Equatable {
    public struct Unit: Sendable, Equatable {
        /// `dmar0`, `ivhd1`, or a name the inference gives (`gfx`, `include-all`, `root 0000:40`).
        public let name: String
        /// Functions in the unit's scope by address.
        public let devices: Set<PCIAddress>
        /// Root buses whose whole hierarchy is in the unit's scope (AMD-Vi: a unit per PCI root).
        public let roots: Set<PCIBusNode.Key>
        /// VT-d's INCLUDE_PCI_ALL: every function no other unit claims.
        public let includeAll: Bool

        public init(name: String, devices: Set<PCIAddress> = [], roots: Set<PCIBusNode.Key> = [], includeAll: Bool = false) {
            self.name = name
            self.devices = devices
            self.roots = roots
            self.includeAll = includeAll
        }
    }

    /// In registration order.
    public let units: [Unit]
    /// Where the order came from: "the machine's manifest", "the host's /sys/class/iommu", "inferred".
    public let origin: String
    /// What the numbering assumed where the source does not carry the order; nil when it does.
    public let guess: String?

    public init(units: [Unit], origin: String, guess: String? = nil) {
        self.units = units
        self.origin = origin
        self.guess = guess
    }

    /// The unit that translates a function: one naming it, else one owning its root bus, else
    /// the include-all one; nil when none does (probed after every unit's devices).
    func unit(of index: Int, in topology: PCITopology) -> Int? {
        let address = topology.functions[index].address
        if let unit = units.firstIndex(where: { $0.devices.contains(address) }) { return unit }
        var top = index
        while let bridge = topology.parentBridge(of: top) { top = bridge }
        let root = topology.bus(of: top).key
        if let unit = units.firstIndex(where: { $0.roots.contains(root) }) { return unit }
        return units.firstIndex(where: \.includeAll)
    }

    /// The probe order: the topology's add order, stably regrouped by unit in registration order.
    func probeOrder(of topology: PCITopology) -> [Int] {
        let order = topology.addOrder
        let unitOf = order.map { unit(of: $0, in: topology) ?? units.count }
        return order.indices.sorted { (unitOf[$0], $0) < (unitOf[$1], $1) }.map { order[$0] }
    }

    /// What a machine without a stated order most likely has. VT-d: an Intel display function at
    /// 0000:00:02.0 has its own DRHD, registered first; the rest is one INCLUDE_PCI_ALL unit, exact
    /// for a single PCI root, a guess for several (servers have a DRHD per root stack, in a table
    /// order the dump does not carry). AMD-Vi: one unit per root bus, in bus order, a guess for
    /// several roots (the IVRS order is not in the dump). Other platforms: one unit, add order.
    public static func inferred(for topology: PCITopology, platform: IOMMUPlatformKind) -> IOMMUUnitOrder {
        let roots = topology.rootBuses
        switch platform {
        case .intelVTd:
            let gfx = topology.functions.first {
                ($0.address.domain, $0.address.bus, $0.address.device, $0.address.function) == (0, 0, 2, 0) && $0.vendorID == 0x8086
                    && $0.classCode >> 16 == 0x03
            }
            let hasGFX = gfx != nil
            let units = (gfx.map { [Unit(name: "gfx", devices: [$0.address])] } ?? []) + [Unit(name: "include-all", includeAll: true)]
            let guess: String? =
                roots.count > 1
                ? "group numbers: a guess (the DMAR order of the \(roots.count) PCI roots is not in the dump; bus order assumed"
                    + "\(hasGFX ? ", the iGPU first" : ""))"
                : nil
            return IOMMUUnitOrder(units: units, origin: "inferred", guess: guess)
        case .amdVi:
            let units = roots.map { key in
                Unit(name: "root " + hex(key.domain, width: 4) + ":" + hex(key.number, width: 2), roots: [key])
            }
            let guess: String? =
                roots.count > 1
                ? "group numbers: a guess (the IVRS order of the \(roots.count) PCI roots is not in the dump; bus order assumed)"
                : nil
            return IOMMUUnitOrder(units: units, origin: "inferred", guess: guess)
        case .armSMMUv3, .powerNV:
            return IOMMUUnitOrder(units: [Unit(name: "all", includeAll: true)], origin: "inferred")
        }
    }
}

extension IOMMUUnitOrder {
    /// The units a host registered, from `class/iommu/UNIT/devices/` beside the PCI tree libpci
    /// reads (`sysfsPath` laid out as `/sys/bus/pci`, or a flat test tree holding `class/` itself);
    /// nil without units. AMD-Vi registers its IVHDs in table order (`ivhd0` first). VT-d numbers
    /// its DRHDs in DMAR table order but registers them as `dmar_register_drhd_unit` lists them:
    /// the INCLUDE_PCI_ALL unit (taken as the one with the most devices) last, the others in
    /// reverse table order before it.
    public static func host(sysfsPath: String?) -> IOMMUUnitOrder? {
        let pci = sysfsPath ?? "/sys/bus/pci"
        let trimmed = pci.count > 1 && pci.hasSuffix("/") ? String(pci.dropLast()) : pci
        let sysRoot = trimmed.hasSuffix("bus/pci") ? String(trimmed.dropLast("bus/pci".count)) : trimmed + "/"
        let classPath = sysRoot + "class/iommu"
        let files = FileManager.default
        let names = ((try? files.contentsOfDirectory(atPath: classPath)) ?? []).filter { !$0.hasPrefix(".") }
        guard !names.isEmpty else { return nil }
        func number(_ name: String) -> Int { Int(name.drop { !$0.isNumber }.prefix { $0.isNumber }) ?? 0 }
        var units = names.sorted { (number($0), $0) < (number($1), $1) }.map { name in
            Unit(
                name: name,
                devices: Set(((try? files.contentsOfDirectory(atPath: "\(classPath)/\(name)/devices")) ?? []).compactMap(PCIAddress.init(parsing:))))
        }
        if units.allSatisfy({ $0.name.hasPrefix("dmar") }), let all = units.indices.max(by: { units[$0].devices.count < units[$1].devices.count }) {
            let includeAll = units.remove(at: all)
            units = units.reversed() + [includeAll]
        }
        return IOMMUUnitOrder(units: units, origin: "the host's \(classPath)")
    }
}
