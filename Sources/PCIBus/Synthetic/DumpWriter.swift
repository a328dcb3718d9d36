/// Renders functions in `lspci -xxxx` format: a header line per function, then the captured
/// config bytes as 16-byte rows (`%02x:` below 0x100, `%03x:` above), a blank line after each.
public enum DumpWriter {
    public static func render(_ functions: [(address: PCIAddress, title: String, config: [UInt8])]) -> String {
        var output = ""
        output.reserveCapacity(functions.reduce(0) { $0 + $1.config.count * 3 + 120 })
        let digits: [Character] = Array("0123456789abcdef")
        for function in functions {
            output += "\(function.address.description) \(function.title)\n"
            var row = ""
            for offset in stride(from: 0, to: function.config.count, by: 16) {
                row.removeAll(keepingCapacity: true)
                row += offset < 0x100 ? hex(offset, width: 2) : hex(offset, width: 3)
                row += ":"
                for byte in function.config[offset..<min(offset + 16, function.config.count)] {
                    row.append(" ")
                    row.append(digits[Int(byte >> 4)])
                    row.append(digits[Int(byte & 0xf)])
                }
                output += row
                output += "\n"
            }
            output += "\n"
        }
        return output
    }
}
