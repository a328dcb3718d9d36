import DeviceModels
import Foundation
import Machine
import Glibc
import PCIBus
import SampleDrivers
import VFIO

/// The device-model figures on `devices/default`'s memcpy engine (0000:5f:00.0, group 28, a
/// type1v2 container, buffers mapped with 4 KiB pages): `dma-copy-4k` and `dma-copy-64k` (the
/// engine's DMA port copying between two mapped IOVA ranges — bus-master check, IOTLB lookups or
/// page walks, the granted-memory check, the copy — against plain `memcpy` of the same bytes,
/// single thread, as a throughput ratio), and `memcpy-storm` (the selftests' storm: max count ×
/// max size copies through the driver, in GiB/s, against `memcpy` of the same bytes), then
/// `grace-period` (`GracePeriodBenchmark`) on the same engine; then `cbdma-copy-64k`
/// (`CBDMABenchmark`).
struct DeviceBenchmark {
    let repetitions: Int

    func run() throws -> [BenchResult] {
        let machine = try SimulatedMachine.load(machine: "default")
        let address = PCIAddress(parsing: "0000:5f:00.0")!
        let device = try UserspaceDevice(address, in: machine.vfio)
        defer { device.close() }
        let driver = try MemcpyEngineDriver(device)
        try driver.initialize()
        let size = driver.maxMemcpySize
        let source = try device.mapDMA(size: size)
        let destination = try device.mapDMA(size: size)
        for i in 0..<Int(size) { source.bytes[i] = UInt8(truncatingIfNeeded: i) }
        guard let engine = machine.devices[address] else { throw BenchmarkError("no memcpy engine at \(address)") }
        var port = engine.dmaPort()

        var results: [BenchResult] = []
        for bytes in [UInt64(4096), 65536] {
            let iterations = Int((256 << 20) / bytes)
            var dma = Double.infinity
            var plain = Double.infinity
            // Interleaved, best of the repetitions: both sides see the same cache and clock state.
            for _ in 0..<max(repetitions, 3) {
                plain = min(plain, Stopwatch.medianMilliseconds(repetitions: 1) {
                    for _ in 0..<iterations { memcpy(destination.bytes.baseAddress!, source.bytes.baseAddress!, Int(bytes)) }
                })
                dma = min(dma, try Stopwatch.medianMilliseconds(repetitions: 1) {
                    for _ in 0..<iterations { try port.copy(from: source.iova, to: destination.iova, count: bytes) }
                })
            }
            let name = bytes == 4096 ? "dma-copy-4k" : "dma-copy-64k"
            let nanoseconds = dma * 1e6 / Double(iterations)
            results.append(
                BenchResult(
                    name: name, value: plain / dma, unit: "x", ratio: plain / dma, baseline: plain * 1e6 / Double(iterations),
                    baselineUnit: "ns",
                    note: "device DMA through the paging domain (\(String(format: "%.1f", nanoseconds)) ns per \(bytes)-byte copy) as a fraction of memcpy's throughput (baseline, ns per copy); target >= \(bytes == 4096 ? "0.90" : "0.95")"))
        }

        let count = driver.maxMemcpyCount
        let total = Double(count * size)
        var storm = Double.infinity
        var plain = Double.infinity
        for _ in 0..<max(repetitions, 3) {
            storm = min(storm, try Stopwatch.medianMilliseconds(repetitions: 1) {
                if let failure = try driver.memcpy(source: source.iova, destination: destination.iova, size: size, count: count) {
                    throw BenchmarkError("memcpy-storm failed: \(failure)")
                }
            })
            plain = min(plain, Stopwatch.medianMilliseconds(repetitions: 1) {
                for _ in 0..<count { memcpy(destination.bytes.baseAddress!, source.bytes.baseAddress!, Int(size)) }
            })
        }
        let gibPerSecond = total / (storm / 1000) / Double(1 << 30)
        results.append(
            BenchResult(
                name: "memcpy-storm", value: gibPerSecond, unit: "GiB/s", ratio: plain / storm,
                baseline: total / (plain / 1000) / Double(1 << 30),
                note: "\(count) × \(size)-byte copies from one descriptor through the memcpy driver and engine (the selftests' memcpy_storm); baseline: memcpy of the same bytes (GiB/s)"))
        results.append(try GracePeriodBenchmark(repetitions: repetitions).run(port: port, from: source.iova, to: destination.iova))
        try driver.remove()
        results.append(try CBDMABenchmark(repetitions: repetitions).run())
        return results
    }
}
