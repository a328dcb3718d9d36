import PCIBus

/// What a dump captured too little of, said once: functions with only the 64-byte header
/// (`lspci -x`) and PCI Express functions without extended config space (`lspci -xxx`, 256
/// bytes). ACS is an extended capability (ACS-04) and capabilities live past the header, so their
/// groups are computed as if the hardware had none and can differ from the kernel's — the groups
/// are unreliable, and the per-function "beyond the captured config space" complaints of the
/// header-only ones are this one note instead.
struct CaptureNote {
    /// The note, or nil when every function was captured in full.
    let text: String?
    /// Functions with only the standard header.
    let headerOnly: [PCIAddress]
    /// PCI Express functions with no extended config space.
    let noExtended: [PCIAddress]

    init(_ snapshot: BusSnapshot) {
        guard case .dump = snapshot.origin else {
            (text, headerOnly, noExtended) = (nil, [], [])
            return
        }
        let functions = snapshot.topology.functions
        headerOnly = functions.filter { $0.config.count < PCIRegister.legacySpaceSize }.map(\.address)
        noExtended = functions.filter { $0.config.count <= PCIRegister.legacySpaceSize && $0.pcieCapabilityOffset != nil }.map(\.address)
        guard !headerOnly.isEmpty || !noExtended.isEmpty else {
            text = nil
            return
        }
        func list(_ addresses: [PCIAddress]) -> String {
            let shown = addresses.prefix(3).map(\.description).joined(separator: ", ")
            return addresses.count > 3 ? "\(shown) and \(addresses.count - 3) more" : shown
        }
        let parts = [
            headerOnly.isEmpty
                ? nil
                : "\(headerOnly.count) of \(functions.count) functions have only the 64-byte header (lspci -x; \(list(headerOnly))): no capabilities",
            noExtended.isEmpty
                ? nil
                : "\(noExtended.count) PCI Express functions have no extended config space (lspci -xxx, 256 bytes; \(list(noExtended))): no ACS",
        ].compactMap { $0 }
        text =
            "dump captured short: \(parts.joined(separator: "; ")), so groups may differ from the kernel's; "
            + "re-capture as root with `sudo lspci -xxxx` (four x: all 4096 bytes)"
    }

    /// The snapshot's warnings with this note first, without the capability-chain complaints it
    /// explains (chains that run past a header-only capture).
    func warnings(of snapshot: BusSnapshot) -> [String] {
        guard let text else { return snapshot.warnings }
        let short = Set(headerOnly)
        let explained = Set(
            snapshot.topology.capabilityIssues.compactMap { address, issue, extended -> String? in
                guard short.contains(address), case .truncated = issue else { return nil }
                return "\(address): \(extended ? "extended " : "")\(issue)"
            })
        return [text] + snapshot.warnings.filter { !explained.contains($0) }
    }
}
