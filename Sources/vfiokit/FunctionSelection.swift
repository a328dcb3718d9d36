import ArgumentParser
import PCIBus

/// lspci's selection: `-s [[[[DOMAIN]:]BUS]:][SLOT][.[FUNC]]` and `-d [VENDOR]:[DEVICE][:CLASS]`
/// (`lib/filter.c`: `pci_filter_parse_slot`, `pci_filter_parse_id`), hexadecimal, an empty or `*`
/// field matching anything.
struct FunctionSelection {
    var domain: UInt32?, bus: UInt8?, device: UInt8?, function: UInt8?
    var vendor: UInt16?, deviceID: UInt16?, classID: UInt16?

    init(slot: String?, id: String?) throws {
        if let slot {
            let parts = slot.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if parts.count == 2 { function = try Self.field(parts[1], max: 7, what: "function", in: slot) }
            var fields = parts[0].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count <= 3 else { throw ValidationError("-s \(slot): more than DOMAIN:BUS:SLOT.FUNC") }
            device = try Self.field(fields.removeLast(), max: 0x1f, what: "slot", in: slot)
            if !fields.isEmpty { bus = try Self.field(fields.removeLast(), max: 0xff, what: "bus", in: slot) }
            if !fields.isEmpty { domain = try Self.field(fields.removeLast(), max: 0xffff_ffff, what: "domain", in: slot) }
        }
        if let id {
            let fields = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (2...3).contains(fields.count) else { throw ValidationError("-d \(id): not VENDOR:DEVICE[:CLASS]") }
            vendor = try Self.field(fields[0], max: 0xffff, what: "vendor", in: id)
            deviceID = try Self.field(fields[1], max: 0xffff, what: "device", in: id)
            if fields.count == 3 { classID = try Self.field(fields[2], max: 0xffff, what: "class", in: id) }
        }
    }

    private static func field<T: FixedWidthInteger>(_ text: String, max: UInt64, what: String, in whole: String) throws -> T? {
        if text.isEmpty || text == "*" { return nil }
        guard let value = UInt64(text, radix: 16), value <= max else {
            throw ValidationError("\(whole): \"\(text)\" is not a hexadecimal \(what) number (at most \(String(max, radix: 16)))")
        }
        return T(value)
    }

    func matches(_ function: PCIFunction) -> Bool {
        let address = function.address
        if let domain, UInt32(address.domain) != domain { return false }
        if let bus, address.bus != bus { return false }
        if let device, address.device != device { return false }
        if let selected = self.function, address.function != selected { return false }
        if let vendor, function.vendorID != vendor { return false }
        if let deviceID, function.deviceID != deviceID { return false }
        if let classID, function.classID != classID { return false }
        return true
    }
}
