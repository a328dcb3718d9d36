/// `[0x1000, 0x1fff]`: how every layer's messages write an address range (inclusive, as the
/// kernel's own messages and the spec do).
public func rangeText(_ first: UInt64, _ last: UInt64) -> String {
    "[0x\(String(first, radix: 16)), 0x\(String(last, radix: 16))]"
}
