import PCIBus

/// A function known only from its config dump (a real device in a fixture, with no model): its
/// config space answers with the standard header masks (command read-write, status RW1C), its
/// capabilities read as dumped, its BARs are unknown (a dump carries no sizes, so vfio-pci
/// reports them as size 0) and it never issues DMA or interrupts. It lets a driver open the
/// device, read its identity and toggle its command register, as on a device whose firmware
/// does nothing.
package final class DumpedFunction: VirtualPCIDevice, @unchecked Sendable {
    package init(_ function: PCIFunction) {
        var bytes = function.config.bytes
        if bytes.count < PCIRegister.legacySpaceSize { bytes += Array(repeating: 0, count: PCIRegister.legacySpaceSize - bytes.count) }
        var writable = [UInt8](repeating: 0, count: bytes.count)
        var writeOneToClear = [UInt8](repeating: 0, count: bytes.count)
        writable[PCIRegister.command] = UInt8(VirtualConfigBuilder.commandWritable & 0xff)
        writable[PCIRegister.command + 1] = UInt8(VirtualConfigBuilder.commandWritable >> 8)
        writeOneToClear[PCIRegister.status + 1] = UInt8(VirtualConfigBuilder.statusWriteOneToClear >> 8)
        let config = VirtualConfigSpace(bytes: bytes, writable: writable, writeOneToClear: writeOneToClear)
        super.init(
            address: function.address, modelName: function.names?.device ?? "dumped function",
            layout: VirtualFunctionLayout(config: config, bars: [], supportsFLR: false))
    }
}
