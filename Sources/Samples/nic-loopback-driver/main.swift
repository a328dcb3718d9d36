// nic-loopback-driver: a userspace driver for the loopback NIC, run against the default machine.
//
// The VFIO selftests turn an igb NIC into a DMA engine with PHY loopback; this does the same
// with the loopback NIC model: open the device's group, check it is viable, put it in a type1v2
// container, map DMA buffers, program TX and RX rings through BAR0, take MSI-X on an eventfd —
// then copy a frame whose buffers straddle page boundaries, verify it, and finally send from an
// IOVA that was never mapped: the device halts with the faulting IOVA, the IOMMU records the
// fault, the destination is untouched and no interrupt fires.
//
//   swift run nic-loopback-driver [--machine NAME] [--device BDF]

import Machine
import Foundation
import PCIBus
import SampleDrivers
import VFIO

guard let options = SampleOptions.parseOrPrintUsage(CommandLine.arguments, defaultDevice: PCIAddress(parsing: "0000:60:00.0")!) else { exit(64) }
let address = options.device

@MainActor func run() throws {
    let machine = try SimulatedMachine.load(machine: options.machine)
    let device = try UserspaceDevice(address, in: machine.vfio)
    defer { device.close() }
    guard let driver = try device.bind(LoopbackNICDriver.self) else { exit(1) }
    try driver.initialize()
    print("init: TX and RX rings programmed, loopback on: max \(driver.maxMemcpySize) bytes × \(driver.maxMemcpyCount) frames per start")

    // Both buffers start 512 bytes before a page boundary, so the frame crosses it on each side.
    let size = driver.maxMemcpySize
    let source = try device.mapDMA(size: 8192)
    let destination = try device.mapDMA(size: 8192)
    let offset = 4096 - 512
    for i in 0..<Int(size) { source.bytes[offset + i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
    let from = source.iova + UInt64(offset), to = destination.iova + UInt64(offset)
    let failure = try driver.memcpy(source: from, destination: to, size: size)
    let same = memcmp(source.bytes.baseAddress! + offset, destination.bytes.baseAddress! + offset, Int(size)) == 0
    print("loopback \(size) bytes IOVA 0x\(String(from, radix: 16)) → 0x\(String(to, radix: 16)): \(failure ?? "done"), data \(same ? "verified" : "MISMATCH")")

    try driver.sendMSI()
    print("send_msi: eventfd reads \(driver.interrupt.read().map(String.init) ?? "nothing (EAGAIN)")")

    let fault = try MemcpyExercise(driver).copyFromUnmapped(size: size)
    print("loopback from unmapped IOVA 0x\(String(fault.iova, radix: 16)): \(fault.failure ?? "unexpectedly succeeded"); destination \(fault.destinationUntouched ? "untouched" : "CHANGED"); interrupt \(fault.interruptRaised ? "RAISED" : "none")")
    for line in machine.faultLog(last: 1) { print("IOMMU fault log: \(line)") }
    try driver.remove()
    exit(same && failure == nil && fault.contained ? 0 : 1)
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("nic-loopback-driver: \(error)\n".utf8))
    exit(1)
}
