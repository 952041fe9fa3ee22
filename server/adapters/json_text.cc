#include "adapters/json_text.h"

#include <algorithm>

namespace cgpu {

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  size_t i = 0;
  while (i < size) {
    const unsigned char byte = bytes[i];
    if (byte >= 0x20 && byte < 0x80 && byte != '"' && byte != '\\') {
      // A run of characters that need nothing, copied at once.
      size_t end = i + 1;
      while (end < size && bytes[end] >= 0x20 && bytes[end] < 0x80 && bytes[end] != '"' &&
             bytes[end] != '\\') {
        ++end;
      }
      out.append(text.data() + i, end - i);
      i = end;
      continue;
    }
    if (byte < 0x80) {
      out.push_back('\\');
      switch (byte) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '\b':
          out.push_back('b');
          break;
        case '\t':
          out.push_back('t');
          break;
        case '\n':
          out.push_back('n');
          break;
        case '\f':
          out.push_back('f');
          break;
        case '\r':
          out.push_back('r');
          break;
        default:
          out.append("u00");
          out.push_back(kHex[byte >> 4]);
          out.push_back(kHex[byte & 0xF]);
      }
      ++i;
      continue;
    }
    // A multi-byte UTF-8 sequence: well-formed ones (no overlong forms, surrogates or code points
    // past U+10FFFF) are copied; otherwise the bytes up to the first one that cannot continue the
    // sequence become one U+FFFD, and that byte is read again as a new start, as nlohmann does.
    size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (byte >= 0xC2 && byte <= 0xDF) {
      length = 2;
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      length = 3;
      if (byte == 0xE0) low = 0xA0;
      if (byte == 0xED) high = 0x9F;
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      length = 4;
      if (byte == 0xF0) low = 0x90;
      if (byte == 0xF4) high = 0x8F;
    }
    if (length == 0) {
      out.append(kReplacement);
      ++i;
      continue;
    }
    size_t valid = 1;
    while (valid < length && i + valid < size) {
      const unsigned char next = bytes[i + valid];
      if (next < low || next > high) break;
      low = 0x80;
      high = 0xBF;
      ++valid;
    }
    if (valid == length) {
      out.append(text.data() + i, length);
    } else {
      out.append(kReplacement);
    }
    i += valid;
  }
  out.push_back('"');
}

size_t SkipJsonSpace(std::string_view text, size_t at) {
  while (at < text.size() && IsJsonSpace(text[at])) ++at;
  return at;
}

size_t SkipJsonString(std::string_view text, size_t at) {
  for (size_t i = at + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;  // whatever is escaped, a quote included, is part of the string
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

size_t SkipJsonValue(std::string_view text, size_t at) {
  int depth = 0;
  size_t i = at;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {
      i = SkipJsonString(text, i);
      if (i == std::string_view::npos || depth == 0) return i;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i;  // the end of a number, true, false or null
      if (--depth == 0) return i + 1;
    } else if (depth == 0 && (c == ',' || IsJsonSpace(c))) {
      return i;  // the end of a number, true, false or null
    }
    ++i;
  }
  return depth == 0 ? i : std::string_view::npos;
}

int JsonNestingDepth(std::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {
      i = SkipJsonString(text, i);
      if (i == std::string_view::npos) break;
      continue;
    }
    if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
    ++i;
  }
  return deepest;
}

}  // namespace cgpu
