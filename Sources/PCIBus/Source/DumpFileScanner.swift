import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Reads an `lspci -x`/`-xxx`/`-xxxx` dump line by line with the same acceptance rules as
/// libpci's dump method (`lib/dump.c`, `dump_init`), to say *where* a file is bad: libpci itself
/// only says "Malformed line". Runs when libpci rejects a file and to locate a function's header
/// line for a later error; the happy path reads the file through libpci alone.
struct DumpFileScanner {
    /// Where one function's header line sits.
    struct FunctionEntry {
        let address: PCIAddress
        let line: Int
        /// Digits of the domain in the header (0 when absent); libpci reads only 4 or 5.
        let domainDigits: Int
    }

    let path: String
    private(set) var entries: [FunctionEntry] = []

    /// libpci reads lines with `fgets(buf, 255)`: 254 characters including the newline.
    static let maximumLineLength = 253

    /// Scans the whole file; throws the first problem libpci would abort on, naming file and line.
    /// With `validatingRows` false only function headers and line lengths are checked: the cheap
    /// pass that runs beside libpci; the full pass runs when libpci rejects the file.
    static func scan(path: String, bytes: UnsafeBufferPointer<UInt8>, validatingRows: Bool = true) throws(PCIBusError) -> DumpFileScanner {
        var scanner = DumpFileScanner(path: path)
        try scanner.parse(bytes, validatingRows: validatingRows)
        return scanner
    }

    private mutating func parse(_ buffer: UnsafeBufferPointer<UInt8>, validatingRows: Bool) throws(PCIBusError) {
        var lineNumber = 0
        var start = 0
        var inFunction = false
        let count = buffer.count
        guard let base = buffer.baseAddress else { return }
        do {
            while start < count {
                lineNumber += 1
                guard let found = memchr(base + start, 0x0a, count - start) else {
                    if count - start > Self.maximumLineLength {
                        throw error(.lineTooLong, lineNumber, "line is longer than libpci's 253-character limit")
                    }
                    throw error(.unterminatedLine, lineNumber, "last line has no newline (libpci rejects unterminated lines)")
                }
                let newline = UnsafeRawPointer(found).assumingMemoryBound(to: UInt8.self) - base
                var line = UnsafeBufferPointer(rebasing: buffer[start..<newline])
                start = newline + 1
                if line.count > Self.maximumLineLength {
                    throw error(
                        .lineTooLong, lineNumber,
                        "line is \(line.count) characters, longer than libpci's 253-character limit (long -nn names?)")
                }
                // libpci finds the newline with strchr, which stops at a NUL: "line too long or unterminated".
                if let nul = memchr(base + newline - line.count, 0, line.count) {
                    let column = UnsafeRawPointer(nul).assumingMemoryBound(to: UInt8.self) - (base + newline - line.count) + 1
                    throw error(
                        .unterminatedLine, lineNumber,
                        "NUL byte at column \(column): libpci's reader stops there and rejects the line as unterminated (a binary file?)")
                }
                if line.last == 0x0d { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
                let digits = Self.leadingHexDigits(line)
                if let header = Self.functionHeader(line, hexDigits: digits) {
                    guard let address = header.address else {
                        throw error(.malformedHexRow, lineNumber, "function header with an impossible address (device > 1f or function > 7)")
                    }
                    entries.append(FunctionEntry(address: address, line: lineNumber, domainDigits: header.domainDigits))
                    inFunction = true
                } else if line.isEmpty {
                    inFunction = false
                } else if inFunction, (2...8).contains(digits), line.count > digits + 1, line[digits] == 0x3a, line[digits + 1] == 0x20 {
                    var offset = 0
                    for byte in line[0..<digits] { offset = offset << 4 | Self.hexValue(byte) }
                    // Checked in the cheap pass too: libpci's reader takes the offset as an `int`, so
                    // one of 8 digits from 0x80000000 is negative and passes its bound, and it
                    // writes that far before the function's config buffer (lspci -F crashes too).
                    if offset >= PCIRegister.extendedSpaceSize {
                        throw error(.configSpaceTooLarge, lineNumber, "row at offset 0x\(hex(offset, width: 2)) is past 4096 bytes of config space")
                    }
                    if validatingRows {
                        try checkRow(offset: offset, bytes: UnsafeBufferPointer(rebasing: line[(digits + 2)...]), line: lineNumber)
                    }
                }
            }
        }
    }

    static func leadingHexDigits(_ line: UnsafeBufferPointer<UInt8>) -> Int {
        var count = 0
        while count < line.count, count < 9, isHex(line[count]) { count += 1 }
        return count
    }

    /// `dump_validate` patterns `##:##.# `, `####:##:##.# ` and `#####:##:##.# ` (what libpci
    /// accepts), plus 6- to 8-digit domains, which libpci would silently take for text.
    static func functionHeader(_ line: UnsafeBufferPointer<UInt8>, hexDigits: Int) -> (address: PCIAddress?, domainDigits: Int)? {
        func slot(at i: Int) -> Bool {  // "##.# " at i
            line.count >= i + 5 && isHex(line[i]) && isHex(line[i + 1]) && line[i + 2] == 0x2e && isHex(line[i + 3])
                && line[i + 4] == 0x20
        }
        let text = { (length: Int) in String(decoding: UnsafeBufferPointer(rebasing: line[0..<length]), as: UTF8.self) }
        if hexDigits == 2, line.count > 3, line[2] == 0x3a, slot(at: 3) {
            return (PCIAddress(parsing: text(7)), 0)
        }
        if (4...8).contains(hexDigits), line.count > hexDigits + 3, line[hexDigits] == 0x3a, isHex(line[hexDigits + 1]),
            isHex(line[hexDigits + 2]), line[hexDigits + 3] == 0x3a, slot(at: hexDigits + 4)
        {
            return (PCIAddress(parsing: text(hexDigits + 8)), hexDigits)
        }
        return nil
    }

    /// The byte loop of `dump_init`: two hex digits followed by a space or the end, repeated.
    private func checkRow(offset: Int, bytes: UnsafeBufferPointer<UInt8>, line: Int) throws(PCIBusError) {
        var position = 0
        var byteOffset = offset
        let end = bytes.count
        while position + 1 < end, Self.isHex(bytes[position]), Self.isHex(bytes[position + 1]),
            position + 2 == end || bytes[position + 2] == 0x20
        {
            if byteOffset >= PCIRegister.extendedSpaceSize {
                throw error(
                    .configSpaceTooLarge, line,
                    "row at offset 0x\(hex(offset, width: 2)) goes past 4096 bytes of config space")
            }
            byteOffset += 1
            position += 2
            if position < end { position += 1 }
        }
        if position < end {
            let found = String(decoding: UnsafeBufferPointer(rebasing: bytes[position..<min(position + 12, end)]), as: UTF8.self)
            throw error(
                .malformedHexRow, line,
                "malformed hex row at config offset 0x\(hex(byteOffset, width: 2)): expected two hex digits, "
                    + "found \"\(found)\" (a byte that is not hex, or a row split by other output)")
        }
    }

    static func hexValue(_ byte: UInt8) -> Int {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x37)
        default: Int(byte - 0x57)
        }
    }

    static func isHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    func line(of address: PCIAddress) -> Int? { entries.first { $0.address == address }?.line }

    private func error(_ kind: PCIBusError.Kind, _ line: Int, _ what: String) -> PCIBusError {
        PCIBusError(kind, .invalidArgument, "\(path):\(line): \(what)")
    }
}
