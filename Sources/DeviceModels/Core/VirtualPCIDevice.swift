import UserMemory
import Glibc
import IOMMU
import Locking
import PCIBus

/// A virtual PCI function: the hardware side of a device model. It owns its config space (with
/// the masks its builder gave each register), its BARs — register BARs whose accesses go to the
/// model's `mmioRead`/`mmioWrite`, memory BARs backed by device RAM — the MSI-X table and
/// pending bits, interrupt signalling (MSI-X, MSI, INTx, whichever the driver enabled) and a
/// `DMAPort` once attached to a `SimulatedMachine`. Function-level reset restores power-on state.
///
/// Subclass it for a model: override `mmioRead`, `mmioWrite` and `resetModel`, issue DMA through
/// `dmaPort()`, signal with `raiseInterrupt(vector:)`. Mirrors `struct pci_dev` from the device's side.
open class VirtualPCIDevice: PCIDeviceBackend, @unchecked Sendable, CustomStringConvertible {
    public let address: PCIAddress
    /// What the model is, for reports (`lspci`'s device name).
    public let modelName: String
    public let msi: MSILayout?
    public let msix: MSIXLayout?
    public let pcieOffset: Int?
    public let supportsFunctionReset: Bool
    private let bars: [PCIBARResource?]
    /// The expansion ROM BAR and the ROM's bytes (the BAR's length; 0xFF past the image).
    private let rom: (resource: PCIBARResource, bytes: [UInt8])?
    private let barRAM: [DeviceRAM?]
    private let barStorage: [UnsafeMutableRawBufferPointer?]
    private let registers: PThreadMutex<Registers>
    let command = CommandRegisterMirror()
    let interruptSink = PThreadMutex<PCIInterruptSink?>(nil)
    private let attachment = PThreadMutex<BusAttachment?>(nil)
    /// Where the capabilities whose writes reset the function sit: Power Management and Advanced
    /// Features (fixed at power-on, like the capability list).
    private let resetCapabilities: (pm: Int?, af: Int?)

    private struct Registers {
        var config: VirtualConfigSpace
        /// Four dwords per MSI-X entry: address low, address high, data, vector control.
        var msixTable: [UInt32]
        var msixPending: [Bool]

        init(config: VirtualConfigSpace, msix: MSIXLayout?) {
            self.config = config
            let size = msix?.tableSize ?? 0
            msixTable = (0..<size * 4).map { $0 % 4 == 3 ? 1 : 0 }  // every vector masked at reset
            msixPending = Array(repeating: false, count: size)
        }
    }

    /// What the machine gives a device when it is attached: its way to the IOMMU and to memory.
    package struct BusAttachment: Sendable {
        let core: IOMMUCore
        let requesterID: UInt16
        let process: ProcessMemory
        let peers: [DMAPort.PeerWindow]

        package init(core: IOMMUCore, requesterID: UInt16, process: ProcessMemory, peers: [DMAPort.PeerWindow]) {
            self.core = core
            self.requesterID = requesterID
            self.process = process
            self.peers = peers
        }
    }

    /// A function at `address` laid out as `layout` (from a `VirtualConfigBuilder`); memory BARs
    /// (`mappable`) get zeroed device RAM.
    public init(address: PCIAddress, modelName: String, layout: VirtualFunctionLayout) {
        self.address = address
        self.modelName = modelName
        msi = layout.msi
        msix = layout.msix
        pcieOffset = layout.pcieOffset
        supportsFunctionReset = layout.supportsFLR
        let config = layout.config
        bars = layout.bars + Array(repeating: nil, count: max(0, 6 - layout.bars.count))
        barRAM = bars.enumerated().map { index, resource in
            guard let resource, resource.mappable else { return nil }
            return DeviceRAM(size: Int(resource.size), name: "\(address) BAR\(index)")
        }
        barStorage = barRAM.map { $0?.memory }
        rom = layout.rom.map { ($0.resource, $0.image + Array(repeating: 0xff, count: Int($0.resource.size) - $0.image.count)) }
        registers = PThreadMutex(Registers(config: config, msix: msix))
        resetCapabilities = (Self.capability(in: config, id: 0x01), Self.capability(in: config, id: 0x13))
        command.update(UInt16(config.read(PCIRegister.command, width: 2)))
    }

    public var description: String { "\(modelName) at \(address)" }

    /// The standard capability `id` in `config`'s list (at most 48 steps, as `pci_find_capability`).
    private static func capability(in config: VirtualConfigSpace, id: UInt32) -> Int? {
        guard config.read(PCIRegister.status, width: 2) & UInt32(PCIRegister.statusCapabilityList) != 0 else { return nil }
        var position = Int(config.read(PCIRegister.capabilityPointer, width: 1)) & ~3
        for _ in 0..<48 where position >= 0x40 && position < PCIRegister.legacySpaceSize {
            let header = config.read(position, width: 2)
            if header & 0xff == id { return position }
            position = Int(header >> 8) & ~3
        }
        return nil
    }

    /// The config space as it stands (what `lspci -xxxx` of the function would dump).
    public var configSpace: VirtualConfigSpace { registers.withLock { $0.config } }

    // MARK: Model interface

    /// A register read in a BAR that is not device RAM. Default: all ones (nothing decodes).
    open func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 { allOnes(width) }

    /// A register write in a BAR that is not device RAM. Default: dropped.
    open func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {}

    /// The model's own state back to power-on (called by function-level reset).
    open func resetModel() {}

    /// Whether the driver turned on bus mastering: a model may check before starting work.
    public var isBusMasterEnabled: Bool { command.busMasterEnabled }

    /// Sets `bits` in a config register the device reports status in (an RW1C error log),
    /// whatever its write masks: the hardware's side of a register software reads and clears.
    public func reportConfigStatus(_ offset: Int, width: Int, _ bits: UInt32) {
        registers.withLock { $0.config.deviceSet(offset, width: width, $0.config.read(offset, width: width) | bits) }
    }

    /// The port this device's engine issues DMA through (faults with `.notAttached` until the
    /// device is part of a machine).
    public func dmaPort() -> DMAPort {
        let attachment = attachment.withLock { $0 }
        return DMAPort(
            requester: address, path: attachment.map { $0.core.dmaPath(from: address, requesterID: $0.requesterID) },
            command: command, process: attachment?.process, peers: attachment?.peers ?? [])
    }

    package func attach(_ bus: BusAttachment) { attachment.withLock { $0 = bus } }

    /// Signals `vector` the way the driver set the function up: MSI-X when enabled (held
    /// pending while the vector or the function is masked), else MSI when enabled (vectors
    /// beyond those enabled are dropped), else an INTx pulse unless `PCI_COMMAND_INTX_DISABLE`. Returns
    /// what was delivered.
    @discardableResult
    public func raiseInterrupt(vector: Int = 0) -> PCIInterrupt? {
        let delivered: PCIInterrupt? = registers.withLock { registers in
            if let msix, registers.config.read(msix.offset + 2, width: 2) & 0x8000 != 0 {
                guard (0..<msix.tableSize).contains(vector) else { return nil }
                let functionMasked = registers.config.read(msix.offset + 2, width: 2) & 0x4000 != 0
                if functionMasked || registers.msixTable[vector * 4 + 3] & 1 != 0 {
                    registers.msixPending[vector] = true
                    return nil
                }
                return .msix(vector: vector)
            }
            if let msi, registers.config.read(msi.offset + 2, width: 2) & 1 != 0 {
                let enabled = 1 << ((registers.config.read(msi.offset + 2, width: 2) >> 4) & 7)
                return (0..<enabled).contains(vector) ? .msi(vector: vector) : nil
            }
            let pin = registers.config.read(0x3d, width: 1)
            guard pin != 0, registers.config.read(PCIRegister.command, width: 2) & 0x400 == 0 else { return nil }
            return .intx
        }
        if let delivered { interruptSink.withLock { $0 }?.deliver(delivered) }
        return delivered
    }

    // MARK: PCIDeviceBackend

    public var configSpaceSize: Int { registers.withLock { $0.config.count } }

    public func readConfig(_ offset: Int, width: Int) -> UInt32 {
        registers.withLock { $0.config.read(offset, width: width) }
    }

    /// A config write, and the resets the hardware does on one: Initiate FLR in PCI Express
    /// Device Control (when the function implements FLR), Initiate FLR in the Advanced Features
    /// control byte (when its AF capability advertises FLR), and a D3hot → D0 transition in PMCSR
    /// with No_Soft_Reset clear (PCI PM 1.2: the function returns in D0-uninitialised).
    public func writeConfig(_ offset: Int, width: Int, _ value: UInt32) {
        let reset: Bool = registers.withLock { registers in
            let pmBefore = resetCapabilities.pm.map { registers.config.read($0 + 4, width: 2) }
            registers.config.write(offset, width: width, value)
            command.update(UInt16(registers.config.read(PCIRegister.command, width: 2)))
            if let pcie = pcieOffset, supportsFunctionReset, offset <= pcie + 9, offset + width > pcie + 8,
                registers.config.read(pcie + 8, width: 2) & 0x8000 != 0
            {
                return true
            }
            if let af = resetCapabilities.af, offset <= af + 4, offset + width > af + 4,
                (value >> (8 * UInt32(af + 4 - offset))) & 1 != 0, registers.config.read(af + 3, width: 1) & 0x2 != 0
            {
                return true
            }
            if let pm = resetCapabilities.pm, let pmBefore, pmBefore & 0x3 == 3, pmBefore & 0x8 == 0 {
                return registers.config.read(pm + 4, width: 2) & 0x3 == 0
            }
            return false
        }
        if reset { resetFunction() }
    }

    public func barResource(_ index: Int) -> PCIBARResource? { bars.indices.contains(index) ? bars[index] : nil }

    public func barMemory(_ index: Int) -> UnsafeMutableRawBufferPointer? {
        barStorage.indices.contains(index) ? barStorage[index] : nil
    }

    public func barMemoryFile(_ index: Int) -> Int32? {
        barRAM.indices.contains(index) ? barRAM[index]?.fd : nil
    }

    public func readBAR(_ index: Int, offset: UInt64, width: Int) -> UInt64 {
        guard let bar = barResource(index), offset < bar.size, UInt64(width) <= bar.size - offset, command.memorySpaceEnabled else {
            return allOnes(width)
        }
        if let msix, let value = msixRead(msix, index, offset, width) { return value }
        if let memory = barStorage[index] { return load(memory, offset, width) }
        return mmioRead(index, offset: offset, width: width)
    }

    public func writeBAR(_ index: Int, offset: UInt64, width: Int, _ value: UInt64) {
        guard let bar = barResource(index), offset < bar.size, UInt64(width) <= bar.size - offset, command.memorySpaceEnabled else {
            return
        }
        if let msix, msixWrite(msix, index, offset, width, value) { return }
        if let memory = barStorage[index] { return store(memory, offset, width, value) }
        mmioWrite(index, offset: offset, width: width, value)
    }

    public var romResource: PCIBARResource? { rom?.resource }

    /// The ROM answers only while its BAR's enable bit and memory decode are on; a read of a
    /// disabled ROM is a master abort (all ones).
    public func readROM(offset: UInt64, width: Int) -> UInt64 {
        let enabled = readConfig(PCIExpansionROM.register, width: 4) & PCIExpansionROM.enable != 0
        guard let rom, enabled, command.memorySpaceEnabled, offset < rom.resource.size, UInt64(width) <= rom.resource.size - offset else {
            return allOnes(width)
        }
        return (0..<width).reduce(UInt64(0)) { $0 | UInt64(rom.bytes[Int(offset) + $1]) << (8 * UInt64($1)) }
    }

    public func connectInterrupts(_ sink: PCIInterruptSink?) { interruptSink.withLock { $0 = sink } }

    public func resetFunction() {
        registers.withLock { registers in
            registers = Registers(config: registers.config, msix: msix)
            registers.config.reset()
            command.update(UInt16(registers.config.read(PCIRegister.command, width: 2)))
        }
        for memory in barStorage { memory?.initializeMemory(as: UInt8.self, repeating: 0) }
        resetModel()
    }

    // MARK: MSI-X table and pending bits

    private func msixRead(_ msix: MSIXLayout, _ bar: Int, _ offset: UInt64, _ width: Int) -> UInt64? {
        let tableBytes = UInt64(msix.tableSize) * 16
        if bar == msix.tableBAR, offset >= msix.tableOffset, offset < msix.tableOffset + tableBytes {
            let dword = Int((offset - msix.tableOffset) / 4)
            return registers.withLock { registers in
                let low = UInt64(registers.msixTable[dword])
                let high = width == 8 && dword + 1 < registers.msixTable.count ? UInt64(registers.msixTable[dword + 1]) << 32 : 0
                return (low | high) >> (8 * ((offset - msix.tableOffset) % 4)) & allOnes(width)
            }
        }
        let pbaBytes = UInt64((msix.tableSize + 63) / 64 * 8)
        if bar == msix.pbaBAR, offset >= msix.pbaOffset, offset < msix.pbaOffset + pbaBytes {
            let firstBit = Int(offset - msix.pbaOffset) * 8
            return registers.withLock { registers in
                var value: UInt64 = 0
                for bit in 0..<(width * 8) where firstBit + bit < registers.msixPending.count && registers.msixPending[firstBit + bit] {
                    value |= 1 << UInt64(bit)
                }
                return value
            }
        }
        return nil
    }

    /// Table writes (4 or 8 bytes, aligned) take effect; a vector unmasked while pending fires.
    /// Pending-bit writes are dropped (read-only). Returns false outside table and PBA.
    private func msixWrite(_ msix: MSIXLayout, _ bar: Int, _ offset: UInt64, _ width: Int, _ value: UInt64) -> Bool {
        let tableBytes = UInt64(msix.tableSize) * 16
        if bar == msix.tableBAR, offset >= msix.tableOffset, offset < msix.tableOffset + tableBytes {
            guard width >= 4, offset % 4 == 0 else { return true }
            let dword = Int((offset - msix.tableOffset) / 4)
            let fire: Int? = registers.withLock { registers in
                registers.msixTable[dword] = UInt32(truncatingIfNeeded: value)
                if width == 8, dword + 1 < registers.msixTable.count { registers.msixTable[dword + 1] = UInt32(truncatingIfNeeded: value >> 32) }
                let vector = dword / 4
                guard registers.msixTable[vector * 4 + 3] & 1 == 0, registers.msixPending[vector] else { return nil }
                registers.msixPending[vector] = false
                return vector
            }
            if let fire { raiseInterrupt(vector: fire) }
            return true
        }
        let pbaBytes = UInt64((msix.tableSize + 63) / 64 * 8)
        return bar == msix.pbaBAR && offset >= msix.pbaOffset && offset < msix.pbaOffset + pbaBytes
    }
}

func allOnes(_ width: Int) -> UInt64 { width >= 8 ? .max : (1 << UInt64(8 * width)) - 1 }

private func load(_ memory: UnsafeMutableRawBufferPointer, _ offset: UInt64, _ width: Int) -> UInt64 {
    var value: UInt64 = 0
    withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: memory[Int(offset)..<Int(offset) + width])) }
    return UInt64(littleEndian: value)
}

private func store(_ memory: UnsafeMutableRawBufferPointer, _ offset: UInt64, _ width: Int, _ value: UInt64) {
    var little = value.littleEndian
    withUnsafeBytes(of: &little) { bytes in
        UnsafeMutableRawBufferPointer(rebasing: memory[Int(offset)..<Int(offset) + width]).copyMemory(
            from: UnsafeRawBufferPointer(rebasing: bytes[0..<width]))
    }
}
