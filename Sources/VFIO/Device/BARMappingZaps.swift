import Locking

/// The BAR mappings of one device that `vfio_pci_zap_bars` revokes (VPCI-103): every mapping of
/// a BAR through any of the device's fds registers how to zap it, and the device zaps them all
/// when the user's COMMAND write clears memory decode, before `VFIO_DEVICE_RESET`, a hot reset of
/// its dev_set, an FLR written to config space and a move to D3hot. A zapped mapping faults back
/// in on its next access while memory decode is on, and is `SIGBUS` while it is off (VPCI-102).
final class BARMappingZaps: Sendable {
    private struct State {
        var zappers: [UInt64: @Sendable () -> Void] = [:]
        var next: UInt64 = 1
        /// Zaps so far, for the Swift API (a driver that must map again).
        var count = 0
    }

    private let state = PThreadMutex(State())

    /// Registers `zap`; returns the token `remove` takes.
    func add(_ zap: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { state in
            defer { state.next += 1 }
            state.zappers[state.next] = zap
            return state.next
        }
    }

    func remove(_ token: UInt64) { _ = state.withLock { $0.zappers.removeValue(forKey: token) } }

    /// `vfio_pci_zap_bars`: `unmap_mapping_range` over every BAR mapping of the device.
    func zapAll() {
        let zappers = state.withLock { state in
            state.count += 1
            return Array(state.zappers.values)
        }
        for zap in zappers { zap() }
    }

    var count: Int { state.withLock { $0.count } }
}
