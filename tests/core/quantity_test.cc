#include "core/quantity.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string_view>

namespace cgpu {
namespace {

void ExpectPositive(bool positive, std::initializer_list<const char*> quantities) {
  for (const char* text : quantities) {
    EXPECT_EQ(QuantityIsPositive(text), positive) << '"' << text << '"';
  }
}

TEST(QuantityTest, AmountsAboveZeroArePositive) {
  ExpectPositive(true, {"1", "2", "20", "+1", "16276", "0001"});
  ExpectPositive(true, {"0.5", ".5", "5.", "1.0", "2.5Gi"});
  ExpectPositive(true, {"500m", "1n", "1u", "1k", "1M", "1G", "1T", "1P", "1E"});
  ExpectPositive(true, {"1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"});
  ExpectPositive(true, {"1e3", "1E3", "1e+3", "1e-3"});
  // The API server rounds a non-zero amount up to 1n, never down to zero.
  ExpectPositive(true, {"1e-100", "0.001n"});
  ExpectPositive(true, {"18446744073709551616", "1e9223372036854775807", "1e-9223372036854775808"});
}

TEST(QuantityTest, ZeroIsNotPositiveWhateverItsSpelling) {
  ExpectPositive(false, {"0", "-0", "+0", "0.0", "00", "0.", ".0", "-0.0Mi"});
  ExpectPositive(false, {"0Gi", "0Ki", "0m", "0n", "0E", "0e5", "0e-5"});
}

TEST(QuantityTest, NegativeAmountsAreNotPositive) {
  ExpectPositive(false, {"-1", "-0.5", "-500m", "-1Gi", "-1e3"});
}

TEST(QuantityTest, MalformedTextIsNotPositive) {
  ExpectPositive(false, {"", "+", "-", ".", "m", "Gi", "one", "0x10", "1,5"});
  ExpectPositive(false, {"1.5.5", "1..5", "--1", "+-1", "1-"});
  ExpectPositive(false, {" 1", "1 ", "1 Gi", "1\n", "1Gi\t"});
  ExpectPositive(false, {"1GB", "1gi", "1K", "1KI", "1iB", "1Gii", "1mm"});
  ExpectPositive(false, {"1e", "1e+", "1e-", "1E+", "1e1.5", "1e3m", "1ee3", "1e3e3"});
  // Exponents past 64 bits are refused by the API server's strconv.ParseInt.
  ExpectPositive(false,
                 {"1e9223372036854775808", "1e-9223372036854775809", "1e99999999999999999999"});
}

TEST(QuantityTest, ReadsOnlyTheViewItIsGiven) {
  const std::string_view text = "0Gi1";  // a view of "0" followed by other characters
  EXPECT_FALSE(QuantityIsPositive(text.substr(0, 1)));
  EXPECT_TRUE(QuantityIsPositive(text.substr(3, 1)));
  EXPECT_FALSE(QuantityIsPositive(std::string_view("1e3", 2)));  // "1e"
}

}  // namespace
}  // namespace cgpu
