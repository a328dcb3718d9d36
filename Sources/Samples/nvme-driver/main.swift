// nvme-driver: a userspace NVMe driver for the NVMe controller model, run against the default machine.
//
// Brings the controller up through VFIO the way Linux's nvme driver does — admin queue, CC.EN,
// CSTS.RDY, Identify, Set Features (Number of Queues), an I/O queue pair on MSI-X — then writes
// a buffer that starts mid-page (so the command carries a PRP list), reads it back and verifies
// it, copies through the namespace as the selftests' memcpy op and raises an MSI. Finally it
// points a Write at an IOVA that was never mapped: the command completes with Data Transfer
// Error, the IOMMU records the fault, and reading the blocks back shows the namespace kept its
// data.
//
//   swift run nvme-driver [--machine NAME] [--device BDF]

import Machine
import Foundation
import PCIBus
import SampleDrivers
import VFIO

guard let options = SampleOptions.parseOrPrintUsage(CommandLine.arguments, defaultDevice: PCIAddress(parsing: "0000:5e:00.0")!) else { exit(64) }
let address = options.device

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

@MainActor func run() throws {
    let machine = try SimulatedMachine.load(machine: options.machine)
    let device = try UserspaceDevice(address, in: machine.vfio)
    defer { device.close() }
    guard let driver = try device.bind(NVMeDriver.self) else { exit(1) }
    try driver.initialize()
    print("init: \"\(driver.modelNumber)\", namespace 1: \(driver.namespaceBlocks) blocks of \(driver.blockSize) bytes")
    print("      Number of Queues granted \(driver.grantedQueues.submission) SQ / \(driver.grantedQueues.completion) CQ; I/O queue pair 1 on MSI-X vector 1")
    print("      max \(driver.maxMemcpySize) bytes × \(driver.maxMemcpyCount) copies per memcpy")

    let size = driver.maxMemcpySize
    let source = try device.mapDMA(size: size)
    let destination = try device.mapDMA(size: size)
    for i in 0..<Int(size) { source.bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }

    // Mid-page start: PRP1 covers the rest of the first page, a PRP list the other pages.
    let offset = Int(driver.blockSize)
    let blocks = Int(size / driver.blockSize) - 1
    let lba = driver.namespaceBlocks - 1024
    let written = try driver.write(lba: lba, from: source.iova + UInt64(offset), blocks: blocks)
    let readBack = try driver.read(lba: lba, into: destination.iova + UInt64(offset), blocks: blocks)
    let length = blocks * offset
    let same = memcmp(source.bytes.baseAddress! + offset, destination.bytes.baseAddress! + offset, length) == 0
    print("write \(blocks) blocks at LBA \(lba) from IOVA \(hex(source.iova + UInt64(offset))) (PRP1 mid-page + PRP list): \(written)")
    print("read them back into IOVA \(hex(destination.iova + UInt64(offset))): \(readBack), data \(same ? "verified" : "MISMATCH")")

    destination.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    let failure = try driver.memcpy(source: source.iova, destination: destination.iova, size: size)
    let copied = memcmp(source.bytes.baseAddress!, destination.bytes.baseAddress!, Int(size)) == 0
    print("memcpy \(size) bytes IOVA \(hex(source.iova)) → LBA 0 → \(hex(destination.iova)): \(failure ?? "done"), data \(copied ? "verified" : "MISMATCH")")

    try driver.sendMSI()
    print("send_msi (Flush): eventfd reads \(driver.interrupt.read().map(String.init) ?? "nothing (EAGAIN)")")

    let unmapped: UInt64 = 0xdead_0000
    let outcome = try driver.write(lba: lba, from: unmapped, blocks: 8)
    print("write 8 blocks at LBA \(lba) from unmapped IOVA \(hex(unmapped)): \(outcome)")
    for line in machine.faultLog(last: 1) { print("IOMMU fault log: \(line)") }
    destination.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    let check = try driver.read(lba: lba, into: destination.iova, blocks: 8)
    let kept = memcmp(source.bytes.baseAddress! + offset, destination.bytes.baseAddress!, 8 * offset) == 0
    print("read LBA \(lba) back: \(check), namespace \(kept ? "unchanged" : "CHANGED")")
    try driver.remove()
    exit(same && copied && kept && written.isSuccess && readBack.isSuccess && failure == nil && outcome == .dataTransferError ? 0 : 1)
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("nvme-driver: \(error)\n".utf8))
    exit(1)
}
