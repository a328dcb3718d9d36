
/// A BAR as the PCI core sized and assigned it (`pci_dev->resource[i]`): what vfio-pci reports in
/// `VFIO_DEVICE_GET_REGION_INFO` and what the virtual BAR registers are sized from.
public struct PCIBARResource: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case memory32, memory64, io
    }

    public let kind: Kind
    /// A power of two (16 bytes or more for memory, 4 or more for I/O).
    public let size: UInt64
    public let prefetchable: Bool
    /// Where the BAR decodes on the bus: peer-to-peer DMA aimed here reaches the device.
    public let busAddress: UInt64
    /// RAM behind the BAR (device memory), which userspace may `mmap` (`VFIO_REGION_INFO_FLAG_MMAP`);
    /// register BARs trap every access instead.
    public let mappable: Bool

    public init(kind: Kind, size: UInt64, prefetchable: Bool = false, busAddress: UInt64, mappable: Bool = false) {
        self.kind = kind
        self.size = size
        self.prefetchable = prefetchable
        self.busAddress = busAddress
        self.mappable = mappable
    }

    /// The low flag bits of the BAR register (`PCI_BASE_ADDRESS_*`).
    public var registerFlags: UInt32 {
        switch kind {
        case .io: 0x1
        case .memory32: prefetchable ? 0x8 : 0
        case .memory64: 0x4 | (prefetchable ? 0x8 : 0)
        }
    }
}

/// An interrupt a device raised, as vfio-pci's handlers receive it (`vfio_intx_handler`,
/// `vfio_msihandler`).
public enum PCIInterrupt: Sendable, Equatable, CustomStringConvertible {
    case intx
    case msi(vector: Int)
    case msix(vector: Int)

    public var description: String {
        switch self {
        case .intx: "INTx"
        case .msi(let vector): "MSI vector \(vector)"
        case .msix(let vector): "MSI-X vector \(vector)"
        }
    }
}

/// Where a device's interrupts go once a driver claims it: vfio-pci's IRQ handlers.
public protocol PCIInterruptSink: AnyObject, Sendable {
    func deliver(_ interrupt: PCIInterrupt)
    /// The bound driver's `err_handler->error_detected` (`PCIErrorRecovery.swift`).
    func errorDetected(_ state: PCIChannelState) -> PCIErrorRecoveryResult
}

/// The physical function behind a vfio-pci device: the `struct pci_dev` vfio-pci drives — config
/// accesses (`pci_user_read_config_*`), BAR accesses (`ioread`/`iowrite` on the resource),
/// interrupts routed to vfio's handlers, and function reset (`pci_try_reset_function`).
/// `DeviceModels.VirtualPCIDevice` is the implementation; the VFIO layer only sees this seam.
public protocol PCIDeviceBackend: AnyObject, Sendable {
    var address: PCIAddress { get }
    /// 256 (conventional) or 4096 (PCIe) bytes.
    var configSpaceSize: Int { get }
    /// A 1-, 2- or 4-byte read at a naturally aligned offset inside config space.
    func readConfig(_ offset: Int, width: Int) -> UInt32
    /// A 1-, 2- or 4-byte write at a naturally aligned offset inside config space.
    func writeConfig(_ offset: Int, width: Int, _ value: UInt32)
    /// BAR `index` (0…5), nil when it is not implemented (or is the upper half of a 64-bit BAR).
    func barResource(_ index: Int) -> PCIBARResource?
    /// A 1-, 2-, 4- or 8-byte read inside BAR `index`.
    func readBAR(_ index: Int, offset: UInt64, width: Int) -> UInt64
    /// A 1-, 2-, 4- or 8-byte write inside BAR `index`.
    func writeBAR(_ index: Int, offset: UInt64, width: Int, _ value: UInt64)
    /// The expansion ROM BAR (`resource[PCI_ROM_RESOURCE]`): a 32-bit memory window sized and
    /// assigned by the PCI core; nil when the function has none. See `PCIExpansionROM`.
    var romResource: PCIBARResource? { get }
    /// A 1-, 2- or 4-byte read inside the ROM BAR as the function answers it: the ROM's bytes while
    /// the ROM BAR's enable bit and memory decode are both on, else all ones (nothing decodes).
    func readROM(offset: UInt64, width: Int) -> UInt64
    /// The memory behind a mappable BAR (nil for register BARs).
    func barMemory(_ index: Int) -> UnsafeMutableRawBufferPointer?
    /// The file a program maps to share `barMemory(index)` (a memfd; nil for register BARs).
    func barMemoryFile(_ index: Int) -> Int32?
    /// Routes the device's interrupts to `sink` (nil: nobody listens; raised interrupts are lost).
    func connectInterrupts(_ sink: PCIInterruptSink?)
    /// Whether the function acts on Initiate FLR in PCI Express Device Control. The VFIO layer
    /// does not read this: like the PCI core it probes the reset methods from config space
    /// (`pci_init_reset_methods`) and resets through config writes.
    var supportsFunctionReset: Bool { get }
    /// The reset itself — what the hardware does on FLR, AF FLR, a D3hot → D0 transition without
    /// No_Soft_Reset or a secondary bus reset: config space back to power-on values, the model's
    /// state cleared.
    func resetFunction()
}
