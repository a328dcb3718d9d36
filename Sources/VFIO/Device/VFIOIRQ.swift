/// IRQ indexes of vfio-pci (`VFIO_PCI_*_IRQ_INDEX`): `VFIO_PCI_NUM_IRQS` of them.
public enum VFIOIRQIndex: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case intx = 0
    case msi = 1
    case msix = 2
    case err = 3
    case req = 4

    public var description: String {
        switch self {
        case .intx: "INTx"
        case .msi: "MSI"
        case .msix: "MSI-X"
        case .err: "ERR"
        case .req: "REQ"
        }
    }
}

/// `struct vfio_irq_info.flags` (`VFIO_IRQ_INFO_*`).
public struct VFIOIRQInfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let eventFD = VFIOIRQInfoFlags(rawValue: 1 << 0)
    public static let maskable = VFIOIRQInfoFlags(rawValue: 1 << 1)
    public static let automasked = VFIOIRQInfoFlags(rawValue: 1 << 2)
    public static let noResize = VFIOIRQInfoFlags(rawValue: 1 << 3)
}

/// `VFIO_DEVICE_GET_IRQ_INFO`'s answer.
public struct VFIOIRQInfo: Sendable, Equatable {
    public let index: VFIOIRQIndex
    public let flags: VFIOIRQInfoFlags
    public let count: UInt32
}

/// `struct vfio_irq_set.flags` (`VFIO_IRQ_SET_*`): one data type and one action.
public struct VFIOIRQSetFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let dataNone = VFIOIRQSetFlags(rawValue: 1 << 0)
    public static let dataBool = VFIOIRQSetFlags(rawValue: 1 << 1)
    public static let dataEventFD = VFIOIRQSetFlags(rawValue: 1 << 2)
    public static let actionMask = VFIOIRQSetFlags(rawValue: 1 << 3)
    public static let actionUnmask = VFIOIRQSetFlags(rawValue: 1 << 4)
    public static let actionTrigger = VFIOIRQSetFlags(rawValue: 1 << 5)
    static let dataTypes: VFIOIRQSetFlags = [.dataNone, .dataBool, .dataEventFD]
    static let actions: VFIOIRQSetFlags = [.actionMask, .actionUnmask, .actionTrigger]
}

/// The payload of `VFIO_DEVICE_SET_IRQS`: nothing, one bool per vector, or one fd per vector.
public enum VFIOIRQData: Sendable, Equatable {
    case none
    case bool([Bool])
    case eventFD([Int32])

    /// Entries carried (nil for NONE).
    var entries: Int? {
        switch self {
        case .none: nil
        case .bool(let values): values.count
        case .eventFD(let fds): fds.count
        }
    }

    var flag: VFIOIRQSetFlags {
        switch self {
        case .none: .dataNone
        case .bool: .dataBool
        case .eventFD: .dataEventFD
        }
    }
}

/// One `VFIO_DEVICE_SET_IRQS` call (`struct vfio_irq_set`).
public struct VFIOIRQSet: Sendable, Equatable {
    public var flags: VFIOIRQSetFlags
    public var index: UInt32
    public var start: UInt32
    public var count: UInt32
    public var data: VFIOIRQData

    public init(action: VFIOIRQSetFlags, index: VFIOIRQIndex, start: UInt32 = 0, count: UInt32, data: VFIOIRQData = .none) {
        self.init(flags: action.union(data.flag), index: index.rawValue, start: start, count: count, data: data)
    }

    /// Raw fields, as the UAPI carries them (no validation here).
    public init(flags: VFIOIRQSetFlags, index: UInt32, start: UInt32, count: UInt32, data: VFIOIRQData) {
        self.flags = flags
        self.index = index
        self.start = start
        self.count = count
        self.data = data
    }
}
