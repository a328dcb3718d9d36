extension PCINames {
    /// Names from pci.ids for functions that libpci did not read (a device model's), as lspci
    /// would name them on a machine that has them: one libpci access over an empty dump
    /// (`/dev/null`), only for its name database. Nil when libpci cannot be set up.
    ///
    /// The corresponding C function is `pci_lookup_name`.
    public static func lookUp(_ functions: [PCIFunction]) -> [PCINames]? {
        guard let access = try? LibPCIAccess(method: .dump(path: "/dev/null")) else { return nil }
        return functions.map { access.names(for: $0) }
    }
}
