extension BusSnapshot {
    /// Everything worth a reader's attention that did not stop the load, in a stable order: the
    /// config-space limit of an unprivileged host read, the platform guess, capability chains that
    /// ended early, bridges that could not be linked. Commands print these on stderr and put them
    /// in every JSON report's `warnings`.
    public var warnings: [String] {
        var warnings: [String] = []
        if let note = topology.configSpaceLimitNote { warnings.append(note) }
        if let platform = grouping.platformWarning { warnings.append(platform) }
        for (address, issue, extended) in topology.capabilityIssues {
            warnings.append("\(address): \(extended ? "extended " : "")\(issue)")
        }
        warnings += topology.linkIssues
        return warnings
    }

    /// False when the groups rest on incomplete config space (ACS and PCIe capabilities unread).
    public var groupsReliable: Bool { topology.configSpaceLimitNote == nil }
}
