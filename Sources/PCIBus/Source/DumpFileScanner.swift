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
    static func scan(path: String, bytes: [UInt8]) throws(PCIBusError) -> DumpFileScanner {
        var scanner = DumpFileScanner(path: path)
        try scanner.parse(bytes)
        return scanner
    }

    /// The file's bytes, or the errno-carrying error for a missing or unreadable file.
    static func readFile(_ path: String) throws(PCIBusError) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly)
        } catch {
            let error = (error as? Errno) ?? .ioError
            if error == .noSuchFileOrDirectory {
                throw PCIBusError(.fileNotFound, error, "\(path): no such dump file")
            }
            throw PCIBusError(.fileUnreadable, error, "\(path): cannot open dump file: \(error)")
        }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                throw PCIBusError(.fileUnreadable, (error as? Errno) ?? .ioError, "\(path): cannot read dump file: \(error)")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    private mutating func parse(_ bytes: [UInt8]) throws(PCIBusError) {
        var lineNumber = 0
        var start = 0
        var inFunction = false
        while start < bytes.count {
            lineNumber += 1
            guard let newline = bytes[start...].firstIndex(of: 0x0a) else {
                if bytes.count - start > Self.maximumLineLength {
                    throw error(.lineTooLong, lineNumber, "line is longer than libpci's 253-character limit")
                }
                throw error(.unterminatedLine, lineNumber, "last line has no newline (libpci rejects unterminated lines)")
            }
            var line = bytes[start..<newline]
            start = newline + 1
            if line.count > Self.maximumLineLength {
                throw error(
                    .lineTooLong, lineNumber,
                    "line is \(line.count) characters, longer than libpci's 253-character limit (long -nn names?)")
            }
            if line.last == 0x0d { line = line.dropLast() }
            if let header = Self.functionHeader(line) {
                guard let address = header.address else {
                    throw error(.malformedHexRow, lineNumber, "function header with an impossible address (device > 1f or function > 7)")
                }
                entries.append(FunctionEntry(address: address, line: lineNumber, domainDigits: header.domainDigits))
                inFunction = true
            } else if line.isEmpty {
                inFunction = false
            } else if inFunction, let (offset, rest) = Self.rowOffset(line) {
                try checkRow(offset: offset, bytes: rest, line: lineNumber)
            }
        }
    }

    /// `dump_validate` patterns `##:##.# `, `####:##:##.# ` and `#####:##:##.# ` (what libpci
    /// accepts), plus 6- to 8-digit domains, which libpci would silently take for text.
    static func functionHeader(_ line: ArraySlice<UInt8>) -> (address: PCIAddress?, domainDigits: Int)? {
        if matches(line, "##:##.# ") {
            return (PCIAddress(parsing: String(decoding: line.prefix(7), as: UTF8.self)), 0)
        }
        for digits in 4...8 where matches(line, String(repeating: "#", count: digits) + ":##:##.# ") {
            return (PCIAddress(parsing: String(decoding: line.prefix(digits + 8), as: UTF8.self)), digits)
        }
        return nil
    }

    /// A hex row `OFF: ` with a 2- to 8-digit offset: the offset and the bytes after `": "`.
    static func rowOffset(_ line: ArraySlice<UInt8>) -> (Int, ArraySlice<UInt8>)? {
        for digits in 2...8 {
            let pattern = String(repeating: "#", count: digits) + ": "
            if matches(line, pattern), let offset = Int(String(decoding: line.prefix(digits), as: UTF8.self), radix: 16) {
                return (offset, line.dropFirst(digits + 2))
            }
        }
        return nil
    }

    /// The byte loop of `dump_init`: two hex digits followed by a space or the end, repeated.
    private func checkRow(offset: Int, bytes: ArraySlice<UInt8>, line: Int) throws(PCIBusError) {
        var position = bytes.startIndex
        var byteOffset = offset
        while position + 1 < bytes.endIndex, Self.isHex(bytes[position]), Self.isHex(bytes[position + 1]),
            position + 2 == bytes.endIndex || bytes[position + 2] == 0x20
        {
            if byteOffset >= PCIRegister.extendedSpaceSize {
                throw error(
                    .configSpaceTooLarge, line,
                    "row at offset 0x\(hex(offset, width: 2)) goes past 4096 bytes of config space")
            }
            byteOffset += 1
            position += 2
            if position < bytes.endIndex { position += 1 }
        }
        if position < bytes.endIndex {
            let found = String(decoding: bytes[position..<min(position + 12, bytes.endIndex)], as: UTF8.self)
            throw error(
                .malformedHexRow, line,
                "malformed hex row at config offset 0x\(hex(byteOffset, width: 2)): expected two hex digits, "
                    + "found \"\(found)\" (a byte that is not hex, or a row split by other output)")
        }
    }

    private static func matches(_ line: ArraySlice<UInt8>, _ pattern: String) -> Bool {
        guard line.count >= pattern.count else { return false }
        for (character, byte) in zip(pattern.utf8, line) {
            if character == UInt8(ascii: "#") ? !isHex(byte) : character != byte { return false }
        }
        return true
    }

    static func isHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    func line(of address: PCIAddress) -> Int? { entries.first { $0.address == address }?.line }

    private func error(_ kind: PCIBusError.Kind, _ line: Int, _ what: String) -> PCIBusError {
        PCIBusError(kind, .invalidArgument, "\(path):\(line): \(what)")
    }
}
