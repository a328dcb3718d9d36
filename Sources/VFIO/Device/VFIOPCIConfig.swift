import PCIBus

/// vfio-pci's virtualised config space (`drivers/vfio/pci/vfio_pci_config.c`): the BARs and the
/// ROM BAR live only in `vconfig` — writes there never reach the device, and reads return what
/// was written masked to the BAR's size with the flag bits filled in (`vfio_bar_fixup`), so
/// writing all ones and reading back sizes the BAR; the MSI capability's flags, address and data
/// are virtual too (enable reads as set only while vfio-pci runs the device in MSI mode); MSI-X
/// control writes are dropped; everything else — the command register with bus master and
/// memory enable included — passes through to the device.
struct VFIOPCIConfig {
    private var vbars: [UInt32]
    private var vrom: UInt32 = 0
    private let sizes: [UInt64?]
    private let flags: [UInt32]
    private let upperHalf: [Bool]
    private let msi: (offset: Int, vectors: Int)?
    private let msix: Int?
    private var vmsi: [UInt8]

    init(backend: PCIDeviceBackend, hardware: InterruptHardware) {
        var sizes = [UInt64?](repeating: nil, count: 6)
        var flags = [UInt32](repeating: 0, count: 6)
        var upper = [Bool](repeating: false, count: 6)
        for index in 0..<6 {
            guard let bar = backend.barResource(index) else { continue }
            sizes[index] = bar.size
            flags[index] = bar.registerFlags
            if bar.kind == .memory64, index < 5 {
                sizes[index + 1] = bar.size
                upper[index + 1] = true
            }
        }
        self.sizes = sizes
        self.flags = flags
        upperHalf = upper
        vbars = (0..<6).map { backend.readConfig(0x10 + 4 * $0, width: 4) }
        msi = hardware.msi
        msix = hardware.msix?.offset
        vmsi = msi.map { msi in (0..<12).map { UInt8(truncatingIfNeeded: backend.readConfig(msi.offset + 2 + $0, width: 1)) } } ?? []
    }

    /// One byte as the user sees it; nil means "the device's own byte".
    private func virtualByte(_ offset: Int, msiEnabled: Bool) -> UInt8? {
        if (0x10..<0x28).contains(offset) {
            let index = (offset - 0x10) / 4
            return UInt8(truncatingIfNeeded: barValue(index) >> (8 * UInt32(offset % 4)))
        }
        if (0x30..<0x34).contains(offset) { return UInt8(truncatingIfNeeded: vrom >> (8 * UInt32(offset % 4))) }
        if let msi, (msi.offset + 2..<msi.offset + 14).contains(offset) {
            var byte = vmsi[offset - msi.offset - 2]
            if offset == msi.offset + 2 { byte = msiEnabled ? byte | 1 : byte & ~1 }
            return byte
        }
        return nil
    }

    /// `vfio_bar_fixup`: the written value masked to the size, flags restored; the upper dword of
    /// a 64-bit BAR masked with the size's upper bits; unimplemented BARs read 0.
    private func barValue(_ index: Int) -> UInt32 {
        guard let size = sizes[index] else { return 0 }
        let mask = ~(size - 1)
        if upperHalf[index] { return vbars[index] & UInt32(truncatingIfNeeded: mask >> 32) }
        return (vbars[index] & UInt32(truncatingIfNeeded: mask) & (flags[index] & 1 == 1 ? ~0x3 : ~0xf)) | flags[index]
    }

    func read(_ offset: Int, width: Int, backend: PCIDeviceBackend, msiEnabled: Bool) -> UInt32 {
        let physical = backend.readConfig(offset, width: width)
        var value: UInt32 = 0
        for i in 0..<width {
            let byte = virtualByte(offset + i, msiEnabled: msiEnabled) ?? UInt8(truncatingIfNeeded: physical >> (8 * UInt32(i)))
            value |= UInt32(byte) << (8 * UInt32(i))
        }
        return value
    }

    mutating func write(_ offset: Int, width: Int, _ value: UInt32, backend: PCIDeviceBackend) {
        var passthrough = false
        for i in 0..<width {
            let at = offset + i
            let byte = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
            if (0x10..<0x28).contains(at) {
                let index = (at - 0x10) / 4
                let shift = 8 * UInt32(at % 4)
                vbars[index] = (vbars[index] & ~(0xff << shift)) | UInt32(byte) << shift
            } else if (0x30..<0x34).contains(at) {
                continue  // no expansion ROM: the ROM BAR reads 0
            } else if let msi, (msi.offset + 2..<msi.offset + 14).contains(at) {
                vmsi[at - msi.offset - 2] = byte
            } else if let msix, (msix + 2..<msix + 4).contains(at) {
                continue  // MSI-X control: no write handler
            } else {
                passthrough = true
            }
        }
        guard passthrough else { return }
        // The non-virtual bytes of the access go to the device as one access, as vfio does.
        let current = backend.readConfig(offset, width: width)
        var merged: UInt32 = 0
        for i in 0..<width {
            let at = offset + i
            let virtual = (0x10..<0x28).contains(at) || (0x30..<0x34).contains(at)
                || msi.map { (($0.offset + 2)..<($0.offset + 14)).contains(at) } == true
                || msix.map { (($0 + 2)..<($0 + 4)).contains(at) } == true
            let source = virtual ? current : value
            merged |= (source >> (8 * UInt32(i)) & 0xff) << (8 * UInt32(i))
        }
        backend.writeConfig(offset, width: width, merged)
    }
}
