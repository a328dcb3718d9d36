import ArgumentParser
import Foundation
import KernelRules

/// `vfiokit rules [ID]`: what a rule the reports cite says, in this project's words, and the kernel
/// function it mirrors; without an ID, every rule the reports can cite, one line each.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Say what a rule cited in a report (IG-13, VG-06, ...) means, or list them all.",
        discussion: """
            Without an ID, lists every rule the reports can cite, one line each. With an ID (IG-13; ig_13 works too), \
            prints its summary and the kernel function and file it mirrors. Exit status 64 when ID is not of the form \
            LETTERS-NUMBER, 65 when no report cites such a rule.
            """)

    @Argument(help: "A rule ID as the reports print it, e.g. IG-13.")
    var id: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        if let id, id.wholeMatch(of: /[A-Za-z]+[-_][0-9]+/) == nil {
            throw ValidationError("\(id): not a rule ID (LETTERS-NUMBER, as IG-13)")
        }
    }

    func run() throws {
        guard let id else {
            if json { return try printJSON(["rules": RuleSummary.all]) }
            print("Rules the reports cite (\(RuleSummary.all.count)); vfiokit rules ID says what one means:")
            for rule in RuleSummary.all {
                print("  \(rule.rule.id.padding(toLength: 10, withPad: " ", startingAt: 0))\(rule.title)")
            }
            return
        }
        guard let rule = RuleSummary.find(id) else {
            let known = RuleID(id.uppercased().replacingOccurrences(of: "_", with: "-")) != nil
            try reportError(
                errno: "ENOENT",
                "\(id): " + (known ? "a rule of the spec that no report cites" : "no such rule") + "; vfiokit rules lists those the reports cite",
                json: json)
            throw ExitCode(65)
        }
        if json { return try printJSON(rule) }
        print("\(rule.rule.id)  \(rule.title)")
        HostIOMMUState.hang("  ", rule.summary).forEach { print($0) }
        HostIOMMUState.hang("  mirrors ", "\(rule.function) in \(rule.file)").forEach { print($0) }
    }
}
