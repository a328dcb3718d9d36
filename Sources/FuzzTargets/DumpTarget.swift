import IOMMU
import PCIBus
import VFIO

/// `dump`: the input is an `lspci -x`/`-xxx`/`-xxxx` dump, loaded as `vfiokit --dump FILE` loads
/// one — libpci's dump reader behind the line scanner, the wide-domain remap, the duplicate and
/// short-function checks, capability walks — then grouped every way (`GroupingProbe`) and given
/// an IOMMU core. A capability loop is loaded a second time with loops allowed, as
/// `--allow-capability-loops` would. Errors are answers; a crash, a hang, or a load that breaks
/// what enumeration promises (`checkEnumeration`) is a finding.
enum DumpTarget {
    static let run: FuzzEntryPoint = { data in
        let path = ScratchFile.write(data)
        var options = PCIEnumerator.Options(lookUpNames: false)
        var loaded = Result { () throws(PCIBusError) in try load(path, options) }
        if case .failure(let error) = loaded, error.kind == .capabilityLoop {
            options.allowCapabilityLoops = true
            loaded = Result { () throws(PCIBusError) in try load(path, options) }
        }
        guard case .success(let snapshot) = loaded else { return }
        checkEnumeration(snapshot.topology)
        GroupingProbe.run(snapshot.topology)
        if let core = try? IOMMUCore.load(snapshot) {
            for group in core.groups { _ = core.assignment(of: group.id) }
        }
    }

    /// What a successful load promises: functions in address order, no address twice (EEXIST
    /// otherwise), each with the 64-byte header and at most 4096 bytes.
    private static func checkEnumeration(_ topology: PCITopology) {
        for (previous, next) in zip(topology.functions, topology.functions.dropFirst()) {
            precondition(previous.address < next.address, "dump loaded \(previous.address) before \(next.address)")
        }
        for function in topology.functions {
            precondition((64...PCIRegister.extendedSpaceSize).contains(function.config.count), "\(function.address) loaded with \(function.config.count) bytes")
        }
    }

    private static func load(_ path: String, _ options: PCIEnumerator.Options) throws(PCIBusError) -> BusSnapshot {
        try BusSnapshot.load(.dump(path: path), options: options)
    }
}
