import ArgumentParser
import Foundation
import DeviceModels
import IOMMU
import KernelRules
import Machine
import PCIBus
import SystemPackage
import VFIO

#if canImport(Glibc)
    import Glibc
#endif

/// The options every command shares: where the topology comes from and how to group it.
struct SourceOptions: ParsableArguments {
    @Option(name: .long, help: "Read an lspci -x/-xxx/-xxxx dump instead of this host (- for standard input).")
    var dump: String?

    @Option(name: .long, help: "Use a fixture machine: a name under devices/ (e.g. default) or a directory.")
    var machine: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Read PCI devices from another sysfs root laid out as /sys/bus/pci (devices/DDDD:BB:DD.F/config, the driver and iommu_group links).",
            valueName: "dir"))
    var sysfs: String?

    @Option(
        name: .long,
        help: "IOMMU platform (vt-d, amd-vi, smmuv3, powernv); default: the manifest's, or detected from the root buses (with a warning when guessed).")
    var platform: IOMMUPlatformKind?

    @Option(
        name: .long,
        help: "ACS state to judge: 'boot' applies the kernel's boot-time ACS enable (an IOMMU is on); 'as-dumped' uses the registers as captured."
    )
    var acs: ACSEnablePolicy = .bootEnable

    @Option(
        name: .long,
        help: ArgumentHelp(
            "IOMMU profile: \(PlatformProfile.names.joined(separator: ", ")); default: the platform's, or the manifest's.",
            valueName: "profile"))
    var iommu: String?

    @Flag(name: .long, help: "Report capability-chain loops as warnings instead of failing.")
    var allowCapabilityLoops = false

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        if [dump != nil, machine != nil, sysfs != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give at most one of --dump, --machine and --sysfs")
        }
        if let iommu, PlatformProfile.named(iommu) == nil {
            throw ValidationError("--iommu \(iommu): no such IOMMU profile (known: \(PlatformProfile.names.joined(separator: ", ")))")
        }
    }

    /// Loads the snapshot or exits with a message naming what was wrong and a sysexits status.
    /// A machine comes with the virtual devices its manifest attaches (`SimulatedMachine`).
    func load(lookUpNames: Bool = true) throws -> BusSnapshot {
        if machine != nil { return try loadMachine(lookUpNames: lookUpNames).snapshot }
        return try loadBus(lookUpNames: lookUpNames)
    }

    private func loadBus(lookUpNames: Bool) throws -> BusSnapshot {
        let options = PCIEnumerator.Options(lookUpNames: lookUpNames, allowCapabilityLoops: allowCapabilityLoops)
        do throws(PCIBusError) {
            let origin: BusSnapshot.Origin
            if let dump {
                origin = .dump(path: dump == "-" ? try Self.standardInputDump() : dump)
            } else if let machine {
                origin = .machine(try FixtureMachine.load(directory: try FixtureMachine.locate(machine)))
            } else {
                origin = .host(sysfsPath: try sysfsLayout().pciPath)
            }
            let snapshot = try BusSnapshot.load(origin, platform: platform, acsPolicy: acs, options: options)
            for warning in CaptureNote(snapshot).warnings(of: snapshot) { warn("warning: \(warning)") }
            return snapshot
        } catch {
            try reportError(error, json: json)
            throw ExitCode(error.exitStatus)
        }
    }

    /// The host's sysfs as `--sysfs` names it (`/sys`, `/sys/bus/pci` or a tree laid out as the
    /// latter); a directory that does not exist is missing input (66), said before libpci looks.
    func sysfsLayout() throws(PCIBusError) -> HostSysfsLayout {
        if let sysfs {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: sysfs, isDirectory: &isDirectory) else {
                throw PCIBusError(.fileNotFound, .noSuchFileOrDirectory, "--sysfs \(sysfs): no such directory (give /sys, /sys/bus/pci or a tree laid out as /sys/bus/pci)")
            }
            guard isDirectory.boolValue else {
                throw PCIBusError(.notRegularFile, .notDirectory, "--sysfs \(sysfs): not a directory (give /sys, /sys/bus/pci or a tree laid out as /sys/bus/pci)")
            }
            let layout = HostSysfsLayout(sysfs: sysfs)
            guard FileManager.default.fileExists(atPath: layout.pciPath! + "/devices") else {
                throw PCIBusError(
                    .fileNotFound, .noSuchFileOrDirectory,
                    "--sysfs \(sysfs): no devices/ there or under bus/pci (give /sys, /sys/bus/pci or a tree laid out as /sys/bus/pci)")
            }
            return layout
        }
        return HostSysfsLayout(sysfs: sysfs)
    }

    /// Whether the host the snapshot came from has its IOMMU on; nil for a dump or a machine,
    /// whose groups are simulated by design.
    func hostState(of snapshot: BusSnapshot) -> HostIOMMUState? {
        guard case .host = snapshot.origin else { return nil }
        return HostIOMMUState(layout: HostSysfsLayout(sysfs: sysfs))
    }

    /// Where `--dump -` saves standard input for libpci's dump reader, which takes a path; the
    /// file goes when the command exits.
    static let standardInputPath = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-stdin-\(getpid()).lspci.txt").path

    private static func standardInputDump() throws(PCIBusError) -> String {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard FileManager.default.createFile(atPath: standardInputPath, contents: data) else {
            throw PCIBusError(.fileUnreadable, .ioError, "--dump -: cannot save standard input to \(standardInputPath)")
        }
        atexit { unlink(SourceOptions.standardInputPath) }
        return standardInputPath
    }

    /// Loads the snapshot and builds its IOMMU core (nil where the platform has no IOMMU model).
    func loadMachine(lookUpNames: Bool = true) throws -> LoadedMachine {
        if let machine {
            do throws(MachineError) {
                let simulated = try SimulatedMachine.load(
                    machine: machine, platform: platform, acsPolicy: acs, profileName: iommu, lookUpNames: lookUpNames)
                for warning in simulated.snapshot.warnings { warn("warning: \(warning)") }
                return LoadedMachine(snapshot: simulated.snapshot, iommu: simulated.core, host: nil)
            } catch {
                try reportError(error, json: json)
                throw ExitCode(exitStatus(of: error))
            }
        }
        let snapshot = try loadBus(lookUpNames: lookUpNames)
        do throws(IOMMUError) {
            return LoadedMachine(snapshot: snapshot, iommu: try IOMMUCore.load(snapshot, profileName: iommu), host: hostState(of: snapshot))
        } catch {
            try reportError(error, json: json)
            throw ExitCode(65)
        }
    }
}

/// A source's bus snapshot and the IOMMU core built on it, with the host's IOMMU state when the
/// source is a host.
struct LoadedMachine {
    let snapshot: BusSnapshot
    let iommu: IOMMUCore?
    let host: HostIOMMUState?
    let view: GroupView

    init(snapshot: BusSnapshot, iommu: IOMMUCore?, host: HostIOMMUState?) {
        self.snapshot = snapshot
        self.iommu = iommu
        self.host = host
        self.view = GroupView(snapshot, host: host)
    }

    var reliability: GroupReliability { GroupReliability(snapshot, host: host) }

    func assignment(of group: Int) -> GroupAssignment? { iommu?.assignment(of: group) }
}

extension IOMMUPlatformKind: ExpressibleByArgument {}
extension ACSEnablePolicy: ExpressibleByArgument {}

/// The exit status for a failure to load a machine: the bus error's, if a bad dump or a missing
/// file caused it, else EX_DATAERR (65).
func exitStatus<Layer>(of error: SimulationError<Layer>) -> Int32 {
    error.cause(as: PCIBusError.self)?.exitStatus ?? 65
}

extension PCIBusError {
    /// sysexits.h: EX_DATAERR 65, EX_NOINPUT 66, EX_IOERR 74.
    var exitStatus: Int32 {
        switch kind {
        case .fileNotFound: 66
        case .hostUnreadable, .fileUnreadable, .libpci: 74
        default: 65
        }
    }
}

func warn(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Whether a command's groups can be trusted, and if not why: config space cut short (an
/// unprivileged read) or a host whose IOMMU is off (the groups are what the kernel would form).
struct GroupReliability {
    let reliable: Bool
    let reason: String?
    /// The snapshot's warnings, then the host's IOMMU state when it is off.
    let warnings: [String]
    let host: HostIOMMUState?

    /// False when the computed explanation rests on incomplete config space, even where the groups
    /// themselves are the kernel's and so reliable.
    let explanationsReliable: Bool

    init(_ snapshot: BusSnapshot, host: HostIOMMUState?) {
        self.host = host
        let capture = CaptureNote(snapshot)
        explanationsReliable = snapshot.topology.configSpaceLimitNote == nil && capture.text == nil
        // The kernel's groups (read from the iommu_group links anyone can read) do not depend on
        // how much config space an unprivileged reader sees; computed ones do.
        let kernelGroups = GroupView(snapshot, host: host).fromKernel
        let reasons = [host?.reason, kernelGroups ? nil : snapshot.topology.configSpaceLimitNote, capture.text].compactMap { $0 }
        reliable = reasons.isEmpty
        reason = reasons.isEmpty ? nil : reasons.joined(separator: "; ")
        warnings = (host?.reason.map { [$0] } ?? []) + capture.warnings(of: snapshot)
            + (kernelGroups ? [] : [snapshot.grouping.unitOrder.guess].compactMap { $0 })
    }

    /// Says first, before anything else a command prints, that the IOMMU is off: on stdout for a
    /// reader, on stderr under --json (where the JSON carries it too).
    func announce(json: Bool) {
        guard let host, !host.enabled else { return }
        if json {
            warn("warning: \(host.reason!)")
        } else {
            host.noticeLines.forEach { print($0) }
            print("")
        }
    }
}
