import DeviceModels
import Dispatch
import Glibc
import IOMMU
import Locking
import Synchronization

/// `grace-period`: what an unmap, a detach or a release pays to wait out DMA
/// (`DMAQuiescence.synchronize()`) while another thread streams 4 KiB copies through a device's
/// port — the membarrier(2) that fences that thread, then the wait for the transfer it has in
/// flight — against the same call with no other thread doing DMA (baseline). This is the price
/// of readers that never fence: the writer fences for them.
struct GracePeriodBenchmark {
    let repetitions: Int

    func run(port: DMAPort, from source: UInt64, to destination: UInt64) throws -> BenchResult {
        let calls = 20_000
        let synchronizeMilliseconds = {
            Stopwatch.medianMilliseconds(repetitions: repetitions) {
                for _ in 0..<calls { DMAQuiescence.synchronize() }
            }
        }
        let quiet = synchronizeMilliseconds()
        let streamer = Streamer()
        DispatchQueue.global().async { [port] in
            var port = port
            do throws(DMAFault) {
                while !streamer.stop.load(ordering: .relaxed) {
                    try port.copy(from: source, to: destination, count: 4096)
                    streamer.copies.add(1, ordering: .relaxed)
                }
            } catch {
                streamer.fault.withLock { $0 = error }
            }
            streamer.done.signal()
        }
        while streamer.copies.load(ordering: .relaxed) == 0, streamer.fault.withLock({ $0 == nil }) { sched_yield() }
        let busy = synchronizeMilliseconds()
        streamer.stop.store(true, ordering: .relaxed)
        streamer.done.wait()
        if let fault = streamer.fault.withLock({ $0 }) { throw BenchmarkError("grace-period: the DMA thread faulted: \(fault)") }
        let nanoseconds = busy * 1e6 / Double(calls)
        let baseline = quiet * 1e6 / Double(calls)
        return .against(
            "grace-period", nanoseconds, "ns", baseline: baseline,
            note: "DMAQuiescence.synchronize() while another thread streams 4 KiB DMA copies (reader fence: \(DMAQuiescence.readerFence.rawValue)); baseline: the same call with no other thread doing DMA")
    }

    /// The DMA thread's controls and tally.
    private final class Streamer: Sendable {
        let stop = Atomic<Bool>(false)
        let copies = Atomic<Int>(0)
        let fault = PThreadMutex<DMAFault?>(nil)
        let done = DispatchSemaphore(value: 0)
    }
}
