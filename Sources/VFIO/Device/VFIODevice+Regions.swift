import UserMemory
import KernelRules
import Locking
import PCIBus
import SystemPackage

extension VFIODevice {
    /// `pread(device_fd, buffer, count, region.offset + offset)`: config space through vfio-pci's
    /// virtualisation (`vfio_pci_config_rw`: chunks inside one dword and one capability, each by
    /// its capability's permissions, VPCI-81, VPCI-82), BARs through the device's registers or
    /// memory, split into naturally aligned accesses; the bytes transferred. A count of 0 is 0
    /// (VPCI-70). Config space: `EFAULT` for any byte past its end (VPCI-80). A BAR: `EINVAL`
    /// from its end on, an access running past the end cut short there (VPCI-90); `EIO` for a
    /// memory BAR while the virtual COMMAND has memory decode off or the function is in D3hot
    /// (VPCI-92 — I/O BARs are not checked). `EINVAL` for a region without read access.
    @discardableResult
    public func read(_ region: VFIORegionIndex, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int {
        try access(region, offset: offset, count: buffer.count, "read") { (backend, at, width) throws(VFIOError) in
            guard let backend else {
                // The MSI-X table: all ones.
                UnsafeMutableRawBufferPointer(rebasing: buffer[Int(at - offset)..<Int(at - offset) + width]).initializeMemory(as: UInt8.self, repeating: 0xff)
                return
            }
            let value = try self.load(region, backend, at, width)
            withUnsafeBytes(of: value.littleEndian) { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[Int(at - offset)..<Int(at - offset) + width]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: bytes[0..<width]))
            }
        }
    }

    /// `pwrite(device_fd, buffer, count, region.offset + offset)`, the same way as `read`.
    @discardableResult
    public func write(_ region: VFIORegionIndex, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) -> Int {
        try access(region, offset: offset, count: buffer.count, "write") { (backend, at, width) throws(VFIOError) in
            guard let backend else { return }  // the MSI-X table: dropped
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

    /// A load (`write` false: `buffer` filled) or store of `buffer.count` bytes a program made
    /// through its mapping of BAR `bar` — a trapped register window (`RegisterWindows`): what the
    /// CPU's access reaches on Linux. Unlike `pread`/`pwrite` (`vfio_pci_rw`) it takes no
    /// runtime-PM reference and looks up no region info; it fails (the program's `SIGBUS`) where
    /// vfio-pci would have zapped the mapping — memory decode off or the function in D3hot
    /// (VPCI-92, VPCI-102) — or past the BAR's end inside the mapped page. The MSI-X table reads
    /// as `pread` reads it (all ones, writes dropped, VPCI-93).
    package func mappedAccess(bar: Int, offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer, write: Bool) throws(VFIOError) {
        let (backend, hardware) = try requireBackend("mapped access")
        guard let resource = backend.barResource(bar), offset < resource.size, UInt64(buffer.count) <= resource.size - offset else {
            throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) mapped BAR\(bar) [0x\(String(offset, radix: 16)) +\(buffer.count)]: past the BAR's end")
        }
        try requireMemoryDecode(write ? "write" : "read", .bar(bar))
        try transfer(backend, from: offset, count: buffer.count, excluding: hardware.msixTable(in: bar), widest: 8) { (backend, at, width) throws(VFIOError) in
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(at - offset)..<Int(at - offset) + width])
            guard let backend else {
                if !write { piece.initializeMemory(as: UInt8.self, repeating: 0xff) }
                return
            }
            if write {
                var value: UInt64 = 0
                withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(piece)) }
                backend.writeBAR(bar, offset: at, width: width, UInt64(littleEndian: value))
            } else {
                withUnsafeBytes(of: backend.readBAR(bar, offset: at, width: width).littleEndian) { piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
            }
        }
    }

    /// The device memory behind a RAM BAR with `VFIO_REGION_INFO_FLAG_MMAP`, whole, for a Swift
    /// driver (a C program maps it through the device fd). `EINVAL` for any other region.
    public func mapRegion(_ region: VFIORegionIndex) throws(VFIOError) -> UnsafeMutableRawBufferPointer {
        let info = try regionInfo(region.rawValue)
        guard case .memory(_, _, let memory) = try mmapTarget(region.rawValue, offset: 0, length: info.size, shared: true) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) \(region): registers, not device memory: map them through the device fd, where every access traps")
        }
        return memory
    }

    /// What `mmap(device_fd, length, MAP_SHARED, VFIO_PCI_INDEX_TO_OFFSET(index) + offset)` maps,
    /// checked in `vfio_pci_core_mmap`'s order (VPCI-100): a region index past the last, a
    /// private mapping, ROM/config/VGA, a BAR without mmap support and a range past the BAR's
    /// page-aligned end are `EINVAL`. Device RAM maps its memfd; register BARs trap.
    public func mmapTarget(_ index: UInt32, offset: UInt64, length: UInt64, shared: Bool) throws(VFIOError) -> VFIORegionMapping {
        let (backend, _) = try requireBackend("mmap")
        guard index < 9 else { throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) mmap: no region \(index) (have 0…8)") }
        guard shared else { throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) mmap region \(index): not MAP_SHARED") }
        guard let region = VFIORegionIndex(rawValue: index), let bar = region.barNumber else {
            throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) mmap region \(index): ROM, config space and VGA cannot be mapped")
        }
        guard let resource = backend.barResource(bar), Self.mmapSupported(resource) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_100, "\(self) mmap \(region): no mmap support (VPCI-60: not a memory BAR, or a sub-page BAR off a page boundary)")
        }
        let pageAligned = (resource.size + hostPageSize - 1) & ~(hostPageSize - 1)
        guard offset <= pageAligned, length <= pageAligned - offset else {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_100,
                "\(self) mmap \(region): [0x\(String(offset, radix: 16)) +0x\(String(length, radix: 16))] runs past the BAR's \(pageAligned) page-aligned bytes")
        }
        if let memory = backend.barMemory(bar), let file = backend.barMemoryFile(bar) { return .memory(file: file, offset: offset, memory: memory) }
        return .registers(bar: bar)
    }

    private func access(
        _ region: VFIORegionIndex, offset: UInt64, count: Int, _ operation: String,
        _ body: ((any PCIDeviceBackend)?, UInt64, Int) throws(VFIOError) -> Void
    ) throws(VFIOError) -> Int {
        guard count > 0 else { return 0 }  // VPCI-70: vfio_pci_core_read/write return 0 first
        function.runtimeGet()  // vfio_pci_rw: pm_runtime_resume_and_get (VPCI-253)
        defer { function.runtimePut() }
        let (backend, hardware) = try requireBackend(operation)
        var what: String { "\(self) \(operation) \(region) [0x\(String(offset, radix: 16)) +\(count)]" }
        if region == .rom {
            return try romAccess(backend, offset: offset, count: count, operation, what: what, body)
        }
        let info = try regionInfo(region.rawValue)
        guard info.flags.contains(operation == "read" ? .read : .write) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_90, "\(self) \(operation) \(region): the region does not allow it")
        }
        if region == .config {
            // vfio_config_do_rw: any byte outside config space is -EFAULT, not -EINVAL.
            guard offset < info.size, UInt64(count) <= info.size - offset else {
                throw VFIOError(.badAddress, rule: .VPCI_80, "\(what): beyond config space's \(info.size) bytes")
            }
        } else {
            // vfio_pci_bar_rw (vfio_pci_rdwr.c:214-219): a BAR the host left unassigned (start 0)
            // is -EINVAL, though GET_REGION_INFO reports its length (VPCI-54).
            if let bar = region.barNumber, backend.barResource(bar)?.busAddress == 0 {
                throw VFIOError(.invalidArgument, rule: .VPCI_90, "\(what): the BAR is not assigned (resource start 0)")
            }
            // vfio_pci_bar_rw: from the end on -EINVAL; an access running past it is cut short.
            guard offset < info.size else { throw VFIOError(.invalidArgument, rule: .VPCI_90, "\(what): at or past the region's \(info.size) bytes") }
        }
        let done = Int(min(UInt64(count), info.size - offset))
        if let bar = region.barNumber, backend.barResource(bar)?.kind != .io { try requireMemoryDecode(operation, region) }
        // VPCI-93: the MSI-X table's range is passed over (a nil backend), never reaching the device.
        let excluded = region.barNumber.flatMap(hardware.msixTable(in:))
        if region == .config {
            // VPCI-81 (vfio_pci_config_rw_single): naturally aligned 4/2/1-byte chunks, each cut
            // at the end of its dword and of the capability it lies in.
            var at = offset
            let end = offset + UInt64(done)
            while at < end {
                let width = config.withLock { $0!.chunkLength(at: Int(at), remaining: Int(end - at)) }
                try body(backend, at, width)
                at += UInt64(width)
            }
            return done
        }
        try transfer(backend, from: offset, count: done, excluding: excluded, widest: 8, body)
        return done
    }

    /// `test_mem` of `vfio_pci_core_do_io_rw` (`__vfio_pci_memory_enabled`, VPCI-92): the function
    /// below D3hot and memory decode on in the *virtual* COMMAND register; else `EIO`.
    private func requireMemoryDecode(_ operation: String, _ region: VFIORegionIndex) throws(VFIOError) {
        guard function.powerState < 3 else {
            throw VFIOError(.ioError, rule: .VPCI_92, "\(self) \(operation) \(region): the function is in D3hot (PMCSR), so its memory does not decode")
        }
        guard config.withLock({ $0!.memoryEnabled }) else {
            throw VFIOError(.ioError, rule: .VPCI_92, "\(self) \(operation) \(region): memory decode is off in the command register")
        }
    }

    /// `vfio_pci_core_do_io_rw` (VPCI-94): per step the widest access (up to `widest` bytes)
    /// aligned and inside the request, stopping short of the `excluded` range, which is passed
    /// over whole (a nil backend: reads fill 0xFF, writes are dropped).
    private func transfer(
        _ backend: any PCIDeviceBackend, from offset: UInt64, count: Int, excluding excluded: Range<UInt64>?, widest: Int,
        _ body: ((any PCIDeviceBackend)?, UInt64, Int) throws(VFIOError) -> Void
    ) throws(VFIOError) {
        var at = offset
        let end = offset + UInt64(count)
        while at < end {
            if let excluded, excluded.contains(at) {
                let skipped = min(end, excluded.upperBound) - at
                try body(nil, at, Int(skipped))
                at += skipped
                continue
            }
            // Chunks stop short of the excluded range, as `fillable` does in vfio_pci_core_do_io_rw.
            let limit = excluded.map { at < $0.lowerBound ? min(end, $0.lowerBound) : end } ?? end
            var width = widest
            while width > 1 && (at % UInt64(width) != 0 || at + UInt64(width) > limit) { width /= 2 }
            try body(backend, at, width)
            at += UInt64(width)
        }
    }

    /// Region 6 (`vfio_pci_rw` → `vfio_pci_bar_rw` for `PCI_ROM_RESOURCE`, VPCI-71, VPCI-90,
    /// VPCI-95): a write is `EINVAL`; no ROM BAR assigned (and no shadow ROM: no VGA function is
    /// modelled) `EINVAL`; from the BAR's length on `EINVAL`, a read running past it cut short;
    /// then `pci_map_rom` — no valid image (the device did not answer: memory decode off, or no
    /// 0xAA55 header) `ENOMEM`; memory decode checked as for a memory BAR (VPCI-92); the bytes from
    /// the image's end to the BAR's end read 0xFF without reaching the device; at most 4-byte
    /// accesses ("Disable qword access to the ROM bar universally"); the ROM BAR disabled again.
    private func romAccess(
        _ backend: any PCIDeviceBackend, offset: UInt64, count: Int, _ operation: String, what: @autoclosure () -> String,
        _ body: ((any PCIDeviceBackend)?, UInt64, Int) throws(VFIOError) -> Void
    ) throws(VFIOError) -> Int {
        guard operation == "read" else { throw VFIOError(.invalidArgument, rule: .VPCI_71, "\(what()): the ROM region is read-only") }
        guard let resource = backend.romResource, resource.busAddress != 0 else {
            throw VFIOError(.invalidArgument, rule: .VPCI_90, "\(what()): no ROM BAR is assigned and there is no shadow ROM")
        }
        guard offset < resource.size else {
            throw VFIOError(.invalidArgument, rule: .VPCI_90, "\(what()): at or past the ROM BAR's \(resource.size) bytes")
        }
        let done = Int(min(UInt64(count), resource.size - offset))
        guard let mapping = PCIROMMapping.map(backend) else {
            throw VFIOError(.noMemory, rule: .VPCI_95, "\(what()): pci_map_rom found no valid ROM image (is memory decode on?)")
        }
        defer { mapping.unmap() }
        try requireMemoryDecode(operation, .rom)
        try transfer(backend, from: offset, count: done, excluding: mapping.imageSize..<resource.size, widest: 4, body)
        return done
    }

    private func load(_ region: VFIORegionIndex, _ backend: any PCIDeviceBackend, _ offset: UInt64, _ width: Int) throws(VFIOError) -> UInt64 {
        if region == .config {
            let function = function
            return UInt64(config.withLock { $0!.read(Int(offset), count: width, backend: backend, host: function) })
        }
        if region == .rom { return backend.readROM(offset: offset, width: width) }
        return backend.readBAR(region.barNumber!, offset: offset, width: width)
    }

    private func store(_ region: VFIORegionIndex, _ backend: any PCIDeviceBackend, _ offset: UInt64, _ width: Int, _ value: UInt64) throws(VFIOError) {
        if region == .config {
            let function = function
            config.withLock { $0!.write(Int(offset), count: width, UInt32(truncatingIfNeeded: value), backend: backend, host: function) }
            return
        }
        backend.writeBAR(region.barNumber!, offset: offset, width: width, value)
    }
}
