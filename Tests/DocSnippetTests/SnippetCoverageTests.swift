import Foundation
import Testing

/// Every ```swift block of README.md and docs/*.md must appear, verbatim, in a test of this folder,
/// so it compiles and runs. Lines are compared trimmed, blank lines dropped, so indentation inside a
/// test function does not matter. A snippet's `import` lines cannot sit inside a function: each must
/// be an import of the same test file, and the rest of the snippet a contiguous run of its lines.
@Suite("Doc snippets: every Swift block of README.md and docs/ is compiled by a test")
struct SnippetCoverageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// README.md and every docs/*.md, as paths relative to the package root.
    static func documents() throws -> [String] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        return ["README.md"] + docs
    }

    /// Trimmed, non-blank lines.
    static func normalized(_ text: some StringProtocol) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// The ```swift blocks of a Markdown text, each with the line its fence opens on.
    static func swiftBlocks(of text: String) -> [(line: Int, lines: [String])] {
        var blocks: [(Int, [String])] = []
        var current: (Int, [String])?
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if var block = current {
                if trimmed.hasPrefix("```") {
                    blocks.append((block.0, normalized(block.1.joined(separator: "\n"))))
                    current = nil
                } else {
                    block.1.append(String(line))
                    current = block
                }
            } else if trimmed == "```swift" {
                current = (number + 1, [])
            }
        }
        return blocks
    }

    /// The test files of this folder, normalized, by name.
    static func testFiles() throws -> [(name: String, lines: [String])] {
        let folder = root.appendingPathComponent("Tests/DocSnippetTests")
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }.sorted().map {
            ($0, normalized(try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)))
        }
    }

    /// Whether `needle` is a contiguous run of `haystack`.
    static func contains(_ haystack: [String], _ needle: [String]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { start in
            haystack[start..<(start + needle.count)].elementsEqual(needle)
        }
    }

    static func isImport(_ line: String) -> Bool { line.hasPrefix("import ") }

    @Test("each Swift block of README.md and docs/*.md appears in Tests/DocSnippetTests")
    func everySnippetIsTested() throws {
        let files = try Self.testFiles()
        var checked = 0
        for document in try Self.documents() {
            let text = try String(contentsOf: Self.root.appendingPathComponent(document), encoding: .utf8)
            for (index, block) in Self.swiftBlocks(of: text).enumerated() {
                checked += 1
                let imports = block.lines.filter(Self.isImport)
                let body = block.lines.filter { !Self.isImport($0) }
                let covered = files.contains { file in
                    imports.allSatisfy(file.lines.contains) && Self.contains(file.lines, body)
                }
                #expect(
                    covered,
                    "\(document):\(block.line): Swift snippet \(index + 1) (\(block.lines.first ?? "empty")) appears in no file of Tests/DocSnippetTests: paste it, verbatim, into a @Test there"
                )
            }
        }
        #expect(checked > 0, "no ```swift block found in README.md or docs/: the extraction is broken")
    }

    @Test("the README stays a front door: at most 250 lines")
    func readmeLength() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count - (text.hasSuffix("\n") ? 1 : 0)
        #expect(lines <= 250, "README.md has \(lines) lines; move detail into docs/")
    }

    @Test("the checker finds a snippet that is not in a test, and ignores indentation")
    func checkerSelfTest() {
        let markdown = "text\n```swift\nimport Machine\n\nlet a = 1\n    let b = a\n```\n```sh\nswift test\n```\n"
        let blocks = Self.swiftBlocks(of: markdown)
        #expect(blocks.count == 1 && blocks[0].line == 2 && blocks[0].lines == ["import Machine", "let a = 1", "let b = a"])
        let file = Self.normalized("import Machine\nfunc f() {\n        let a = 1\n        let b = a\n}\n")
        #expect(Self.contains(file, ["let a = 1", "let b = a"]))
        #expect(!Self.contains(file, ["let a = 1", "let c = a"]))
    }
}
