/// A rule of the spec files (`kernel-semantics.md`, `vfio-pci.md`, `iommufd.md`) that decides an
/// error, or `.none`. Only the catalogue (`RuleID+Catalog.swift`, generated from the spec by
/// `.ci/generate-rule-ids`) can make one, so an error can never cite a rule the spec lacks.
public struct RuleID: Sendable, Hashable, CustomStringConvertible {
    /// `T1-16`, or empty for `.none`.
    public let id: String

    init(catalogued id: String) { self.id = id }

    /// No spec rule decides this failure (bad input to the simulator itself, a usage error).
    public static let none = RuleID(catalogued: "")

    /// The catalogued rule with this ID, or nil when the spec files define none.
    public init?(_ id: String) {
        guard let rule = RuleID.all.first(where: { $0.id == id }) else { return nil }
        self = rule
    }

    public var description: String { id.isEmpty ? "no rule" : id }
}

extension RuleID: Codable {
    /// Encoded as its ID (`"T1-16"`, `""` for `.none`), as reports and JSON print it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(id)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let id = try container.decode(String.self)
        guard let rule = id.isEmpty ? RuleID.none : RuleID(id) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(id)\" is no rule of the spec files")
        }
        self = rule
    }
}
