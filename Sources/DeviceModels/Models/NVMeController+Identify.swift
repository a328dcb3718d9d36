import PCIBus

extension NVMeController {
    /// Identify Controller's fixed fields (NVMe 1.4 §5.15.2.2, Figure 247).
    enum Identity {
        static let model = "VFIOKit NVMe controller"
        static let firmware = "1.0"
        /// IEEE OUI 00-00-5E (IANA), whose EUI-64s 00-00-5E-EF-10-xx-xx-xx RFC 7042 §2.2.2 sets
        /// aside for documentation: the namespace's EUI64 and NGUID are drawn from them.
        static let oui: [UInt8] = [0x00, 0x00, 0x5e]
        static let controllerID: UInt16 = 1
        /// ACL and AERL, 0's based: four Aborts and four Asynchronous Event Requests.
        static let abortLimit: UInt8 = 3
        static let asyncEventRequestLimit: UInt8 = 3
        /// ELPE, 0's based: the Error Information log holds 64 entries.
        static let errorLogEntries: UInt8 = 63
        /// FRMW: one firmware slot, read only.
        static let firmwareUpdates: UInt8 = 1 << 1 | 1
        /// LPA: extended data for Get Log Page (NUMDU, LPOL/LPOU); SMART/Health is controller-wide.
        static let logPageAttributes: UInt8 = 1 << 2
        /// ONCS: Dataset Management (2), Write Zeroes (3), Save and Select in Set/Get Features (4).
        static let optionalCommands: UInt16 = 1 << 2 | 1 << 3 | 1 << 4
        /// VWC: a volatile write cache (0) and Flush with NSID FFFFFFFFh (2:1 = 11b).
        static let volatileWriteCache: UInt8 = 0b111
        /// Power state 0's maximum power, in centiwatts: 9 W.
        static let maximumPower: UInt16 = 900
    }

    /// The namespace's globally unique identifiers (§5.15.2.1, §5.15.2.4): an EUI-64 of RFC 7042's
    /// documentation block ending in the function's requester ID, the NGUID that EUI-64 then
    /// "VFIOKit" and the NSID, and a UUID (RFC 9562 version 8) of the same bytes.
    var namespaceEUI64: [UInt8] {
        let rid = address.requesterID
        return Identity.oui + [0xef, 0x10, 0x00, UInt8(rid >> 8), UInt8(truncatingIfNeeded: rid)]
    }
    var namespaceGUID: [UInt8] { namespaceEUI64 + Array("VFIOKit".utf8) + [0x01] }
    var namespaceUUID: [UInt8] {
        var uuid = namespaceGUID
        uuid[6] = 0x80 | uuid[6] & 0x0f  // version 8
        uuid[8] = 0x80 | uuid[8] & 0x3f  // variant 10b
        return uuid
    }

    /// Identify (§5.15): CDW10 CNS (7:0); a 4 KiB data structure to PRP1/PRP2. CNS 00h is
    /// namespace 1 (any other NSID: Invalid Namespace or Format), 01h the controller, 02h the
    /// active NSIDs above CDW1.NSID (FFFFFFFEh and FFFFFFFFh are Invalid Namespace), 03h
    /// namespace 1's identification descriptors. Everything else — 05h and 06h, the I/O command
    /// set specific structures CAP.CSS does not offer, included — is Invalid Field.
    func identify(_ state: inout State, _ command: Command) -> Status {
        let page = UnsafeMutableRawBufferPointer(rebasing: staging[0..<Self.pageSize])
        page.initializeMemory(as: UInt8.self, repeating: 0)
        switch command.dword(10) & 0xff {
        case 0x00:
            guard command.namespace == 1 else { return .invalidNamespace }
            identifyNamespace(page)
        case 0x01: identifyController(page)
        case 0x02:
            guard command.namespace < 0xffff_fffe else { return .invalidNamespace }
            if command.namespace == 0 { page.storeBytes(of: UInt32(1).littleEndian, as: UInt32.self) }
        case 0x03:
            guard command.namespace == 1 else { return .invalidNamespace }
            // NIDT, NIDL, two reserved bytes, NID (§5.15.2.4, Figure 249); a zero NIDT ends the list.
            var offset = 0
            for (type, identifier) in [(UInt8(1), namespaceEUI64), (2, namespaceGUID), (3, namespaceUUID)] {
                page[offset] = type
                page[offset + 1] = UInt8(identifier.count)
                put(identifier, in: page, at: offset + 4)
                offset += 4 + identifier.count
            }
        default:
            return .invalidField
        }
        return transfer(&state, command, page, toHost: true)
    }

    /// Identify Namespace (§5.15.2.1, Figure 245): NSZE = NCAP = NUSE, one LBA format (512-byte
    /// blocks, no metadata), DLFEAT: deallocated blocks read as zeros and Write Zeroes may
    /// deallocate; NVMCAP, NGUID and EUI64.
    private func identifyNamespace(_ page: UnsafeMutableRawBufferPointer) {
        for offset in [0, 8, 16] { page.storeBytes(of: Self.namespaceBlocks.littleEndian, toByteOffset: offset, as: UInt64.self) }
        page[33] = 1 << 3 | 0b001  // DLFEAT
        page.storeBytes(of: (Self.namespaceBlocks * UInt64(Self.blockSize)).littleEndian, toByteOffset: 48, as: UInt64.self)  // NVMCAP
        put(namespaceGUID, in: page, at: 104)
        put(namespaceEUI64, in: page, at: 120)
        page.storeBytes(of: UInt32(9 << 16).littleEndian, toByteOffset: 128, as: UInt32.self)  // LBAF0: 2^9-byte blocks, no metadata
    }

    /// Identify Controller (§5.15.2.2, Figure 247).
    private func identifyController(_ page: UnsafeMutableRawBufferPointer) {
        page.storeBytes(of: Self.vendorID.littleEndian, toByteOffset: 0, as: UInt16.self)  // VID
        page.storeBytes(of: Self.vendorID.littleEndian, toByteOffset: 2, as: UInt16.self)  // SSVID
        put(ascii: address.description, in: page, at: 4, length: 20)  // SN
        put(ascii: Identity.model, in: page, at: 24, length: 40)  // MN
        put(ascii: Identity.firmware, in: page, at: 64, length: 8)  // FR
        page[72] = 6  // RAB: bursts of 64 commands
        put(Identity.oui.reversed(), in: page, at: 73)  // IEEE, least significant byte first
        page[77] = UInt8(Self.maxTransferShift)  // MDTS
        page.storeBytes(of: Identity.controllerID.littleEndian, toByteOffset: 78, as: UInt16.self)  // CNTLID
        page.storeBytes(of: Self.version.littleEndian, toByteOffset: 80, as: UInt32.self)  // VER
        page[111] = 1  // CNTRLTYPE: I/O controller
        // OACS (256) 0: no Security, Format NVM, Firmware Download, Namespace Management,
        // Self-test, Directives, NVMe-MI, Virtualization or Doorbell Buffer Config.
        page[258] = Identity.abortLimit  // ACL
        page[259] = Identity.asyncEventRequestLimit  // AERL
        page[260] = Identity.firmwareUpdates  // FRMW
        page[261] = Identity.logPageAttributes  // LPA
        page[262] = Identity.errorLogEntries  // ELPE
        // NPSS (263) 0: one power state.
        page.storeBytes(of: NVMeFeatures.warningTemperature.littleEndian, toByteOffset: 266, as: UInt16.self)  // WCTEMP
        page.storeBytes(of: NVMeFeatures.criticalTemperature.littleEndian, toByteOffset: 268, as: UInt16.self)  // CCTEMP
        let capacity = (Self.namespaceBlocks * UInt64(Self.blockSize)).littleEndian
        page.storeBytes(of: capacity, toByteOffset: 280, as: UInt64.self)  // TNVMCAP (low quadword)
        // KAS (320) 0: no Keep Alive.
        page[512] = 0x66  // SQES: 64-byte entries, required and maximum
        page[513] = 0x44  // CQES: 16-byte entries
        page.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 516, as: UInt32.self)  // NN
        page.storeBytes(of: Identity.optionalCommands.littleEndian, toByteOffset: 520, as: UInt16.self)  // ONCS
        page[525] = Identity.volatileWriteCache  // VWC
        // SGLS (536) 0: PRPs only.
        put(ascii: subsystemNQN, in: page, at: 768, length: 256, padding: 0)  // SUBNQN
        page.storeBytes(of: Identity.maximumPower.littleEndian, toByteOffset: 2048, as: UInt16.self)  // PSD0: MP, centiwatts
    }

    /// SUBNQN: the UUID-based NQN form (NVMe 1.4 §7.9), of the namespace's UUID.
    var subsystemNQN: String {
        let hex = namespaceUUID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
        let groups = [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }
        return "nqn.2014-08.org.nvmexpress:uuid:" + groups.joined(separator: "-")
    }

    func put(_ bytes: some Collection<UInt8>, in page: UnsafeMutableRawBufferPointer, at offset: Int) {
        for (n, byte) in bytes.enumerated() { page[offset + n] = byte }
    }

    /// `text` as an ASCII field of `length` bytes, padded (with spaces, as Identify's strings are).
    func put(ascii text: String, in page: UnsafeMutableRawBufferPointer, at offset: Int, length: Int, padding: UInt8 = 0x20) {
        let bytes = Array(text.utf8.prefix(length))
        put(bytes + Array(repeating: padding, count: length - bytes.count), in: page, at: offset)
    }
}
