import Foundation
import Glibc
import Machine
import PCIBus
import SampleDrivers
import VFIO

/// `cbdma-copy-64k`: 64 KiB copies through the CBDMA of `devices/default` (0000:00:04.0, bound
/// to vfio-pci, a type1v2 container) the way the kernel selftests' ioat driver makes them — the
/// self-linked descriptor, CHAINADDR, CHANCMP, CHANCTRL, the DMACOUNT doorbell for a batch of
/// `batch` copies, CHANSTS polled to DONE, the channel suspended — as a fraction of `memcpy`'s
/// throughput on the same bytes. One copy per doorbell costs the driver's seven register accesses
/// besides the copy; the note reports that too.
struct CBDMABenchmark {
    let repetitions: Int

    func run() throws -> BenchResult {
        let address = PCIAddress(parsing: "0000:00:04.0")!
        let machine = try SimulatedMachine.load(machine: "default", binding: [address])
        let device = try UserspaceDevice(address, in: machine.vfio)
        defer { device.close() }
        let driver = try CBDMADriver(device)
        try driver.initialize()
        defer { try? driver.remove() }
        let size: UInt64 = 64 << 10
        let source = try device.mapDMA(size: size)
        let destination = try device.mapDMA(size: size)
        for i in 0..<Int(size) { source.bytes[i] = UInt8(truncatingIfNeeded: i * 7) }
        let batches = 16
        let batch: UInt64 = 256
        var viaDevice = Double.infinity
        var plain = Double.infinity
        // Interleaved, best of the repetitions: both sides see the same cache and clock state.
        for _ in 0..<max(repetitions, 3) {
            plain = min(plain, Stopwatch.medianMilliseconds(repetitions: 1) {
                for _ in 0..<(batches * Int(batch)) { memcpy(destination.bytes.baseAddress!, source.bytes.baseAddress!, Int(size)) }
            })
            destination.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            viaDevice = min(viaDevice, try Stopwatch.medianMilliseconds(repetitions: 1) {
                for _ in 0..<batches { try copy(driver, source.iova, destination.iova, size, count: batch) }
            })
        }
        let single = try Stopwatch.medianMilliseconds(repetitions: max(repetitions, 3)) {
            for _ in 0..<256 { try copy(driver, source.iova, destination.iova, size, count: 1) }
        } * 1e6 / 256
        guard memcmp(destination.bytes.baseAddress!, source.bytes.baseAddress!, Int(size)) == 0 else {
            throw BenchmarkError("cbdma-copy-64k: the destination does not hold the source's bytes")
        }
        let copies = Double(batches) * Double(batch)
        let nanoseconds = viaDevice * 1e6 / copies
        return BenchResult(
            name: "cbdma-copy-64k", value: plain / viaDevice, unit: "x", ratio: plain / viaDevice, baseline: plain * 1e6 / copies,
            baselineUnit: "ns",
            note: "64 KiB copies through the CBDMA as the selftests' ioat driver makes them, \(batch) per doorbell (\(String(format: "%.0f", nanoseconds)) ns each; one per doorbell: \(String(format: "%.0f", single)) ns), as a fraction of memcpy's throughput (baseline, ns per copy); target >= 0.9")
    }

    /// One `memcpy_start` of `count` copies and its `memcpy_wait`.
    private func copy(_ driver: CBDMADriver, _ source: UInt64, _ destination: UInt64, _ size: UInt64, count: UInt64) throws {
        try driver.memcpyStart(source: source, destination: destination, size: size, count: count)
        if let failure = try driver.memcpyWait() { throw BenchmarkError("cbdma-copy-64k: \(failure)") }
    }
}
