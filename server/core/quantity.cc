#include "core/quantity.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <system_error>

namespace cgpu {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// An exponent after e/E: an optional sign and at least one digit, within int64 (the API server
// reads it with strconv.ParseInt(..., 10, 64) and refuses the quantity otherwise).
bool IsExponent(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
    digits.remove_prefix(1);
  }
  if (digits.empty()) return false;
  for (char c : digits) {
    if (!IsDigit(c)) return false;
  }
  // from_chars takes a leading '-' but not '+': parse the digits with the minus sign, if any.
  const std::string_view number = text.front() == '-' ? text : digits;
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  return error == std::errc() && end == number.data() + number.size();
}

bool IsSuffix(std::string_view suffix) {
  static constexpr std::array<std::string_view, 16> kSuffixes = {
      "",   "n",  "u",  "m",  "k",  "M", "G", "T", "P", "E",  // decimal SI
      "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};                    // binary SI
  for (std::string_view known : kSuffixes) {
    if (suffix == known) return true;
  }
  // "E" alone is exa (above); "e"/"E" followed by an exponent is a decimal exponent.
  return suffix.size() > 1 && (suffix.front() == 'e' || suffix.front() == 'E') &&
         IsExponent(suffix.substr(1));
}

}  // namespace

bool QuantityIsPositive(std::string_view quantity) {
  size_t at = 0;
  bool negative = false;
  if (at < quantity.size() && (quantity[at] == '+' || quantity[at] == '-')) {
    negative = quantity[at] == '-';
    ++at;
  }
  bool any_digit = false;
  bool non_zero = false;
  const auto digits = [&] {
    for (; at < quantity.size() && IsDigit(quantity[at]); ++at) {
      any_digit = true;
      non_zero = non_zero || quantity[at] != '0';
    }
  };
  digits();
  if (at < quantity.size() && quantity[at] == '.') {
    ++at;
    digits();
  }
  if (!any_digit || !IsSuffix(quantity.substr(at))) return false;
  return non_zero && !negative;
}

}  // namespace cgpu
