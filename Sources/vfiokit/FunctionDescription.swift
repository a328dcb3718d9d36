import Foundation
import PCIBus

/// How commands describe one function: lspci's one-line form and its JSON form.
struct FunctionSummary: Encodable {
    let address: String
    let vendorDevice: String
    let classID: String
    @Nullable var className: String?
    @Nullable var vendor: String?
    @Nullable var device: String?
    @Nullable var pcieType: String?
    @Nullable var driver: String?
    /// The revision ID, printed as `(rev xx)` when not zero.
    let revision: UInt8
    /// What `lspci -nn` prints after the address.
    let lspci: String
    /// A machine's virtual device (a device model, not a captured function).
    let virtual: Bool
    /// The device model behind a virtual device (`VFIOKit CBDMA (I/OAT 3.3)`), else null.
    @Nullable var virtualModel: String?

    init(_ function: PCIFunction, driver: String?) {
        address = function.address.description
        vendorDevice = function.vendorDeviceText
        classID = function.classIDText
        // libpci names a class it knows only by its base class with the ID ("Unassigned class
        // [ffff]"); the ID is classID's, so the name goes without it.
        className = function.names?.className.map { name in
            name.hasSuffix(" [\(function.classIDText)]") ? String(name.dropLast(function.classIDText.count + 3)) : name
        }
        vendor = function.names?.vendor
        device = function.names?.device
        pcieType = function.pciePortType?.description
        self.driver = driver
        revision = function.revision
        virtual = function.virtualModel != nil
        virtualModel = function.virtualModel
        lspci = Self.line(className: function.names?.className, classID: function.classIDText, vendor: function.names?.vendor, device: function.names?.device, vendorDevice: function.vendorDeviceText, revision: function.revision)
    }

    /// `Host bridge [0600]: Intel Corporation Device [8086:0d57] (rev 01)`, as `lspci -nn` prints
    /// it: libpci's `Device` where pci.ids has the vendor but not the device (and for both), the
    /// revision when it is not zero; a virtual device marked `[virtual: MODEL]` after it.
    var line: String { lspci + (virtualModel.map { "  [virtual: \($0)]" } ?? "") }

    private static func line(className: String?, classID: String, vendor: String?, device: String?, vendorDevice: String, revision: UInt8) -> String {
        let name = [vendor, device ?? "Device"].compactMap { $0 }.joined(separator: " ")
        // libpci names a class it knows only by its base class "Unassigned class [ffff]" itself.
        let classText = className.map { $0.hasSuffix(" [\(classID)]") ? $0 : "\($0) [\(classID)]" } ?? "Class [\(classID)]"
        let revisionText = revision == 0 ? "" : " (rev \(String(format: "%02x", revision)))"
        return "\(classText): \(name) [\(vendorDevice)]\(revisionText)"
    }
}

extension BusSnapshot {
    var sourceLabel: String {
        switch origin {
        case .host(let path): path.map { "host sysfs \($0)" } ?? "this host"
        case .dump(let path): path == SourceOptions.standardInputPath ? "dump from standard input" : "dump \(path)"
        case .machine(let machine): "machine \(machine.name) (\(machine.directory))"
        }
    }

    /// The platform line, and a line marking the groups unreliable when config space is incomplete
    /// — or, where the groups are the kernel's (`kernelGroups`), only the computed explanation.
    func headerLines(kernelGroups: Bool = false) -> [String] {
        let platform =
            "platform \(grouping.platform) (\(grouping.platformReason)); ACS \(grouping.acsPolicy == .bootEnable ? "after the kernel's boot-time enable" : "as dumped")"
        // Computed group numbers follow the IOMMU units' registration order, which a dump may not carry.
        let numbering = kernelGroups ? [] : [grouping.unitOrder.guess].compactMap { $0 }
        if CaptureNote(self).text != nil { return [platform, "groups: UNRELIABLE (the dump was captured short: see the note on stderr)"] + numbering }
        if groupsReliable { return [platform] + numbering }
        return kernelGroups
            ? [platform, "computed explanation: INCOMPLETE (config space incomplete: see the note on stderr); the groups are the kernel's"]
            : [platform, "groups: UNRELIABLE (config space incomplete: see the note on stderr)"] + numbering
    }

    func summary(_ address: PCIAddress) -> FunctionSummary {
        FunctionSummary(topology[address]!, driver: drivers[address])
    }
}
