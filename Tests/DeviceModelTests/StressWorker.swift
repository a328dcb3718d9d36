import DeviceModels
import Foundation
import IOMMU
import Locking
import PCIBus
import Synchronization

/// One DMA thread of `DMAStressTests`: issues transfers through its own `DMAPort` until told to
/// stop and checks each outcome against what the bus allows — a transfer moves all its bytes or
/// faults having moved exactly the mapped prefix, reads return the source's bytes and leave the
/// rest of the buffer alone.
struct StressWorker: Sendable {
    enum Targets: Sendable {
        /// The engine: the eight slots (remapped under it), the gaps between them and the read-only source.
        case slots
        /// The nvme function: one page whose group leaves and rejoins the container under it.
        case nvme
    }

    struct Tally: Sendable, CustomStringConvertible {
        let name: String
        var completed = 0
        var faults: UInt64 = 0
        var faultsByReason: [IOFaultReason: UInt64] = [:]
        var bytes: UInt64 = 0
        var violations: [String] = []

        var description: String { "\(name): \(completed) completed, \(faults) faulted, \(bytes) bytes" }
    }

    let name: String
    var port: DMAPort
    var random: SplitMix64
    let targets: Targets

    init(name: String, port: DMAPort, seed: UInt64, targets: Targets) {
        self.name = name
        self.port = port
        random = SplitMix64(seed: seed)
        self.targets = targets
    }

    mutating func run(until control: StressControl) -> Tally {
        var tally = Tally(name: name)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * 4096, alignment: 64)
        defer { buffer.deallocate() }
        var stamp: UInt64 = 0
        while !control.stop.load(ordering: .acquiring) {
            stamp &+= 1
            switch targets {
            case .nvme:
                fill(buffer, stamp: stamp, count: 4096)
                transfer(.write, DMAStressTests.nvmeIOVA, buffer, count: 4096, mappedPrefixes: [0, 4096], &tally)
            case .slots:
                let slot = DMAStressTests.slotIOVA(random.below(DMAStressTests.slots))
                switch random.below(6) {
                case 0, 1:
                    fill(buffer, stamp: stamp, count: 4096)
                    transfer(.write, slot + UInt64(random.below(2)) * 4096, buffer, count: 4096, mappedPrefixes: [0, 4096], &tally)
                case 2:
                    // Runs off the slot's end into the unmapped gap: never more than one page lands.
                    fill(buffer, stamp: stamp, count: 8192)
                    transfer(.write, slot + 4096, buffer, count: 8192, mappedPrefixes: [0, 4096], &tally)
                case 3:
                    // An unmap may land between the two pages' translations: the first page alone is legal.
                    transfer(.read, slot, buffer, count: 8192, mappedPrefixes: [0, 4096, 8192], &tally)
                case 4:
                    readSource(buffer, &tally)
                default:
                    // The source is mapped read-only: writing it is refused before a byte moves.
                    transfer(.write, DMAStressTests.sourceIOVA, buffer, count: 4096, mappedPrefixes: [0], &tally)
                }
            }
        }
        return tally
    }

    /// Reads the source's second page and the unmapped page after it: exactly the first page
    /// arrives, with the source's bytes, and the rest of the buffer is untouched.
    private mutating func readSource(_ buffer: UnsafeMutableRawBufferPointer, _ tally: inout Tally) {
        buffer.initializeMemory(as: UInt8.self, repeating: 0xee)
        transfer(.read, DMAStressTests.sourceIOVA + 4096, buffer, count: 8192, mappedPrefixes: [4096], &tally)
        for index in 0..<8192 {
            let expected = index < 4096 ? StressPattern.byte(4096 + index) : 0xee
            if buffer[index] != expected {
                tally.violations.append("\(name): source read byte \(index) is \(buffer[index]), expected \(expected)")
                return
            }
        }
    }

    /// One transfer; a fault must have completed one of `mappedPrefixes` bytes (the mapped
    /// prefixes the range can have) and have happened right after them.
    private mutating func transfer(
        _ access: IOAccess, _ iova: UInt64, _ buffer: UnsafeMutableRawBufferPointer, count: Int, mappedPrefixes: [UInt64],
        _ tally: inout Tally
    ) {
        let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        do throws(DMAFault) {
            if access == .write { try port.write(to: iova, from: UnsafeRawBufferPointer(bytes)) } else { try port.read(from: iova, into: bytes) }
            tally.completed += 1
            tally.bytes += UInt64(count)
            if !mappedPrefixes.contains(UInt64(count)) {
                tally.violations.append("\(name): \(access) of \(count) bytes at 0x\(String(iova, radix: 16)) completed past its mapping")
            }
        } catch {
            tally.faults += 1
            tally.bytes += error.bytesCompleted
            guard case .iommu(let reason) = error.reason else {
                tally.violations.append("\(name): unexpected fault \(error)")
                return
            }
            tally.faultsByReason[reason, default: 0] += 1
            if !mappedPrefixes.contains(error.bytesCompleted) || error.iova != iova + error.bytesCompleted {
                tally.violations.append("\(name): fault after \(error.bytesCompleted) bytes at 0x\(String(error.iova, radix: 16)) for \(count) at 0x\(String(iova, radix: 16))")
            }
        }
    }

    private func fill(_ buffer: UnsafeMutableRawBufferPointer, stamp: UInt64, count: Int) {
        let words = buffer.baseAddress!.assumingMemoryBound(to: UInt64.self)
        for index in 0..<(count / 8) { words[index] = stamp }
    }
}

/// The stop flag and the results the stress threads hand back.
final class StressControl: Sendable {
    let stop = Atomic<Bool>(false)
    let tallies = PThreadMutex<[StressWorker.Tally]>([])
}

/// The source pages' contents: byte `i` is a function of `i` alone.
enum StressPattern {
    static func byte(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 31 &+ 7) }

    static func fill(_ pointer: UnsafeMutableRawPointer, count: Int) {
        for index in 0..<count { pointer.storeBytes(of: byte(index), toByteOffset: index, as: UInt8.self) }
    }
}

/// A dedicated thread (not a pool thread: the stress loops spin, and a pool sized to two cores
/// would starve the control path), joined with `join()`.
final class StressThread: Sendable {
    private let finished = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [finished] in
            body()
            finished.signal()
        }
        thread.start()
    }

    func join() { finished.wait() }
}
