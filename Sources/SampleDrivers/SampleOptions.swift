import Foundation
import PCIBus
import VFIO

/// The command line every sample driver takes: `[--machine NAME] [--device BDF]`.
public struct SampleOptions: Sendable {
    public var machine = "default"
    public var device: PCIAddress

    /// Parses `CommandLine.arguments`; prints the usage and exits 64 on anything else.
    public static func parse(program: String, defaultDevice: String) -> SampleOptions {
        var options = SampleOptions(device: PCIAddress(parsing: defaultDevice)!)
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            switch (argument, arguments.popFirst()) {
            case ("--machine", let name?): options.machine = name
            case ("--device", let bdf?) where PCIAddress(parsing: bdf) != nil: options.device = PCIAddress(parsing: bdf)!
            default:
                FileHandle.standardError.write(Data("usage: \(program) [--machine NAME] [--device BDF]\n".utf8))
                exit(64)
            }
        }
        return options
    }
}

extension UserspaceDevice {
    /// Binds `driver` after its probe, printing what the selftests' setup learnt; nil (with a
    /// message) when the device is not one the driver handles.
    public func bind<Driver: VFIOPCIDriver>(_ driver: Driver.Type) throws(VFIOError) -> Driver? {
        guard try Driver.probe(self) else {
            print("\(address) is not a device \(Driver.name) handles")
            return nil
        }
        print("probe: \(address) in IOMMU group \(group.id), \(regions.count) regions, \(irqs.count) IRQ indexes")
        return try Driver(self)
    }
}
