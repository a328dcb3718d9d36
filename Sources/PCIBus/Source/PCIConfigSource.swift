import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Where config space comes from: this host through libpci's sysfs method, or a dump file
/// through libpci's dump method (`lspci -F`).
public enum PCIConfigSource: Sendable, Equatable, CustomStringConvertible {
    /// This host (`PCI_ACCESS_SYS_BUS_PCI`); `sysfsPath` overrides `/sys/bus/pci`.
    case host(sysfsPath: String? = nil)
    /// An `lspci -x`/`-xxx`/`-xxxx` dump (`PCI_ACCESS_DUMP`), `-vvv` text allowed in between.
    case dump(path: String)

    public var description: String {
        switch self {
        case .host(let path): path.map { "host (sysfs at \($0))" } ?? "this host"
        case .dump(let path): path
        }
    }
}

/// What enumeration produced: every function, decoded, in address order.
public struct PCIEnumeration: Sendable {
    public let source: PCIConfigSource
    public let functions: [PCIFunction]
    /// Capability chains that ended early (broken pointers; loops when allowed).
    public let capabilityIssues: [(address: PCIAddress, issue: CapabilityChainIssue, extended: Bool)]
}

/// Enumerates a `PCIConfigSource` through libpci. The only type that drives `LibPCIAccess`.
public enum PCIEnumerator {
    public struct Options: Sendable {
        /// Look names up in pci.ids.
        public var lookUpNames: Bool
        /// Report capability loops as issues instead of failing (the walk stops at the loop).
        public var allowCapabilityLoops: Bool

        public init(lookUpNames: Bool = true, allowCapabilityLoops: Bool = false) {
            self.lookUpNames = lookUpNames
            self.allowCapabilityLoops = allowCapabilityLoops
        }
    }

    public static func enumerate(_ source: PCIConfigSource, options: Options = Options()) throws(PCIBusError)
        -> PCIEnumeration
    {
        let devices: [LibPCIDevice]
        let libpci: LibPCIAccess
        var scanner: DumpFileScanner? = nil
        switch source {
        case .host(let sysfsPath):
            let root = sysfsPath ?? "/sys/bus/pci"
            guard access(root + "/devices", R_OK | X_OK) == 0 else {
                let error = Errno(rawValue: Glibc.errno)
                throw PCIBusError(
                    .hostUnreadable, error,
                    "\(root)/devices: cannot read the host's PCI devices (\(error)); is sysfs mounted?")
            }
            libpci = try LibPCIAccess(method: .sysfs(path: sysfsPath))
            devices = try libpci.devices(withKernelAttributes: true)
        case .dump(let path):
            let file = try MappedFile(path: path)
            let outcome = try ParallelDumpLoad.load(file)
            scanner = outcome.scanner
            try rejectDuplicates(outcome.scanner)
            let remap = WideDomainRemap(entries: outcome.scanner.entries)
            if remap.isNeeded {
                let copy = try remap.writeRemappedCopy(of: file.bytes, entries: outcome.scanner.entries, original: path)
                defer { unlink(copy) }
                libpci = try LibPCIAccess(method: .dump(path: copy))
                devices = try libpci.devices(withKernelAttributes: false).map(remap.restore)
            } else {
                libpci = outcome.access
                devices = outcome.devices
            }
            guard !devices.isEmpty else {
                throw PCIBusError(.noFunctions, .noData, "\(path): no PCI functions found (not an lspci -x dump?)")
            }
        }
        var functions: [PCIFunction] = []
        var issues: [(PCIAddress, CapabilityChainIssue, Bool)] = []
        functions.reserveCapacity(devices.count)
        for device in devices {
            if device.config.count < 64 {
                let location = scanner.flatMap { $0.line(of: device.address) }.map { "\(source):\($0): " } ?? "\(source): "
                throw PCIBusError(
                    .truncatedFunction, .invalidArgument,
                    "\(location)\(device.address) has only \(device.config.count) bytes of config space; "
                        + "the 64-byte standard header is incomplete")
            }
            var function = PCIFunction(address: device.address, config: PCIConfigSpace(bytes: device.config))
            function.driver = device.driver
            function.kernelIOMMUGroup = device.iommuGroup
            for (list, extended) in [(function.capabilities, false), (function.extendedCapabilities, true)] {
                guard let issue = list.issue else { continue }
                // A chain running past what an unprivileged host read returned is not the device's
                // fault: `PCITopology.configSpaceLimitNote` says so once for the whole host.
                if case .host = source, device.config.count < PCIRegister.legacySpaceSize, case .truncated = issue {
                    continue
                }
                if issue.isLoop, !options.allowCapabilityLoops {
                    throw PCIBusError(
                        .capabilityLoop, .tooManySymbolicLinkLevels,
                        "\(device.address) (\(source)): \(extended ? "extended " : "")\(issue)")
                }
                issues.append((device.address, issue, extended))
            }
            if options.lookUpNames { function.names = libpci.names(for: function) }
            functions.append(function)
        }
        functions.sort { $0.address < $1.address }
        return PCIEnumeration(source: source, functions: functions, capabilityIssues: issues)
    }

    private static func rejectDuplicates(_ scanner: DumpFileScanner) throws(PCIBusError) {
        var firstLine: [PCIAddress: Int] = [:]
        for entry in scanner.entries {
            if let earlier = firstLine[entry.address] {
                throw PCIBusError(
                    .duplicateAddress, .fileExists,
                    "\(scanner.path):\(entry.line): duplicate function \(entry.address) (first at line \(earlier))")
            }
            firstLine[entry.address] = entry.line
        }
    }
}
