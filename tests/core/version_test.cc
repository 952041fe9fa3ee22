#include "core/version.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

Version V(const char* text) {
  std::optional<Version> version = Version::Parse(text);
  EXPECT_TRUE(version.has_value()) << text;
  return version.value_or(Version());
}

TEST(VersionTest, ComparesComponentsAsNumbers) {
  EXPECT_GT(V("1.5.10"), V("1.5.9"));
  EXPECT_GT(V("470.161.03"), V("470.82.01"));
  EXPECT_LT(V("0.8.17"), V("1.0.3"));
  EXPECT_EQ(V("1.11"), V("1.11.0"));
  EXPECT_EQ(V("v1.5.10"), V("1.5.10"));
}

TEST(VersionTest, KeepsItsSpellingForMessages) {
  EXPECT_EQ(V("470.161.03").ToString(), "470.161.03");
  EXPECT_EQ(V(" 1.5.2 ").ToString(), "1.5.2");
  EXPECT_EQ(V("v1.5.10").ToString(), "1.5.10");
  EXPECT_EQ(Version({5, 10}).ToString(), "5.10");
}

TEST(VersionTest, RejectsWhatIsNotAVersion) {
  for (const char* text : {"", "v", "1.", ".1", "1..2", "1.x", "1.5.2-beta", "abc", "1 .2",
                           "1234567890", "1.2.3.4.5.6.7", "-1",
                           // Found by fuzz_rules: a tenth digit used to overflow int before the
                           // length check (undefined behaviour; caught by UBSan).
                           "5444444444", "1.54444444444444444444.8"}) {
    EXPECT_FALSE(Version::Parse(text).has_value()) << text;
  }
}

TEST(VersionTest, ParsePrefixReadsKernelReleases) {
  EXPECT_EQ(Version::ParsePrefix("5.10.134-18.al8.x86_64")->ToString(), "5.10.134");
  EXPECT_EQ(Version::ParsePrefix("4.19.91-24.1.al7.x86_64")->ToString(), "4.19.91");
  EXPECT_EQ(Version::ParsePrefix("5.15.0-101-generic")->ToString(), "5.15.0");
  EXPECT_EQ(Version::ParsePrefix("4.14.127+")->ToString(), "4.14.127");
  EXPECT_FALSE(Version::ParsePrefix("5").has_value());  // a bare major says too little
  EXPECT_FALSE(Version::ParsePrefix("generic").has_value());
  EXPECT_FALSE(Version::ParsePrefix("").has_value());
}

TEST(VersionTest, ComparePrefixIgnoresComponentsTheBoundDoesNotHave) {
  EXPECT_EQ(V("1.17.3").ComparePrefix(V("1.17")), std::strong_ordering::equal);
  EXPECT_EQ(V("5.15.0").ComparePrefix(V("5.15")), std::strong_ordering::equal);
  EXPECT_EQ(V("5.16").ComparePrefix(V("5.15")), std::strong_ordering::greater);
  EXPECT_EQ(V("5").ComparePrefix(V("5.1")), std::strong_ordering::less);
}

TEST(VersionRangeTest, ParsesTheSeedsForms) {
  EXPECT_EQ(VersionRange::Parse("1.5.3 - 1.5.20")->ToString(), "1.5.3-1.5.20");
  EXPECT_EQ(VersionRange::Parse("1.5.3 \xE2\x80\x93 1.5.20")->ToString(), "1.5.3-1.5.20");
  EXPECT_EQ(VersionRange::Parse("1.5.3-1.5.20")->ToString(), "1.5.3-1.5.20");
  EXPECT_EQ(VersionRange::Parse("<= 1.10")->ToString(), "<=1.10");
  EXPECT_EQ(VersionRange::Parse(">=1.5.10")->ToString(), ">=1.5.10");
  EXPECT_EQ(VersionRange::Parse("0.8.17")->ToString(), "0.8.17");
}

TEST(VersionRangeTest, RejectsInvertedAndMalformedRanges) {
  for (const char* text : {"1.5.20 - 1.5.3", "- 1.5", "1.5 -", "<=", ">= x", "1.5 - 1.x", ""}) {
    EXPECT_FALSE(VersionRange::Parse(text).has_value()) << text;
  }
}

TEST(VersionRangeTest, BoundsMatchByPrefix) {
  const VersionRange toolkit = *VersionRange::Parse("1.11 - 1.17");
  EXPECT_TRUE(toolkit.Contains(V("1.11.0")));
  EXPECT_TRUE(toolkit.Contains(V("1.17.5")));
  EXPECT_FALSE(toolkit.Contains(V("1.10.9")));
  EXPECT_FALSE(toolkit.Contains(V("1.18.0")));
  EXPECT_TRUE(toolkit.IsAbove(V("1.18.0")));
  EXPECT_FALSE(toolkit.IsAbove(V("1.10.0")));

  const VersionRange kernel = *VersionRange::Parse("5 - 5.15");
  EXPECT_TRUE(kernel.Contains(V("5.0.1")));
  EXPECT_TRUE(kernel.Contains(V("5.15.167")));
  EXPECT_FALSE(kernel.Contains(V("5.16")));
  EXPECT_FALSE(kernel.Contains(V("4.19.91")));

  const VersionRange up_to = *VersionRange::Parse("<= 1.10");
  EXPECT_TRUE(up_to.Contains(V("1.0")));
  EXPECT_TRUE(up_to.Contains(V("1.10.3")));
  EXPECT_FALSE(up_to.Contains(V("1.11.0")));
  EXPECT_FALSE(up_to.IsAbove(V("0.9")));
  EXPECT_TRUE((*VersionRange::Parse(">=1.5.10")).Contains(V("9.0")));
}

}  // namespace
}  // namespace cgpu
