import CBenchSupport
import Foundation
import Glibc
import Machine
import PCIBus
import SampleDrivers
import Syscalls
import UserMemory
import VFIO

/// The figures of unmodified programs against the simulation (`vfiokit run`), each against a
/// baseline of the same run, on the memcpy engine at 0000:5f:00.0 of `devices/default`:
/// `mmio-trap` (a 4-byte register read through the mmap'd BAR ÷ a bare SIGSEGV round trip whose
/// handler only skips the load; `pread` of the same register beside it), `preload-map-unmap`
/// (MAP_DMA+UNMAP_DMA of 4 KiB by a C program through the interposed `ioctl` ÷ the Swift API
/// pair) and `preload-dma-copy-64k` (64 KiB copies a C program drives through its mmap'd BAR,
/// throughput ÷ plain `memcpy` of the same blocks in that program).
struct PreloadBenchmark {
    let repetitions: Int
    static let engine = "0000:5f:00.0"

    func run() throws -> [BenchResult] {
        let (trap, bare, pread) = try trapNanoseconds()
        // Interleaved, best of each: the C program and the Swift pair see the same host noise.
        var swiftPair = Double.infinity
        var preloadPair = Double.infinity
        for _ in 0..<max(repetitions, 3) {
            swiftPair = min(swiftPair, try swiftMapUnmapNanoseconds())
            guard let figure = try clientFigures(["map-unmap", "20000", "1"]).first else {
                throw BenchmarkError("vfiokit-bench-client map-unmap printed no figure")
            }
            preloadPair = min(preloadPair, figure)
        }
        let copy = try clientFigures(["dma-copy", "4096", String(max(repetitions, 3))])
        guard copy.count == 2 else { throw BenchmarkError("vfiokit-bench-client dma-copy printed no figures") }
        return [
            .against(
                "mmio-trap", trap, "ns", baseline: bare,
                note: "a readl of a register through the mmap'd BAR (fault, decode, one device access, return); baseline: a bare SIGSEGV round trip (handler skips the load); pread of the same register: \(String(format: "%.0f", pread)) ns; target ratio <= 1.3"),
            .against(
                "preload-map-unmap", preloadPair, "ns", baseline: swiftPair,
                note: "MAP_DMA+UNMAP_DMA of 4 KiB by a C program through the interposed ioctl (pin checks on the real address space); baseline: the Swift API pair on allocated memory; both best of the rounds, interleaved; target ratio <= 1.5"),
            .against(
                "preload-dma-copy-64k", copy[1] / copy[0], "x", baseline: 1,
                note: "throughput of 64 KiB copies a C program runs on the engine through its mmap'd BAR (ring of 64 descriptors, one trapped doorbell per round, completion polled in memory) / plain memcpy of the same blocks (\(String(format: "%.0f", copy[1])) ns each, device \(String(format: "%.0f", copy[0])) ns); target >= 0.9"),
        ]
    }

    /// The engine open through the boundary, memory decode on, BAR0 mapped: ns per trapped
    /// register read, per bare fault, per `pread` of the register.
    private func trapNanoseconds() throws -> (trap: Double, bare: Double, pread: Double) {
        let system = try SimulatedMachine.load(machine: "default").vfio
        guard let address = PCIAddress(parsing: Self.engine), case .success(let groupID) = system.iommuGroup(of: address) else {
            throw BenchmarkError("\(Self.engine): no IOMMU group on devices/default")
        }
        let container = system.open("/dev/vfio/vfio")
        let group = system.open("/dev/vfio/\(groupID)")
        defer {
            system.close(group)
            system.close(container)
        }
        var containerFD = container
        _ = withUnsafeMutableBytes(of: &containerFD) { system.ioctl(group, VFIORequest.groupSetContainer, UInt(bitPattern: $0.baseAddress!)) }
        _ = system.ioctl(container, VFIORequest.setIOMMU, 3)
        let device = Self.engine.withCString { system.ioctl(group, VFIORequest.groupGetDeviceFD, UInt(bitPattern: $0)) }
        guard device >= 0 else { throw BenchmarkError("GET_DEVICE_FD \(Self.engine) failed: errno \(errno)") }
        defer { system.close(device) }
        var command: UInt16 = 0x6
        _ = withUnsafeBytes(of: &command) { system.pwrite(device, $0, (7 << 40) + 4) }
        guard let bar = system.mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, device, 0) else {
            throw BenchmarkError("mmap of BAR0 failed: errno \(errno)")
        }
        defer { system.munmap(bar, 4096) }
        let rounds = Int32(max(repetitions, 3))
        let trap = vfiokit_bench_loads(bar, 20000, rounds)
        let bare = vfiokit_bench_bare_fault(20000, rounds)
        var word: UInt32 = 0
        let preadMilliseconds = Stopwatch.medianMilliseconds(repetitions: repetitions) {
            for _ in 0..<20000 { _ = withUnsafeMutableBytes(of: &word) { system.pread(device, $0, 0) } }
        }
        return (trap, bare, preadMilliseconds * 1e6 / 20000)
    }

    /// The Swift API's MAP_DMA+UNMAP_DMA of one 4 KiB page of allocated memory, ns per pair (one
    /// round of 20,000).
    private func swiftMapUnmapNanoseconds() throws -> Double {
        let system = try SimulatedMachine.load(machine: "default").vfio
        guard let address = PCIAddress(parsing: Self.engine) else { throw BenchmarkError("\(Self.engine): not a PCI address") }
        let device = try UserspaceDevice(address, in: system)
        defer { device.close() }
        let container = device.container
        let memory = try system.process.allocate(size: 4096)
        let pairs = 20000
        let milliseconds = try Stopwatch.medianMilliseconds(repetitions: 1) {
            for _ in 0..<pairs {
                try container.map(vaddr: memory.address, iova: 0x100000, size: 4096)
                _ = try container.unmap(iova: 0x100000, size: 4096)
            }
        }
        return milliseconds * 1e6 / Double(pairs)
    }

    /// Runs `vfiokit-bench-client` (beside this executable) with the preload library on
    /// devices/default; the numbers on its output line.
    private func clientFigures(_ arguments: [String]) throws -> [Double] {
        let client = PreloadLauncher.executableDirectory + "/vfiokit-bench-client"
        guard let library = PreloadLauncher.library(), FileManager.default.isExecutableFile(atPath: client) else {
            throw BenchmarkError("the preload entries need libvfiokit-preload.so and vfiokit-bench-client beside vfiokit (swift build builds both)")
        }
        let machine = try FixtureMachine.locate("default")
        let environment = PreloadLauncher.environment(library: library, machine: machine, binding: [])
        let outcome = PreloadLauncher.run([client] + arguments, environment: environment, captureOutput: true)
        guard outcome.status == 0 else { throw BenchmarkError("vfiokit-bench-client \(arguments[0]) exited \(outcome.status) \(outcome.failure ?? "")") }
        return outcome.output.split(separator: " ").dropFirst().compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
