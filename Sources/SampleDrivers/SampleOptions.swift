import Foundation
import PCIBus
import VFIO

/// The command line every sample driver takes: `[--machine NAME] [--device BDF]`.
public struct SampleOptions: Sendable, Equatable {
    public var machine = "default"
    public var device: PCIAddress

    /// Parses the arguments after the program name; throws the usage line on anything else (the
    /// sample prints it and exits 64, `EX_USAGE`).
    public static func parse(_ arguments: some Sequence<String>, program: String, defaultDevice: PCIAddress) throws(SampleUsage) -> SampleOptions {
        var options = SampleOptions(device: defaultDevice)
        var arguments = Array(arguments)[...]
        while let argument = arguments.popFirst() {
            switch (argument, arguments.popFirst()) {
            case ("--machine", let name?): options.machine = name
            case ("--device", let bdf?) where PCIAddress(parsing: bdf) != nil: options.device = PCIAddress(parsing: bdf)!
            default: throw SampleUsage(program: program)
            }
        }
        return options
    }
}

extension SampleOptions {
    /// `argv` parsed (its first element names the program), or nil once the usage line has been
    /// written to standard error; the caller decides to exit (64, `EX_USAGE`).
    public static func parseOrPrintUsage(_ argv: [String], defaultDevice: PCIAddress) -> SampleOptions? {
        let program = argv.first.map { String($0.split(separator: "/").last ?? "") } ?? "sample"
        do {
            return try parse(argv.dropFirst(), program: program, defaultDevice: defaultDevice)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            return nil
        }
    }
}

/// A sample driver's command line was not `[--machine NAME] [--device BDF]`.
public struct SampleUsage: Error, CustomStringConvertible {
    public let program: String
    public var description: String { "usage: \(program) [--machine NAME] [--device BDF]" }
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
