/// One entry of a standard or extended capability list.
public struct PCICapability: Sendable, Equatable, Codable {
    /// Capability ID (`PCI_CAP_ID_*` or `PCI_EXT_CAP_ID_*`).
    public let id: UInt16
    /// Offset of the capability header in config space.
    public let offset: Int
    /// Version nibble of an extended capability header (0 for standard capabilities).
    public let version: UInt8
}

/// Why a capability walk stopped before reaching a zero `next` pointer.
public enum CapabilityChainIssue: Sendable, Equatable, CustomStringConvertible {
    /// The chain came back to an offset it had already visited.
    case loop(capability: UInt16, at: Int, pointsBackTo: Int)
    /// A `next` pointer leads outside the space that holds that kind of capability.
    case pointerOutOfRange(capability: UInt16, at: Int, next: Int)
    /// A `next` pointer leads past the bytes the source captured.
    case truncated(capability: UInt16, at: Int, next: Int)

    public var isLoop: Bool {
        if case .loop = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .loop(let id, let at, let back):
            "capability 0x\(hex(id, width: 2)) at 0x\(hex(at, width: 3)) points back to 0x\(hex(back, width: 3)): the chain loops"
        case .pointerOutOfRange(let id, let at, let next):
            "capability 0x\(hex(id, width: 2)) at 0x\(hex(at, width: 3)) has next pointer 0x\(hex(next, width: 3)) outside its space: the chain is broken"
        case .truncated(let id, let at, let next):
            "capability 0x\(hex(id, width: 2)) at 0x\(hex(at, width: 3)) points to 0x\(hex(next, width: 3)), beyond the captured config space"
        }
    }
}

/// A walked capability list: the capabilities in chain order, and the issue that ended the walk
/// early, if any. Walks are bounded: a loop or a wild pointer ends them, as the kernel's TTL does
/// (`__pci_find_next_cap_ttl`, `pci_find_next_ext_capability`).
public struct PCICapabilityList: Sendable, Equatable {
    public let capabilities: [PCICapability]
    public let issue: CapabilityChainIssue?

    public static let empty = PCICapabilityList(capabilities: [], issue: nil)

    public func first(_ id: UInt16) -> PCICapability? { capabilities.first { $0.id == id } }

    /// Walks the standard list from the pointer at 0x34 (0x14 for CardBus bridges).
    /// Only functions whose status register announces a list have one (`PCI_STATUS_CAP_LIST`).
    public static func standard(in config: PCIConfigSpace, headerType: PCIHeaderType?) -> PCICapabilityList {
        guard config.u16(PCIRegister.status) & PCIRegister.statusCapabilityList != 0 else { return .empty }
        let pointerOffset =
            headerType == .cardbus ? PCIRegister.cardbusCapabilityPointer : PCIRegister.capabilityPointer
        var found: [PCICapability] = []
        var visited = Set<Int>()
        var position = Int(config.u8(pointerOffset) & 0xfc)
        var previous: (id: UInt16, at: Int)? = nil
        while position != 0 {
            // Standard capabilities live in 0x40..0xff (the kernel stops below 0x40).
            guard position >= 0x40, position < PCIRegister.legacySpaceSize else {
                return PCICapabilityList(
                    capabilities: found,
                    issue: .pointerOutOfRange(
                        capability: previous?.id ?? 0, at: previous?.at ?? pointerOffset, next: position))
            }
            guard position + 1 < config.count else {
                return PCICapabilityList(
                    capabilities: found,
                    issue: .truncated(capability: previous?.id ?? 0, at: previous?.at ?? pointerOffset, next: position))
            }
            guard visited.insert(position).inserted else {
                return PCICapabilityList(
                    capabilities: found,
                    issue: .loop(capability: previous?.id ?? 0, at: previous?.at ?? pointerOffset, pointsBackTo: position))
            }
            let id = UInt16(config.u8(position))
            if id == 0xff { break }  // all-ones: absent, as the kernel treats it
            found.append(PCICapability(id: id, offset: position, version: 0))
            previous = (id, position)
            position = Int(config.u8(position + 1) & 0xfc)
        }
        return PCICapabilityList(capabilities: found, issue: nil)
    }

    /// Walks the extended list from 0x100, when the source captured extended space.
    public static func extended(in config: PCIConfigSpace) -> PCICapabilityList {
        guard config.hasExtendedSpace else { return .empty }
        var found: [PCICapability] = []
        var visited = Set<Int>()
        var position = PCIRegister.legacySpaceSize
        while true {
            guard position + 3 < config.count else {
                let last = found.last
                return PCICapabilityList(
                    capabilities: found,
                    issue: .truncated(capability: last?.id ?? 0, at: last?.offset ?? 0, next: position))
            }
            let header = config.u32(position)
            // An empty or all-ones header at 0x100 means "no extended capabilities".
            if header == 0 || header == 0xffff_ffff { break }
            guard visited.insert(position).inserted else {
                let last = found.last
                return PCICapabilityList(
                    capabilities: found,
                    issue: .loop(capability: last?.id ?? 0, at: last?.offset ?? 0, pointsBackTo: position))
            }
            let id = UInt16(header & 0xffff)
            found.append(PCICapability(id: id, offset: position, version: UInt8((header >> 16) & 0xf)))
            let next = Int(header >> 20) & 0xffc
            if next == 0 { break }
            guard next >= PCIRegister.legacySpaceSize else {
                return PCICapabilityList(capabilities: found, issue: .pointerOutOfRange(capability: id, at: position, next: next))
            }
            position = next
        }
        return PCICapabilityList(capabilities: found, issue: nil)
    }
}
