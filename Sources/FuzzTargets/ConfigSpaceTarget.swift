import IOMMU
import PCIBus
import VFIO

/// `config-space`: the input is up to 16 functions' raw config space, decoded as enumeration
/// decodes it (`PCIFunction`: header, standard and extended capability walks, PCIe port type,
/// ACS, bridge bus numbers, FLR, MSI/MSI-X), linked into a topology — bridges with whatever bus
/// numbers the bytes say, loops and all — grouped every way (`GroupingProbe`) and given an IOMMU
/// core, as a machine built from such functions would be.
///
/// Each function is: `u16` location (bits 0–2 function, 3–7 device, 8–15 bus), `u8` domain
/// choice, `u8` captured size (64, 256, 4096 or `u16 % 4097` bytes), `u16` count of bytes taken
/// from the input (the rest zero), then `u8` patch count (mod 16) and that many `u16` offset +
/// `u32` value patches, so a capability deep in extended space costs a few bytes.
enum ConfigSpaceTarget {
    static let maximumFunctions = 16

    static let run: FuzzEntryPoint = { data in
        var input = FuzzInput(data)
        var functions: [PCIFunction] = []
        var addresses = Set<PCIAddress>()
        while !input.isEmpty, functions.count < maximumFunctions {
            let function = decodeFunction(&input)
            checkCapabilities(function)
            // Sources never yield one address twice (the enumerator refuses it, EEXIST).
            if addresses.insert(function.address).inserted { functions.append(function) }
        }
        let topology = PCITopology(functions: functions, source: .dump(path: "fuzz"))
        GroupingProbe.run(topology)
        let snapshot = BusSnapshot(origin: .dump(path: "fuzz"), topology: topology, driversKnown: false)
        if let core = try? IOMMUCore.load(snapshot) {
            for group in core.groups { _ = core.assignment(of: group.id) }
        }
    }

    private static func decodeFunction(_ input: inout FuzzInput) -> PCIFunction {
        let location = input.u16()
        let domain = input.pick([0, 0, 0, 1, 0x1_0000, 0xffff_ffff] as [UInt32])
        let size: Int
        switch input.u8() % 4 {
        case 0: size = 64
        case 1: size = PCIRegister.legacySpaceSize
        case 2: size = PCIRegister.extendedSpaceSize
        default: size = Int(input.u16()) % (PCIRegister.extendedSpaceSize + 1)
        }
        var bytes = [UInt8](repeating: 0, count: size)
        let prefix = input.bytes(Int(input.u16()) % (size + 1))
        bytes.replaceSubrange(0..<prefix.count, with: prefix)
        for _ in 0..<input.u8() % 16 {
            let offset = Int(input.u16())
            let value = input.u32()
            for i in 0..<4 where size > 0 { bytes[(offset + i) % size] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        let address = PCIAddress(
            domain: domain, bus: UInt8(location >> 8), device: UInt8(location >> 3 & 0x1f), function: UInt8(location & 7))
        return PCIFunction(address: address, config: PCIConfigSpace(bytes: bytes))
    }

    /// The walks' promises: every capability lies inside its space and within what was captured,
    /// no offset is visited twice, and the cached offsets point at capabilities of their kind.
    private static func checkCapabilities(_ function: PCIFunction) {
        let config = function.config
        for (list, range) in [
            (function.capabilities, 0x40..<PCIRegister.legacySpaceSize),
            (function.extendedCapabilities, PCIRegister.legacySpaceSize..<PCIRegister.extendedSpaceSize),
        ] {
            let offsets = list.capabilities.map(\.offset)
            precondition(Set(offsets).count == offsets.count, "\(function.address): a capability walk visited an offset twice")
            for offset in offsets {
                precondition(range.contains(offset) && offset < config.count, "\(function.address): capability at 0x\(String(offset, radix: 16)) outside its space")
            }
        }
        if let pcie = function.pcieCapabilityOffset {
            precondition(config.u8(pcie) == PCICapabilityID.pciExpress, "\(function.address): PCIe offset is not a PCIe capability")
        }
        if let acs = function.acs {
            precondition(config.u16(acs.offset) == PCIExtendedCapabilityID.acs, "\(function.address): ACS offset is not an ACS capability")
        }
    }
}
