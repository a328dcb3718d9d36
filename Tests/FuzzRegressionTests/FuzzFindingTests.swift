import Foundation
import KernelRules
import Machine
import DeviceModels
import Glibc
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import VFIO
import Syscalls

extension FuzzRegressionTests {
    /// One test per bug the fuzz targets found: the crash input replayed through its target, and
    /// the behaviour that replaced the crash checked through the public API.
    @Suite struct Findings {
        /// The memcpy engine of the default machine, opened through VFIO with bus mastering on and
        /// one mapped buffer.
        struct MemcpyBench {
            let machine: SimulatedMachine
            let device: UserspaceDevice
            let buffer: DMARegion

            init() throws {
                machine = try SimulatedMachine.load(machine: "default")
                device = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: machine.vfio)
                buffer = try device.mapDMA(size: 1 << 16)
                try device.setBusMaster(true)
            }

            func write(_ offset: UInt64, _ value: UInt64) throws { try device.device.writeRegister(value, bar: 0, offset: offset) }
            func read(_ offset: UInt64) throws -> UInt32 { try device.device.readRegister(UInt32.self, bar: 0, offset: offset) }
        }

        @Test("dump: a hex row whose offset is past config space is refused before libpci reads the file (libpci's reader, and lspci -F, crash on an 8-digit offset from 0x80000000)")
        func dumpRowOffsetPastConfigSpace() throws {
            try replay("dump", "crash-row-offset-past-config-space")
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-row-offset-\(getpid()).txt").path
            defer { unlink(path) }
            try "0000:3b:00.1 Audio device\nEEEEEE20: 00 00 00 00\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect {
                _ = try BusSnapshot.load(.dump(path: path))
            } throws: { error in
                (error as? PCIBusError)?.kind == .configSpaceTooLarge && "\(error)".contains("\(path):2: row at offset 0xeeeeee20 is past 4096 bytes")
            }
        }

        @Test("memcpy-engine: a doorbell on a ring of bad size halts the channel and writes the error completion record (it trapped on the DMA port not yet set up)")
        func memcpyBadRingSizeHalts() throws {
            try replay("memcpy-engine", "crash-bad-ring-size-halt")
            let bench = try MemcpyBench()
            defer { bench.device.close() }
            try bench.write(MemcpyEngine.Register.ringBase, bench.buffer.iova)
            try bench.write(MemcpyEngine.Register.ringSize, 8192)
            try bench.write(MemcpyEngine.Register.completion, bench.buffer.iova + 0x1000)
            try bench.write(MemcpyEngine.Register.control, 1)
            try bench.write(MemcpyEngine.Register.tail, 1)
            #expect(try bench.read(MemcpyEngine.Register.status) == 1)
            #expect(try bench.read(MemcpyEngine.Register.error) == MemcpyEngine.Error.ringConfiguration.rawValue)
            let record = bench.buffer.bytes.baseAddress! + 0x1000
            #expect(record.load(as: UInt32.self) == 2)
            #expect(record.load(fromByteOffset: 4, as: UInt32.self) == MemcpyEngine.Error.ringConfiguration.rawValue)
        }

        @Test("SET_IRQS: triggering MSI-X vectors past those enabled skips them, as the kernel does (it trapped on an inverted range)")
        func msixTriggerPastEnabledVectors() throws {
            try replay("nvme", "crash-msix-trigger-past-enabled")
            let machine = try SimulatedMachine.load(machine: "default")
            let device = try UserspaceDevice(PCIAddress(parsing: "0000:5e:00.0")!, in: machine.vfio)
            defer { device.close() }
            let interrupt = try EventFD()
            try device.device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
            try device.device.triggerInterrupts(.msix, start: 7, count: 1)
            try device.device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: .msix, start: 3, count: 2, data: .bool([true, true])))
            #expect(interrupt.read() == nil)
            try device.device.triggerInterrupts(.msix, start: 0, count: 2)
            #expect(interrupt.read() == 1)
        }

        @Test("SET_IRQS through the UAPI: a count past the device's vectors is EINVAL before any data is copied (the facade read count entries past the struct)")
        func setIRQsValidatesCountBeforeCopying() throws {
            try replay("uapi", "crash-set-irqs-huge-count")
            let machine = try SimulatedMachine.load(machine: "default")
            let device = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: machine.vfio)
            defer { device.close() }
            // The 20-byte header ends a page whose successor is inaccessible: reading one data
            // entry faults.
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let memory = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
            defer { munmap(memory, 2 * page) }
            #expect(mprotect(memory + page, page, PROT_NONE) == 0)
            let header = memory + page - 20
            let count: UInt32 = 0x2_0000
            for (offset, value) in [(0, 20 + 4 * count), (4, 0x24), (8, 2), (12, 0), (16, count)] as [(Int, UInt32)] {
                header.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
            }
            let result = device.device.ioctlResult(request: VFIORequest.deviceSetIRQs, argument: UInt(bitPattern: header))
            #expect(throws: VFIOError.self) { try result.get() }
            if case .failure(let error) = result { #expect(error.errno == .invalidArgument) }
        }

        @Test("DIRTY_PAGES through the UAPI: a bitmap pointer above the user address space fails access_ok (EINVAL) and an argument there is EFAULT (the facade wrote the bitmap through it)")
        func dirtyBitmapOutsideUserSpace() throws {
            try replay("uapi", "crash-dirty-bitmap-kernel-address")
            let machine = try SimulatedMachine.load(machine: "default")
            let device = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: machine.vfio)
            defer { device.close() }
            let region = try device.mapDMA(size: 0x1000)
            _ = try device.container.dirtyPages(.start)
            // struct vfio_iommu_type1_dirty_bitmap + _get: argsz, flags, iova, size, pgsize, bitmap size, data.
            var request: (UInt32, UInt32, UInt64, UInt64, UInt64, UInt64, UInt64) = (48, 4, region.iova, 0x1000, 0x1000, 8, 0xffff_ffff_ffff_f000)
            let result = withUnsafeMutableBytes(of: &request) {
                device.container.ioctlResult(request: VFIORequest.iommuDirtyPages, argument: UInt(bitPattern: $0.baseAddress!))
            }
            #expect(throws: VFIOError.self) { try result.get() }
            if case .failure(let error) = result { #expect(error.errno == .invalidArgument && error.rule.id == "T1-31") }
            let kernelAddress = device.container.ioctlResult(request: VFIORequest.iommuGetInfo, argument: 0xffff_ffff_ffff_f000)
            if case .failure(let error) = kernelAddress { #expect(error.errno == .badAddress) } else { Issue.record("GET_INFO from a kernel address succeeded") }
        }

        @Test("memcpy-engine: a TAIL more than RING_SIZE ahead of HEAD halts the channel (the engine lapped a one-slot ring up to 2^32 times on one doorbell)")
        func memcpyTailLappingRingHalts() throws {
            try replay("memcpy-engine", "hang-tail-laps-ring")
            let bench = try MemcpyBench()
            defer { bench.device.close() }
            // One valid descriptor: 64 bytes from the buffer's start to its second half.
            let descriptor = bench.buffer.bytes.baseAddress!
            descriptor.storeBytes(of: UInt64(64) << 32, as: UInt64.self)
            descriptor.storeBytes(of: bench.buffer.iova + 0x1000, toByteOffset: 8, as: UInt64.self)
            descriptor.storeBytes(of: bench.buffer.iova + 0x8000, toByteOffset: 16, as: UInt64.self)
            descriptor.storeBytes(of: UInt64(0), toByteOffset: 24, as: UInt64.self)
            try bench.write(MemcpyEngine.Register.ringBase, bench.buffer.iova)
            try bench.write(MemcpyEngine.Register.ringSize, 1)
            try bench.write(MemcpyEngine.Register.control, 1)
            try bench.write(MemcpyEngine.Register.tail, 0xffff_ffff)
            #expect(try bench.read(MemcpyEngine.Register.status) == 1)
            #expect(try bench.read(MemcpyEngine.Register.error) == MemcpyEngine.Error.ringConfiguration.rawValue)
            #expect(try bench.read(MemcpyEngine.Register.bytes) == 0)
            // A full ring is fine: after RESET, TAIL = HEAD + RING_SIZE copies once.
            try bench.write(MemcpyEngine.Register.reset, 1)
            try bench.write(MemcpyEngine.Register.tail, 1)
            #expect(try bench.read(MemcpyEngine.Register.status) == 0)
            #expect(try bench.read(MemcpyEngine.Register.bytes) == 64)
        }
    }
}
