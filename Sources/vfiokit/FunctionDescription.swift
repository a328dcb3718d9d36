import PCIBus

/// How commands describe one function: lspci's one-line form and its JSON form.
struct FunctionSummary: Encodable {
    let address: String
    let vendorDevice: String
    let classID: String
    let className: String?
    let vendor: String?
    let device: String?
    let pcieType: String?
    let driver: String?

    init(_ function: PCIFunction, driver: String?) {
        address = function.address.description
        vendorDevice = function.vendorDeviceText
        classID = function.classIDText
        className = function.names?.className
        vendor = function.names?.vendor
        device = function.names?.device
        pcieType = function.pciePortType?.description
        self.driver = driver
    }

    /// `Host bridge [0600]: Intel Corporation Device 0d57 [8086:0d57]`, as `lspci -nn` prints it.
    var line: String {
        let name = [vendor, device].compactMap { $0 }.joined(separator: " ")
        // libpci names a class it knows only by its base class "Unassigned class [ffff]" itself.
        let classText = className.map { $0.hasSuffix(" [\(classID)]") ? $0 : "\($0) [\(classID)]" } ?? "Class [\(classID)]"
        return "\(classText): \(name.isEmpty ? "Device" : name) [\(vendorDevice)]"
    }
}

extension BusSnapshot {
    var sourceLabel: String {
        switch origin {
        case .host(let path): path.map { "host sysfs \($0)" } ?? "this host"
        case .dump(let path): "dump \(path)"
        case .machine(let machine): "machine \(machine.name) (\(machine.directory))"
        }
    }

    /// The platform line, and a line marking the groups unreliable when config space is incomplete.
    var headerLines: [String] {
        let platform =
            "platform \(grouping.platform) (\(grouping.platformReason)); ACS \(grouping.acsPolicy == .bootEnable ? "after the kernel's boot-time enable" : "as dumped")"
        return groupsReliable ? [platform] : [platform, "groups: UNRELIABLE (config space incomplete: see the note on stderr)"]
    }

    func summary(_ address: PCIAddress) -> FunctionSummary {
        FunctionSummary(topology[address]!, driver: drivers[address])
    }
}
