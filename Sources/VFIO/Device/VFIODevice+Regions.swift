import KernelRules
import Locking
import PCIBus
import SystemPackage

extension VFIODevice {
    /// `pread(device_fd, buffer, count, region.offset + offset)`: config space through vfio-pci's
    /// virtualisation, BARs through the device's registers or memory, split into naturally
    /// aligned accesses. `EINVAL` past the region's end or for a region without read access,
    /// `EIO` for a BAR while the command register's memory (or I/O) decode is off.
    public func read(_ region: VFIORegionIndex, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try access(region, offset: offset, count: buffer.count, "read") { (backend, at, width) throws(VFIOError) in
            let value = try self.load(region, backend, at, width)
            withUnsafeBytes(of: value.littleEndian) { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[Int(at - offset)..<Int(at - offset) + width]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: bytes[0..<width]))
            }
        }
    }

    /// `pwrite(device_fd, buffer, count, region.offset + offset)`, the same way as `read`.
    public func write(_ region: VFIORegionIndex, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        try access(region, offset: offset, count: buffer.count, "write") { (backend, at, width) throws(VFIOError) in
            var value: UInt64 = 0
            withUnsafeMutableBytes(of: &value) { bytes in
                UnsafeMutableRawBufferPointer(rebasing: bytes[0..<width]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: buffer[Int(at - offset)..<Int(at - offset) + width]))
            }
            try self.store(region, backend, at, width, UInt64(littleEndian: value))
        }
    }

    /// Config-space read of 1, 2 or 4 bytes (`vfio_pci_config_read{b,w,l}` of the selftests).
    public func readConfig<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: Int) throws(VFIOError) -> T {
        var value = T.zero
        try withUnsafeMutableBytes(of: &value) { (bytes) throws(VFIOError) in try read(.config, offset: UInt64(offset), into: bytes) }
        return T(littleEndian: value)
    }

    /// Config-space write of 1, 2 or 4 bytes.
    public func writeConfig<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at offset: Int) throws(VFIOError) {
        var little = value.littleEndian
        try withUnsafeBytes(of: &little) { (bytes) throws(VFIOError) in try write(.config, offset: UInt64(offset), from: bytes) }
    }

    /// A register read in BAR `bar` (a driver's `readl`/`readq` on its mapped BAR).
    public func readRegister<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, bar: Int, offset: UInt64) throws(VFIOError) -> T {
        var value = T.zero
        try withUnsafeMutableBytes(of: &value) { (bytes) throws(VFIOError) in try read(.bar(bar), offset: offset, into: bytes) }
        return T(littleEndian: value)
    }

    /// A register write in BAR `bar` (`writel`/`writeq`).
    public func writeRegister<T: FixedWidthInteger & UnsignedInteger>(_ value: T, bar: Int, offset: UInt64) throws(VFIOError) {
        var little = value.littleEndian
        try withUnsafeBytes(of: &little) { (bytes) throws(VFIOError) in try write(.bar(bar), offset: offset, from: bytes) }
    }

    /// `mmap(device_fd, region.offset)` of a region with `VFIO_REGION_INFO_FLAG_MMAP`: the
    /// device memory behind the BAR. `EINVAL` for a region that cannot be mapped.
    public func mapRegion(_ region: VFIORegionIndex) throws(VFIOError) -> UnsafeMutableRawBufferPointer {
        let info = try regionInfo(region.rawValue)
        let (backend, _) = try requireBackend("mmap")
        guard info.flags.contains(.mmap), let bar = region.barNumber, let memory = backend.barMemory(bar) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) mmap \(region): the region is not mappable")
        }
        return memory
    }

    private func access(
        _ region: VFIORegionIndex, offset: UInt64, count: Int, _ operation: String,
        _ body: (any PCIDeviceBackend, UInt64, Int) throws(VFIOError) -> Void
    ) throws(VFIOError) {
        let (backend, _) = try requireBackend(operation)
        let info = try regionInfo(region.rawValue)
        guard info.flags.contains(operation == "read" ? .read : .write) else {
            let rule = region == .rom && operation == "write" ? RuleID.VPCI_71 : .VPCI_90
            throw VFIOError(.invalidArgument, rule: rule, "\(self) \(operation) \(region): the region does not allow it")
        }
        guard offset < info.size, UInt64(count) <= info.size - offset else {
            throw VFIOError(
                .invalidArgument, rule: region == .config ? .VPCI_80 : .VPCI_90,
                "\(self) \(operation) \(region) [0x\(String(offset, radix: 16)) +\(count)]: beyond the region's \(info.size) bytes")
        }
        if let bar = region.barNumber {
            let decode: UInt32 = backend.barResource(bar)?.kind == .io ? 0x1 : 0x2
            guard backend.readConfig(PCIRegister.command, width: 2) & decode != 0 else {
                throw VFIOError(.ioError, rule: .VPCI_92, "\(self) \(operation) \(region): \(decode == 1 ? "I/O" : "memory") decode is off in the command register")
            }
        }
        var at = offset
        let end = offset + UInt64(count)
        let widest = region == .config ? 4 : 8
        while at < end {
            var width = widest
            while width > 1 && (at % UInt64(width) != 0 || at + UInt64(width) > end) { width /= 2 }
            try body(backend, at, width)
            at += UInt64(width)
        }
    }

    private func load(_ region: VFIORegionIndex, _ backend: any PCIDeviceBackend, _ offset: UInt64, _ width: Int) throws(VFIOError) -> UInt64 {
        if region == .config {
            let msiEnabled = interrupts.kind == .msi
            return UInt64(config.withLock { $0!.read(Int(offset), width: width, backend: backend, msiEnabled: msiEnabled) })
        }
        return backend.readBAR(region.barNumber!, offset: offset, width: width)
    }

    private func store(_ region: VFIORegionIndex, _ backend: any PCIDeviceBackend, _ offset: UInt64, _ width: Int, _ value: UInt64) throws(VFIOError) {
        if region == .config {
            config.withLock { $0!.write(Int(offset), width: width, UInt32(truncatingIfNeeded: value), backend: backend) }
            return
        }
        backend.writeBAR(region.barNumber!, offset: offset, width: width, value)
    }
}
