import Locking

extension PCINames {
    /// Names from pci.ids for functions that libpci did not read (a device model's), as lspci
    /// would name them on a machine that has them: through one libpci access over an empty dump
    /// (`/dev/null`), only for its name database, made once for the process and held under a lock
    /// (libpci is not thread-safe). One, not one per machine: libpci's hwdb lookup leaves a
    /// libudev allocation behind with every access it sets up. Nil when libpci cannot be set up.
    ///
    /// The corresponding C function is `pci_lookup_name`.
    public static func lookUp(_ functions: [PCIFunction]) -> [PCINames]? {
        nameDatabase.withLock { access in access.map { access in functions.map { access.names(for: $0) } } }
    }

    private static let nameDatabase = PThreadMutex<LibPCIAccess?>(try? LibPCIAccess(method: .dump(path: "/dev/null")))
}
