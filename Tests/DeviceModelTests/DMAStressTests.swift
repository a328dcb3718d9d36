import Locking
import UserMemory
import Machine
import DeviceModels
import Foundation
import Glibc
import IOMMU
import PCIBus
import SampleDrivers
import Synchronization
import Testing
import VFIO

/// Device DMA on several threads while the control path unmaps, remaps, detaches and re-attaches
/// (issue 6; `DMAQuiescence`, DOM-04's `iommu_iotlb_sync`, T1-31, VG-13). Invariants checked:
/// no DMA lands in a range after its unmap (or its group's detach) returned; no DMA reaches
/// memory that was never mapped; every transfer either moved all its bytes or faulted having
/// moved exactly `bytesCompleted`, and the faults the threads saw are exactly the `FaultLog`'s.
/// Also run under ThreadSanitizer (`swift test --sanitize=thread --filter DMAStressTests`),
/// where the data checks double as a race detector for the unmap/DMA handshake.
@Suite("DMA stress: concurrent DMA against map, unmap, attach and detach")
struct DMAStressTests {
    static let engine = PCIAddress(parsing: "0000:5f:00.0")!
    static let nvme = PCIAddress(parsing: "0000:5e:00.0")!
    static let slots = 8
    static let slotStride: UInt64 = 0x10000
    static let slotSize = 8192
    static let slotBase: UInt64 = 0x4000_0000
    static let nvmeIOVA: UInt64 = 0x7000_0000
    /// Source pages every read must return intact, mapped read-only and never unmapped.
    static let sourceIOVA: UInt64 = 0x7100_0000

    @Test(
        "3 engine threads and 1 nvme thread of DMA against unmap/remap of 8 slots and detach/attach of the nvme group",
        arguments: [0x57e5_5001] as [UInt64])
    func concurrentDMA(seed: UInt64) throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let device = try UserspaceDevice(Self.engine, in: machine.vfio)
        defer { device.close() }
        try device.setBusMaster(true)
        let process = machine.process
        let container = device.container

        let slotMemory = try (0..<Self.slots).map { _ throws(MemoryError) in try process.allocate(size: UInt64(Self.slotSize)) }
        for (slot, memory) in slotMemory.enumerated() {
            try container.map(vaddr: memory.address, iova: Self.slotIOVA(slot), size: memory.size)
        }
        let source = try process.allocate(size: UInt64(Self.slotSize))
        StressPattern.fill(source.pointer, count: Self.slotSize)
        try container.map(vaddr: source.address, iova: Self.sourceIOVA, size: source.size, access: .read)
        let canary = try process.allocate(size: UInt64(Self.slotSize))
        let nvmeTarget = try process.allocate(size: 4096)
        try container.map(vaddr: nvmeTarget.address, iova: Self.nvmeIOVA, size: nvmeTarget.size)

        let nvmeGroup = try machine.vfio.openGroup(try #require(machine.core.device(Self.nvme)?.groupID))
        defer { nvmeGroup.close() }
        try nvmeGroup.setContainer(container)
        let nvmeModel = try #require(machine.devices[Self.nvme])
        nvmeModel.writeConfig(0x04, width: 2, 0x0006)
        let engineModel = try #require(machine.devices[Self.engine])

        let control = StressControl()
        var workers: [StressWorker] = (0..<3).map { index in
            StressWorker(name: "engine-\(index)", port: engineModel.dmaPort(), seed: seed &+ UInt64(index), targets: .slots)
        }
        workers.append(StressWorker(name: "nvme", port: nvmeModel.dmaPort(), seed: seed &+ 99, targets: .nvme))
        let threads = workers.map { worker in
            StressThread {
                var worker = worker
                let tally = worker.run(until: control)
                control.tallies.withLock { $0.append(tally) }
            }
        }

        var random = SplitMix64(seed: seed)
        for round in 0..<Self.rounds {
            let slot = random.below(Self.slots)
            let memory = slotMemory[slot]
            #expect(try container.unmap(iova: Self.slotIOVA(slot), size: memory.size) == memory.size)
            if let change = Self.changedWhileIdle(memory.pointer, count: Self.slotSize) {
                Issue.record("slot \(slot) changed at byte \(change) after its unmap returned (round \(round), seed \(seed))")
            }
            memset(memory.pointer, 0, Self.slotSize)
            try container.map(vaddr: memory.address, iova: Self.slotIOVA(slot), size: memory.size)
            if round % 8 == 7 {
                try nvmeGroup.unsetContainer()
                if let change = Self.changedWhileIdle(nvmeTarget.pointer, count: 4096) {
                    Issue.record("nvme target changed at byte \(change) after its group left the container (round \(round))")
                }
                try nvmeGroup.setContainer(container)
            }
        }
        control.stop.store(true, ordering: .releasing)
        for thread in threads { thread.join() }

        let tallies = control.tallies.withLock { $0 }
        #expect(tallies.count == workers.count)
        for tally in tallies {
            #expect(tally.violations.isEmpty, "\(tally.name): \(tally.violations.prefix(3))")
            #expect(tally.completed > 0 && tally.faults > 0, "\(tally.name) saw both outcomes: \(tally)")
        }
        #expect(Self.firstNonZero(canary.pointer, count: Self.slotSize) == nil, "memory that was never mapped stayed untouched")
        let counters = machine.core.faults.counters
        #expect(counters.total == tallies.reduce(0) { $0 + $1.faults }, "every fault a thread saw is in the FaultLog, and no other")
        for reason in IOFaultReason.allCases {
            let seen = tallies.reduce(0) { $0 + ($1.faultsByReason[reason] ?? 0) }
            #expect((counters.byReason[reason] ?? 0) == seen, "\(reason) faults: FaultLog vs threads")
        }
        let transfers = tallies.reduce(0) { $0 + $1.completed + Int($1.faults) }
        print("DMA stress: \(transfers) transfers (\(tallies.map(\.description).joined(separator: "; "))) against \(Self.rounds) unmaps and \(Self.rounds / 8) detaches; reader fence: \(DMAQuiescence.readerFence.rawValue)")
    }

    static func slotIOVA(_ slot: Int) -> UInt64 { slotBase + UInt64(slot) * slotStride }

    /// Snapshots `count` bytes, lets the DMA threads run for a while, and returns the first byte
    /// that changed (nil: none did).
    static func changedWhileIdle(_ pointer: UnsafeMutableRawPointer, count: Int) -> Int? {
        let before = [UInt8](UnsafeRawBufferPointer(start: pointer, count: count))
        usleep(300)
        let after = UnsafeRawBufferPointer(start: pointer, count: count)
        return (0..<count).first { before[$0] != after[$0] }
    }

    static func firstNonZero(_ pointer: UnsafeMutableRawPointer, count: Int) -> Int? {
        let bytes = UnsafeRawBufferPointer(start: pointer, count: count)
        return (0..<count).first { bytes[$0] != 0 }
    }

    /// Unmap-and-remap rounds of the control thread; every eighth also detaches the NVMe group.
    static let rounds = 240
}
