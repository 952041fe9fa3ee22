// JSON text at the byte level: writing a string literal, and scanning values by their brackets
// and strings without parsing them.
//
// The writer is exact: AppendJsonString gives byte for byte what nlohmann::json's dump with
// error_handler_t::replace writes. The scanner validates nothing: it follows strings (with their
// escapes) and brackets, so that a bracket inside a string never counts; numbers, literals and
// malformed text are left to whatever parser the caller hands the value to. Every function is pure
// and thread-safe, allocates nothing but the output it is given, and never reads past the text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cgpu {

// JSON nesting deeper than this is refused by every reader here. Pods, nodes and bindings nest
// about 10 levels; the bound keeps a hostile body from costing parser memory or stack in later
// tree walks.
inline constexpr int kMaxJsonDepth = 128;

// `text` as a JSON string literal, quotes included, appended to `out`: '"', '\\' and control
// characters escaped as nlohmann::json does, other characters as they are, and each invalid UTF-8
// sequence replaced by U+FFFD (byte for byte what nlohmann's dump with error_handler_t::replace
// writes).
void AppendJsonString(std::string& out, std::string_view text);

// True for the four characters JSON counts as whitespace.
constexpr bool IsJsonSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// The first position at or after `at` that is not JSON whitespace (text.size() if none).
size_t SkipJsonSpace(std::string_view text, size_t at);

// Where the string literal opening at text[at] (a '"') ends: the position just past its closing
// quote, escapes skipped; npos when the text ends first.
size_t SkipJsonString(std::string_view text, size_t at);

// Where the value starting at text[at] (no whitespace before) ends, by brackets and strings
// alone: just past its closing bracket or quote, or, for a number, true, false or null, at the
// first ',', whitespace, '}' or ']' after it (so `at` itself when text[at] is one of those) or the
// end of the text. npos when a bracket or string is still open at the end of the text.
size_t SkipJsonValue(std::string_view text, size_t at);

// Depth of the deepest {...} or [...] in `text`, stopping early once past `limit`. Strings are
// skipped (with their escapes) so brackets inside them do not count; a closing bracket with none
// open lowers the running depth below zero, as unbalanced text is the parser's to refuse.
int JsonNestingDepth(std::string_view text, int limit);

}  // namespace cgpu
