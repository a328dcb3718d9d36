// memcpy-driver: a userspace driver for the memcpy engine, run against the default machine.
//
// Shows the whole VFIO flow a real driver goes through — open the device's group, check it is
// viable, put it in a type1v2 container, map DMA buffers, program the device through its BAR,
// take its MSI-X on an eventfd — then copies, verifies, and finally points the engine at an IOVA
// that was never mapped: the copy fails, the IOMMU records the fault, the destination is
// untouched and no interrupt fires.
//
//   swift run memcpy-driver [--machine NAME] [--device BDF]

import Machine
import Foundation
import PCIBus
import SampleDrivers

guard let options = SampleOptions.parseOrPrintUsage(CommandLine.arguments, defaultDevice: PCIAddress(parsing: "0000:5f:00.0")!) else { exit(64) }
let address = options.device

@MainActor func run() throws {
    let machine = try SimulatedMachine.load(machine: options.machine)
    let device = try UserspaceDevice(address, in: machine.vfio)
    defer { device.close() }
    guard let driver = try device.bind(MemcpyEngineDriver.self) else { exit(1) }
    try driver.initialize()
    print("init: max \(driver.maxMemcpySize) bytes × \(driver.maxMemcpyCount) copies per start")

    let exercise = MemcpyExercise(driver)
    let copies = try exercise.copy(count: 1, size: driver.maxMemcpySize)
    print("memcpy \(copies.bytesEach) bytes: data \(copies.verified ? "verified" : "MISMATCH"); send_msi: eventfd reads \(copies.interrupts)")

    let fault = try exercise.copyFromUnmapped()
    print("memcpy from unmapped IOVA 0x\(String(fault.iova, radix: 16)): \(fault.failure ?? "unexpectedly succeeded"); destination \(fault.destinationUntouched ? "untouched" : "CHANGED"); interrupt \(fault.interruptRaised ? "RAISED" : "none")")
    for line in machine.faultLog(last: 1) { print("IOMMU fault log: \(line)") }
    try driver.remove()
    exit(copies.verified && copies.interrupts == 1 && fault.contained ? 0 : 1)
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("memcpy-driver: \(error)\n".utf8))
    exit(1)
}
