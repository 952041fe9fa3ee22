#include "adapters/json_text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace cgpu {
namespace {

using nlohmann::json;
constexpr size_t kNpos = std::string_view::npos;

// ---------------------------------------------------------------------------------------------
// AppendJsonString writes what nlohmann::json's dump (error_handler_t::replace) writes.

std::string NlohmannString(std::string_view text) {
  return json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Appended(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

TEST(JsonStringTest, EscapesLikeNlohmann) {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c) all_controls.push_back(static_cast<char>(c));
  for (const std::string& text :
       {std::string(""), std::string("plain"), std::string("quote \" and \\ backslash / slash"),
        all_controls, std::string("nul\0inside", 10), std::string("del \x7f"),
        std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd"),
        std::string("bad \xff byte"), std::string("lone \x80 continuation"),
        std::string("overlong \xc0\xaf"), std::string("surrogate \xed\xa0\x80"),
        std::string("too big \xf4\x90\x80\x80"), std::string("cut \xe2\x82"),
        std::string("cut at end \xf0\x9f\x98"), std::string("\xe2\x82\xe2\x82\xac"),
        std::string("\xc3\xc3\xa9")}) {
    EXPECT_EQ(Appended(text), NlohmannString(text)) << NlohmannString(text);
  }
}

TEST(JsonStringTest, AgreesWithNlohmannOnArbitraryBytes) {
  // A fixed linear congruential sequence: the same strings every run, biased towards the bytes
  // that matter (controls, quotes, lead and continuation bytes).
  uint64_t state = 42;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  static constexpr unsigned char kInteresting[] = {0x00, 0x09, 0x1f, '"',  '\\', 'a',  0x7f,
                                                   0x80, 0xbf, 0xc2, 0xdf, 0xe0, 0xed, 0xef,
                                                   0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x90, 0x8f};
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    const int length = static_cast<int>(next() % 12);
    for (int i = 0; i < length; ++i) {
      const uint32_t pick = next();
      text.push_back(static_cast<char>(
          pick % 3 == 0 ? (pick >> 8) & 0xFF : kInteresting[(pick >> 8) % sizeof(kInteresting)]));
    }
    ASSERT_EQ(Appended(text), NlohmannString(text))
        << json(text).dump(-1, ' ', true, json::error_handler_t::replace);
  }
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(Appended(""), R"("")");
  EXPECT_EQ(Appended("a\"b\\c/d"), R"("a\"b\\c/d")");
  EXPECT_EQ(Appended("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(Appended(std::string("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(Appended("\x7f"), "\"\x7f\"");  // DEL is not a control character to JSON
}

TEST(JsonStringTest, KeepsValidUtf8AndReplacesInvalidSequences) {
  EXPECT_EQ(Appended("caf\xc3\xa9 \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(Appended("a\xff"
                     "b"),
            "\"a\xef\xbf\xbd"
            "b\"");
  EXPECT_EQ(Appended("\xc0\xaf"), "\"\xef\xbf\xbd\xef\xbf\xbd\"");  // overlong: two bad bytes
  EXPECT_EQ(Appended("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
  // A sequence cut short becomes one U+FFFD, and the byte that cut it starts afresh.
  EXPECT_EQ(Appended("\xe2\x82"
                     "x"),
            "\"\xef\xbf\xbd"
            "x\"");
  EXPECT_EQ(Appended("\xe2\x82"), "\"\xef\xbf\xbd\"");
}

TEST(JsonStringTest, AppendsToWhatIsThere) {
  std::string out = "[";
  AppendJsonString(out, "a");
  out += ",";
  AppendJsonString(out, "b");
  EXPECT_EQ(out, R"(["a","b")");
}

// ---------------------------------------------------------------------------------------------
// The scanner follows strings and brackets only.

TEST(JsonScanTest, SkipsSpace) {
  EXPECT_EQ(SkipJsonSpace(" \t\r\n x", 0), 5u);
  EXPECT_EQ(SkipJsonSpace("x ", 0), 0u);
  EXPECT_EQ(SkipJsonSpace("  ", 0), 2u);
  EXPECT_EQ(SkipJsonSpace("  ", 2), 2u);
  EXPECT_EQ(SkipJsonSpace("\v", 0), 0u);  // not JSON whitespace
}

TEST(JsonScanTest, SkipsStringsWithEscapedQuotesAndBackslashes) {
  EXPECT_EQ(SkipJsonString(R"("abc",)", 0), 5u);
  EXPECT_EQ(SkipJsonString(R"("a\"b",)", 0), 6u);
  EXPECT_EQ(SkipJsonString(R"("a\\",)", 0), 5u);  // an escaped backslash does not escape the quote
  EXPECT_EQ(SkipJsonString(R"("[{",)", 0), 4u);
  EXPECT_EQ(SkipJsonString(R"("open)", 0), kNpos);
  EXPECT_EQ(SkipJsonString(R"("ends in \")", 0), kNpos);
  EXPECT_EQ(SkipJsonString("\"\\", 0), kNpos);  // a backslash as the last byte
}

TEST(JsonScanTest, SkipsContainersByTheirBrackets) {
  const std::string_view text = R"({"a": [1, {"b": "]}"}], "c": "\"}"} tail)";
  EXPECT_EQ(SkipJsonValue(text, 0), text.find(" tail"));
  EXPECT_EQ(SkipJsonValue(R"([[], {}],)", 0), 8u);
  EXPECT_EQ(SkipJsonValue(R"(["]"] ])", 0), 5u);
  EXPECT_EQ(SkipJsonValue(R"(x [1] y)", 2), 5u);  // from the middle of a text
}

TEST(JsonScanTest, SkipsScalarsUpToWhatEndsThem) {
  EXPECT_EQ(SkipJsonValue("123,", 0), 3u);
  EXPECT_EQ(SkipJsonValue("true ", 0), 4u);
  EXPECT_EQ(SkipJsonValue("null]", 0), 4u);
  EXPECT_EQ(SkipJsonValue("-1.5e3}", 0), 6u);
  EXPECT_EQ(SkipJsonValue("false\n", 0), 5u);
  EXPECT_EQ(SkipJsonValue("42", 0), 2u);  // the end of the text ends a scalar
  EXPECT_EQ(SkipJsonValue(R"("s" ,)", 0), 3u);
  EXPECT_EQ(SkipJsonValue("]", 0), 0u);  // nothing there: an empty value
}

TEST(JsonScanTest, TruncatedValuesRunOffTheEnd) {
  EXPECT_EQ(SkipJsonValue("[1, 2", 0), kNpos);
  EXPECT_EQ(SkipJsonValue(R"({"a": "b)", 0), kNpos);
  EXPECT_EQ(SkipJsonValue(R"({"a": "b\"})", 0), kNpos);  // the quote is escaped
  EXPECT_EQ(SkipJsonValue(R"("abc)", 0), kNpos);
  EXPECT_EQ(SkipJsonValue("[[]", 0), kNpos);
}

TEST(JsonScanTest, NestingDepthCountsBracketsOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("", 10), 0);
  EXPECT_EQ(JsonNestingDepth("42", 10), 0);
  EXPECT_EQ(JsonNestingDepth("[]", 10), 1);
  EXPECT_EQ(JsonNestingDepth(R"({"a": [{"b": []}], "c": {}})", 10), 4);
  EXPECT_EQ(JsonNestingDepth(R"(["[[[[", "\"[[[["])", 10), 1);
  EXPECT_EQ(JsonNestingDepth(R"(["\\", [[]]])", 10), 3);  // an escaped backslash ends no string
  EXPECT_EQ(JsonNestingDepth("[][][]", 10), 1);
}

TEST(JsonScanTest, NestingDepthStopsOncePastTheLimit) {
  const std::string deep = std::string(1000, '[') + std::string(1000, ']');
  EXPECT_EQ(JsonNestingDepth(deep, 4), 5);
  EXPECT_EQ(JsonNestingDepth(deep, 1000), 1000);
  EXPECT_EQ(JsonNestingDepth(std::string(kMaxJsonDepth, '['), kMaxJsonDepth), kMaxJsonDepth);
  EXPECT_EQ(JsonNestingDepth(std::string(kMaxJsonDepth + 1, '{'), kMaxJsonDepth),
            kMaxJsonDepth + 1);
}

TEST(JsonScanTest, NestingDepthOfTruncatedOrUnbalancedText) {
  EXPECT_EQ(JsonNestingDepth("[[[", 10), 3);        // never closed
  EXPECT_EQ(JsonNestingDepth(R"([["abc)", 10), 2);  // cut inside a string
  EXPECT_EQ(JsonNestingDepth(R"(["[[[)", 10), 1);   // the brackets are the string's
  EXPECT_EQ(JsonNestingDepth("]]][[", 10), 0);      // closers first run below zero
  EXPECT_EQ(JsonNestingDepth("[\"\\", 10), 1);      // a backslash as the last byte
}

}  // namespace
}  // namespace cgpu
