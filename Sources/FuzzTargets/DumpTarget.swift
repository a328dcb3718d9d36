import IOMMU
import PCIBus

/// `dump`: the input is an `lspci -x`/`-xxx`/`-xxxx` dump, loaded as `vfiokit --dump FILE` loads
/// one — libpci's dump reader behind the line scanner, the wide-domain remap, the duplicate and
/// short-function checks, capability walks — then grouped every way (`GroupingProbe`) and given
/// an IOMMU core. A capability loop is loaded a second time with loops allowed, as
/// `--allow-capability-loops` would. Errors are answers; only a crash or a hang is a finding.
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
        GroupingProbe.run(snapshot.topology)
        if let core = try? IOMMUCore.load(snapshot) {
            for group in core.groups { _ = core.assignment(of: group.id) }
        }
    }

    private static func load(_ path: String, _ options: PCIEnumerator.Options) throws(PCIBusError) -> BusSnapshot {
        try BusSnapshot.load(.dump(path: path), options: options)
    }
}
