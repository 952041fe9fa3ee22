// Reading test fixtures from tests/fixtures/ (see tests/fixtures/SOURCES.md for their origin).
#pragma once

#include <string>

namespace cgpu::testing {

std::string ReadFixture(const std::string& relative_path);

// rules/cgpu-rules.yaml, the rules compiled into the binary.
extern const std::string kRulesPath;
std::string RulesFileText();
// The real rules with `from` (which must occur exactly once) replaced by `to`: each bad-input test
// changes one thing in an otherwise valid file. A `from` that does not occur once fails the test.
std::string EditedRules(const std::string& from, const std::string& to);
// 1-based line of the first occurrence of `needle` in `text` (-1, and a test failure, if none).
int LineOf(const std::string& text, const std::string& needle);

}  // namespace cgpu::testing
