// memcpy-driver: a userspace driver for the memcpy engine, run against the default machine.
//
// Shows the whole VFIO flow a real driver goes through — open the device's group, check it is
// viable, put it in a type1v2 container, map DMA buffers, program the device through its BAR,
// take its MSI-X on an eventfd — then copies, verifies, and finally points the engine at an IOVA
// that was never mapped: the copy fails, the IOMMU records the fault, the destination is
// untouched and no interrupt fires.
//
//   swift run memcpy-driver [--machine NAME] [--device BDF]

import DeviceModels
import Foundation
import PCIBus
import SampleDrivers
import VFIO

let options = SampleOptions.parse(program: "memcpy-driver", defaultDevice: "0000:5f:00.0")
let address = options.device

@MainActor func run() throws {
    let machine = try SimulatedMachine.load(machine: options.machine)
    let device = try UserspaceDevice(address, in: machine.vfio)
    defer { device.close() }
    guard let driver = try device.bind(MemcpyEngineDriver.self) else { exit(1) }
    try driver.initialize()
    print("init: max \(driver.maxMemcpySize) bytes × \(driver.maxMemcpyCount) copies per start")

    let size = driver.maxMemcpySize
    let source = try device.mapDMA(size: size)
    let destination = try device.mapDMA(size: size)
    for i in 0..<Int(size) { source.bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
    let failure = try driver.memcpy(source: source.iova, destination: destination.iova, size: size)
    let same = memcmp(source.bytes.baseAddress!, destination.bytes.baseAddress!, Int(size)) == 0
    print("memcpy \(size) bytes IOVA 0x\(String(source.iova, radix: 16)) → 0x\(String(destination.iova, radix: 16)): \(failure ?? "done"), data \(same ? "verified" : "MISMATCH")")

    try driver.sendMSI()
    print("send_msi: eventfd reads \(driver.interrupt.read().map(String.init) ?? "nothing (EAGAIN)")")

    destination.bytes.initializeMemory(as: UInt8.self, repeating: 0xa5)
    let unmapped: UInt64 = 0xdead_0000
    let outcome = try driver.memcpy(source: unmapped, destination: destination.iova, size: 4096)
    let untouched = destination.bytes.allSatisfy { $0 == 0xa5 }
    print("memcpy from unmapped IOVA 0x\(String(unmapped, radix: 16)): \(outcome ?? "unexpectedly succeeded"); destination \(untouched ? "untouched" : "CHANGED"); interrupt \(driver.interrupt.read() == nil ? "none" : "RAISED")")
    for fault in machine.core.faults.recent.suffix(1) { print("IOMMU fault log: \(fault)") }
    try driver.remove()
    exit(same && untouched && failure == nil && outcome != nil ? 0 : 1)
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("memcpy-driver: \(error)\n".utf8))
    exit(1)
}
