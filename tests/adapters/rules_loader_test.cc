#include "adapters/rules_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "adapters/embedded_rules.h"
#include "support/fixtures.h"

namespace cgpu {
namespace {

using testing::EditedRules;
using testing::kRulesPath;
using testing::LineOf;
using testing::RulesFileText;

constexpr char kSource[] = "test-rules.yaml";

std::string ErrorOf(const std::string& text) {
  StatusOr<RuleTable> table = LoadRules(text, kSource);
  if (table.ok()) {
    ADD_FAILURE() << "the rules loaded but an error was expected";
    return "";
  }
  EXPECT_EQ(table.status().code(), StatusCode::kInvalidArgument);
  return table.status().message();
}

// The cells of a row as their ToString(), space-separated.
std::string Sets(const std::vector<VersionSet>& sets) {
  std::string text;
  for (const VersionSet& set : sets) text += (text.empty() ? "" : " ") + set.ToString();
  return text;
}

// "test-rules.yaml:LINE: PATH: " followed by `what`.
std::string Located(int line, const std::string& path, const std::string& what) {
  return std::string(kSource) + ":" + std::to_string(line) + ": " + path + ": " + what;
}

TEST(RulesLoaderTest, RealFileLoadsWithTheSeedTables) {
  StatusOr<RuleTable> loaded = LoadRulesFile(kRulesPath);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const RuleTable& table = *loaded;
  EXPECT_EQ(table.max_pods_per_gpu, 20);
  EXPECT_EQ(table.driver.size(), 3u);
  EXPECT_EQ(table.instance_family.size(), 6u);
  EXPECT_EQ(table.container_toolkit.size(), 2u);
  EXPECT_EQ(table.kernel.size(), 5u);

  ASSERT_EQ(table.cgpu_enabled_labels.size(), 3u);
  EXPECT_EQ(table.cgpu_enabled_labels[0].key, "ack.node.gpu.schedule");
  EXPECT_EQ(table.cgpu_enabled_labels[0].value, "cgpu");
  EXPECT_EQ(table.cgpu_enabled_labels[1].value, "core_mem");
  EXPECT_EQ(table.cgpu_enabled_labels[2].key, "cgpu");
  EXPECT_EQ(table.cgpu_enabled_labels[2].value, "true");
  EXPECT_EQ(table.isolation_disabled_label.key, "cgpu.disable.isolation");
  EXPECT_EQ(table.isolation_disabled_label.value, "true");

  // Driver row 1: "470 <= 470.161.03" is a bounded series, not_supported plain series numbers;
  // every cell is a family.
  EXPECT_EQ(table.driver[1].cgpu.ToString(), "1.0.5-1.5.2");
  ASSERT_EQ(table.driver[1].supported.size(), 5u);
  EXPECT_EQ(table.driver[1].supported[0].ToString(), "460.x");
  EXPECT_EQ(table.driver[1].supported[1].ToString(), "470.x<=470.161.03");
  ASSERT_TRUE(table.driver[1].supported[1].family.has_value());
  EXPECT_EQ(table.driver[1].supported[1].family->ToString(), "470");
  EXPECT_EQ(table.driver[1].supported[1].range.high->ToString(), "470.161.03");
  EXPECT_EQ(Sets(table.driver[1].not_supported), "535.x 550.x 560.x 565.x 570.x 575.x");
  EXPECT_EQ(table.driver[0].supported.size(), 11u);

  EXPECT_EQ(table.instance_family[0].cgpu.ToString(), "1.5.19-1.5.20");
  EXPECT_EQ(table.instance_family[0].supported.back(), "ebmgn9t");
  EXPECT_TRUE(table.instance_family[0].not_supported.empty());
  EXPECT_EQ(table.instance_family[5].not_supported.size(), 14u);

  EXPECT_EQ(table.container_toolkit[1].cgpu.ToString(), "0.8.13-1.0.10");
  EXPECT_EQ(Sets(table.container_toolkit[0].supported), "<=1.10 1.11-1.17");
  EXPECT_EQ(Sets(table.container_toolkit[1].not_supported), ">=1.11");
  EXPECT_FALSE(table.container_toolkit[0].supported[1].family.has_value()) << "a range";

  // A single version is a one-version range; "<= 1.5.7" has no lower bound.
  EXPECT_EQ(table.kernel[3].cgpu.ToString(), "0.8.17");
  EXPECT_EQ(Sets(table.kernel[0].supported), "3.x 4.x 5.x<=5.15");
  EXPECT_EQ(Sets(table.kernel[4].supported), "3.x 4.x");
  EXPECT_EQ(Sets(table.kernel[4].not_supported), "5.x");
  EXPECT_FALSE(table.kernel_panic.affected.low.has_value());
  EXPECT_EQ(table.kernel_panic.affected.ToString(), "<=1.5.7");
  ASSERT_TRUE(table.kernel_panic.fixed_from.has_value());
  EXPECT_EQ(table.kernel_panic.fixed_from->ToString(), "1.5.10");
  EXPECT_EQ(table.container_os.affected.ToString(), "<=1.5.18");
  EXPECT_EQ(table.container_os.fixed_by_ai_installer.ToString(), "1.12.6");
  EXPECT_EQ(table.nvml.affected.ToString(), "<=1.5.2");
  EXPECT_EQ(Sets(table.nvml.last_safe),
            "460.x 470.x<=470.161.03 510.x<=510.108.03 515.x<=515.86.01 525.x<=525.89.03");
  EXPECT_EQ(table.nvml.newer_series_from, 535);

  for (const char* rule : {"driver", "instance-family", "container-toolkit", "kernel",
                           "kernel-panic", "container-os", "nvml", "pods-per-gpu"}) {
    ASSERT_EQ(table.texts.count(rule), 1u) << rule;
    EXPECT_FALSE(table.texts.at(rule).symptom.empty()) << rule;
    EXPECT_FALSE(table.texts.at(rule).remedy.empty()) << rule;
  }
  EXPECT_EQ(table.texts.size(), 8u);
  EXPECT_EQ(table.Text("pods-per-gpu").remedy, "keep at most 20 pods on each GPU");
}

TEST(RulesLoaderTest, EmbeddedRulesAreTheFileAsBuilt) {
  EXPECT_EQ(EmbeddedRulesYaml(), RulesFileText());
  StatusOr<RuleTable> loaded = LoadRulesFile(kRulesPath);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const RuleTable& embedded = EmbeddedRules();
  EXPECT_EQ(&embedded, &EmbeddedRules()) << "parsed once";
  EXPECT_EQ(embedded.max_pods_per_gpu, loaded->max_pods_per_gpu);
  ASSERT_EQ(embedded.driver.size(), loaded->driver.size());
  for (size_t i = 0; i < embedded.driver.size(); ++i) {
    EXPECT_EQ(embedded.driver[i].cgpu.ToString(), loaded->driver[i].cgpu.ToString());
    EXPECT_EQ(Sets(embedded.driver[i].supported), Sets(loaded->driver[i].supported));
    EXPECT_EQ(Sets(embedded.driver[i].not_supported), Sets(loaded->driver[i].not_supported));
  }
  ASSERT_EQ(embedded.instance_family.size(), loaded->instance_family.size());
  for (size_t i = 0; i < embedded.instance_family.size(); ++i) {
    EXPECT_EQ(embedded.instance_family[i].supported, loaded->instance_family[i].supported);
  }
  EXPECT_EQ(embedded.kernel.size(), loaded->kernel.size());
  EXPECT_EQ(embedded.container_toolkit.size(), loaded->container_toolkit.size());
  EXPECT_EQ(embedded.container_os.fixed_by_ai_installer,
            loaded->container_os.fixed_by_ai_installer);
  EXPECT_EQ(embedded.nvml.newer_series_from, loaded->nvml.newer_series_from);
  EXPECT_EQ(embedded.Text("driver").symptom, loaded->Text("driver").symptom);
}

TEST(RulesLoaderTest, SourceNameIsUsedInMessages) {
  StatusOr<RuleTable> table = LoadRules(EditedRules("max: 20", "max: 0"), "override.yaml");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().message().rfind("override.yaml:", 0), 0u) << table.status().message();
}

TEST(RulesLoaderTest, MalformedYamlNamesTheLine) {
  const std::string text = EditedRules("  max: 20", "  max: [20");
  // yaml-cpp notices the unclosed list where the next key begins; its own words follow.
  const std::string prefix = std::string(kSource) + ":" +
                             std::to_string(LineOf(text, "  symptom:")) + ": not valid YAML: ";
  const std::string message = ErrorOf(text);
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  EXPECT_GT(message.size(), prefix.size()) << message;
}

// Found by fuzz_rules (tests/fuzz/): a bound with a very long component overflowed an int.
TEST(RulesLoaderTest, OverlongVersionComponentIsAnErrorNotOverflow) {
  const std::string text =
      EditedRules("- cgpu: 1.5.19 - 1.5.20", "- cgpu: 1.5.19 - 1.544444444444444.20");
  const std::string message = ErrorOf(text);
  EXPECT_NE(message.find(std::to_string(LineOf(text, "1.544444444444444.20"))), std::string::npos)
      << message;
}

TEST(RulesLoaderTest, UnterminatedQuoteIsInvalidYaml) {
  const std::string message =
      ErrorOf(EditedRules("{key: cgpu, value: \"true\"}", "{key: cgpu, value: \"true}"));
  EXPECT_EQ(message.rfind(std::string(kSource) + ":", 0), 0u) << message;
  EXPECT_NE(message.find("not valid YAML"), std::string::npos) << message;
}

TEST(RulesLoaderTest, UnknownKeyNamesPathAndKnownKeys) {
  const std::string text = EditedRules("        not_supported: [535, 550, 560, 565, 570, 575]",
                                       "        not_suported: [535, 550, 560, 565, 570, 575]");
  EXPECT_EQ(ErrorOf(text),
            Located(LineOf(text, "not_suported"), "rules.driver.rows[1].not_suported",
                    "unknown key (expected one of: cgpu, not_supported, supported)"));
}

TEST(RulesLoaderTest, UnknownTopLevelKey) {
  const std::string text =
      EditedRules("schema: cgpu-guard/rules/v1\n", "schema: cgpu-guard/rules/v1\nmax_pods: 20\n");
  const std::string message = ErrorOf(text);
  EXPECT_EQ(message.rfind(Located(LineOf(text, "max_pods:"), "(top).max_pods", "unknown key"), 0),
            0u)
      << message;
}

TEST(RulesLoaderTest, KeyGivenTwiceIsAnError) {
  // yaml-cpp would keep the first and silently drop the override's second value.
  const std::string text = EditedRules("  max: 20\n", "  max: 20\n  max: 3\n");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "  max: 3"), "pods_per_gpu.max", "is given twice"));
}

TEST(RulesLoaderTest, MissingKeyNamesTheMappingThatLacksIt) {
  const std::string text = EditedRules("    fixed_by_ai_installer: 1.12.6\n", "");
  // The line is the mapping's first line: the key has none of its own.
  const int line = LineOf(text, "  container_os:") + 1;
  EXPECT_EQ(ErrorOf(text),
            Located(line, "rules.container_os.fixed_by_ai_installer", "is required"));
}

TEST(RulesLoaderTest, MissingRequiredList) {
  const std::string text = EditedRules("        supported: [\"460\", \"470 <= 470.161.03\"]\n", "");
  const std::string message = ErrorOf(text);
  const int line = LineOf(text, "      - cgpu: 0.8.13 - 1.0.3");
  EXPECT_EQ(message, Located(line, "rules.driver.rows[2].supported", "is required"));
}

TEST(RulesLoaderTest, NullValueCountsAsMissing) {
  const std::string text = EditedRules("  max: 20", "  max: ~");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "  max: ~"), "pods_per_gpu.max", "is required"));
}

TEST(RulesLoaderTest, BadVersion) {
  const std::string text =
      EditedRules("fixed_by_ai_installer: 1.12.6", "fixed_by_ai_installer: 1.x");
  EXPECT_EQ(ErrorOf(text),
            Located(LineOf(text, "fixed_by_ai_installer: 1.x"),
                    "rules.container_os.fixed_by_ai_installer", "\"1.x\" is not a version"));
}

TEST(RulesLoaderTest, BadVersionInARange) {
  const std::string text = EditedRules("- cgpu: 1.5.3 - 1.5.20", "- cgpu: 1.x - 1.5.20");
  const std::string message = ErrorOf(text);
  EXPECT_EQ(message.rfind(Located(LineOf(text, "1.x - 1.5.20"), "rules.driver.rows[0].cgpu",
                                  "\"1.x - 1.5.20\" is not a version range"),
                          0),
            0u)
      << message;
}

TEST(RulesLoaderTest, InvertedRangeIsRejected) {
  const std::string text = EditedRules("- cgpu: 1.5.9 - 1.5.20", "- cgpu: 1.5.20 - 1.5.9");
  const std::string message = ErrorOf(text);
  EXPECT_EQ(message.rfind(Located(LineOf(text, "1.5.20 - 1.5.9"), "rules.kernel.rows[0].cgpu",
                                  "\"1.5.20 - 1.5.9\" is not a version range"),
                          0),
            0u)
      << message;
}

TEST(RulesLoaderTest, InvertedRangeInSupportedList) {
  const std::string text = EditedRules("supported: [\"<= 1.10\", \"1.11 - 1.17\"]",
                                       "supported: [\"<= 1.10\", \"1.17 - 1.11\"]");
  const std::string message = ErrorOf(text);
  EXPECT_NE(message.find(":" + std::to_string(LineOf(text, "1.17 - 1.11")) +
                         ": rules.container_toolkit.rows[0].supported[1]: "),
            std::string::npos)
      << message;
}

TEST(RulesLoaderTest, OverlappingRowsAreRejectedInEachTable) {
  struct Case {
    std::string from, to, path, overlapped;
  };
  const std::vector<Case> cases = {
      {"- cgpu: 1.0.5 - 1.5.2", "- cgpu: 1.0.5 - 1.5.3", "rules.driver.rows[1].cgpu", "row 0"},
      {"- cgpu: 1.5.5 - 1.5.6", "- cgpu: 1.5.5 - 1.5.7", "rules.instance_family.rows[3].cgpu",
       "row 2"},
      {"- cgpu: 0.8.13 - 1.0.10", "- cgpu: 0.8.13 - 1.0.11", "rules.container_toolkit.rows[1].cgpu",
       "row 0"},
      {"- cgpu: 1.5.3 - 1.5.8", "- cgpu: 1.5.3 - 1.5.9", "rules.kernel.rows[1].cgpu", "row 0"},
  };
  for (const Case& c : cases) {
    const std::string text = EditedRules(c.from, c.to);
    const std::string message = ErrorOf(text);
    EXPECT_EQ(message.rfind(Located(LineOf(text, c.to), c.path, ""), 0), 0u) << message;
    EXPECT_NE(message.find("overlaps " + c.overlapped + " ("), std::string::npos) << message;
  }
}

TEST(RulesLoaderTest, OverlapMessageNamesBothRanges) {
  const std::string text = EditedRules("- cgpu: 1.5.3 - 1.5.8", "- cgpu: 1.5.3 - 1.5.9");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "1.5.3 - 1.5.9"), "rules.kernel.rows[1].cgpu",
                                   "1.5.3-1.5.9 overlaps row 0 (1.5.9-1.5.20)"));
}

TEST(RulesLoaderTest, OpenRangesAndPrefixBoundsOverlap) {
  // "<= 0.8.17" reaches down into nothing but up into row 3 (0.8.17).
  std::string message = ErrorOf(EditedRules("- cgpu: 0.8.10 - 0.8.13", "- cgpu: <= 0.8.17"));
  EXPECT_NE(message.find("rules.kernel.rows[4].cgpu: <=0.8.17 overlaps row 3 (0.8.17)"),
            std::string::npos)
      << message;
  // An upper bound "1.5" admits every 1.5.x, so it meets the row from 1.5.3.
  message = ErrorOf(EditedRules("- cgpu: 1.0.5 - 1.5.2", "- cgpu: 1.0.5 - 1.5"));
  EXPECT_NE(message.find("rules.driver.rows[1].cgpu: 1.0.5-1.5 overlaps row 0"), std::string::npos)
      << message;
}

TEST(RulesLoaderTest, AdjacentRowsDoNotOverlap) {
  // 1.0.4 and 1.0.5 touch but share no version; the real file has such rows too.
  StatusOr<RuleTable> table =
      LoadRules(EditedRules("- cgpu: 0.8.13 - 1.0.3", "- cgpu: 0.8.13 - 1.0.4"), kSource);
  EXPECT_TRUE(table.ok()) << table.status().message();
}

TEST(RulesLoaderTest, WrongSchema) {
  const std::string text =
      EditedRules("schema: cgpu-guard/rules/v1", "schema: cgpu-guard/rules/v2");
  EXPECT_EQ(ErrorOf(text),
            Located(LineOf(text, "schema:"), "schema",
                    "\"cgpu-guard/rules/v2\" is not supported (expected cgpu-guard/rules/v1)"));
}

TEST(RulesLoaderTest, MissingSchema) {
  const std::string text = EditedRules("schema: cgpu-guard/rules/v1\n", "");
  // The top-level mapping starts at its first key.
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "pods_per_gpu:"), "(top).schema", "is required"));
}

TEST(RulesLoaderTest, EmptyTextNamesTheSource) {
  for (const std::string text : {"", "\n\n", "# only a comment\n", "~\n"}) {
    EXPECT_EQ(ErrorOf(text), std::string(kSource) + ": the file is empty") << "\"" << text << "\"";
  }
}

TEST(RulesLoaderTest, TopLevelMustBeAMapping) {
  EXPECT_EQ(ErrorOf("- schema: cgpu-guard/rules/v1\n"), Located(1, "(top)", "expected a mapping"));
  EXPECT_EQ(ErrorOf("just text\n"), Located(1, "(top)", "expected a mapping"));
}

TEST(RulesLoaderTest, BadIntegersForMax) {
  for (const std::string bad : {"20x", "0", "1001", "-1", "2.5", "99999999999"}) {
    const std::string text = EditedRules("  max: 20", "  max: " + bad);
    EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "  max: "), "pods_per_gpu.max",
                                     "\"" + bad + "\" is not a whole number from 1 to 1000"));
  }
  StatusOr<RuleTable> table = LoadRules(EditedRules("  max: 20", "  max: 1000"), kSource);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(table->max_pods_per_gpu, 1000);
}

TEST(RulesLoaderTest, ListWhereAValueBelongs) {
  const std::string text = EditedRules("  max: 20", "  max: [20]");
  EXPECT_EQ(ErrorOf(text),
            Located(LineOf(text, "[20]"), "pods_per_gpu.max", "expected a single value"));
}

TEST(RulesLoaderTest, EmptyText) {
  const std::string text =
      EditedRules("  remedy: keep at most 20 pods on each GPU", "  remedy: \"\"");
  EXPECT_EQ(ErrorOf(text),
            Located(LineOf(text, "remedy: \"\""), "pods_per_gpu.remedy", "must not be empty"));
}

TEST(RulesLoaderTest, ValueWhereAListBelongs) {
  const std::string text =
      EditedRules("        supported: [gn6i, gn6e, gn6v, gn6t, ebmgn6i, ebmgn6t, ebmgn6e]",
                  "        supported: gn6i");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "supported: gn6i"),
                                   "rules.instance_family.rows[5].supported", "expected a list"));
}

TEST(RulesLoaderTest, ValueWhereAMappingBelongs) {
  const std::string text =
      EditedRules("isolation_disabled_label: {key: cgpu.disable.isolation, value: \"true\"}",
                  "isolation_disabled_label: cgpu.disable.isolation=true");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "isolation_disabled_label:"),
                                   "isolation_disabled_label", "expected a mapping"));
}

TEST(RulesLoaderTest, LabelNeedsKeyAndValue) {
  const std::string text = EditedRules("{key: cgpu, value: \"true\"}", "{key: cgpu}");
  EXPECT_EQ(ErrorOf(text),
            Located(LineOf(text, "{key: cgpu}"), "cgpu_enabled_labels[2].value", "is required"));
}

TEST(RulesLoaderTest, BadDriverSeries) {
  struct Case {
    std::string entry, what;
  };
  const std::vector<Case> cases = {
      {"\"47x\"", "\"47x\" is not a driver series (forms: 470, 470 <= 470.161.03)"},
      {"\"470.82\"", "\"470.82\" is not a driver series (forms: 470, 470 <= 470.161.03)"},
      {"\"0\"", "\"0\" is not a driver series (forms: 470, 470 <= 470.161.03)"},
      // Trailing words or a lone "<" must not leave an unbounded series behind.
      {"\"470 foo\"", "\"470 foo\" is not a driver series (forms: 470, 470 <= 470.161.03)"},
      {"\"470 < 470.161.03\"",
       "\"470 < 470.161.03\" is not a driver series (forms: 470, 470 <= 470.161.03)"},
      {"\"470 <= 47x\"", "\"470 <= 47x\": the bound must be a version of the 470 series"},
      {"\"470 <= 510.108.03\"",
       "\"470 <= 510.108.03\": the bound must be a version of the 470 series"},
  };
  for (const Case& c : cases) {
    const std::string text = EditedRules("        supported: [\"460\", \"470\", \"510\"",
                                         "        supported: [\"460\", " + c.entry + ", \"510\"");
    EXPECT_EQ(ErrorOf(text),
              Located(LineOf(text, c.entry), "rules.driver.rows[0].supported[1]", c.what));
  }
}

TEST(RulesLoaderTest, DriverSeriesFormsThatLoad) {
  StatusOr<RuleTable> table =
      LoadRules(EditedRules("        supported: [\"460\", \"470\", \"510\"",
                            "        supported: [\"460\", \"470<=470.82.01\", \"510\""),
                kSource);
  ASSERT_TRUE(table.ok()) << table.status().message();
  ASSERT_TRUE(table->driver[0].supported[1].range.high.has_value());
  EXPECT_EQ(table->driver[0].supported[1].range.high->ToString(), "470.82.01");
  EXPECT_EQ(table->driver[0].supported[1].ToString(), "470.x<=470.82.01");
}

TEST(RulesLoaderTest, BadVersionSets) {
  const std::string forms =
      " is not a version set (forms: 5.x, 5.x <= 5.15, <= 1.10, 1.11 - 1.17, >= 1.11; a bound lies "
      "inside its family)";
  // The bound of a family lies inside it: "5.x <= 6.1" would say something of 6.x, "5.x <= 5"
  // nothing at all.
  for (const std::string bad :
       {"5.y <= 5.15", "5.x <= 6.1", "5.x <= 5", "5.x <=", "x", "5.x - 6"}) {
    const std::string text = EditedRules("supported: [\"3.x\", \"4.x\", \"5.x <= 5.15\"]",
                                         "supported: [\"3.x\", \"4.x\", \"" + bad + "\"]");
    EXPECT_EQ(ErrorOf(text),
              Located(LineOf(text, "\"" + bad + "\""), "rules.kernel.rows[0].supported[2]",
                      "\"" + bad + "\"" + forms))
        << bad;
  }
}

TEST(RulesLoaderTest, VersionSetFormsThatLoad) {
  StatusOr<RuleTable> table =
      LoadRules(EditedRules("supported: [\"3.x\", \"4.x\", \"5.x <= 5.15\"]",
                            "supported: [\"3 - 4\", \"5<=5.15\", \">= 6.1\"]"),
                kSource);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(Sets(table->kernel[0].supported), "3-4 5.x<=5.15 >=6.1");
}

TEST(RulesLoaderTest, FixedFromLiesPastTheAffectedVersions) {
  for (const std::string bad : {"1.5.7", "1.5.3", "1.5"}) {
    const std::string text = EditedRules("    fixed_from: 1.5.10", "    fixed_from: " + bad);
    EXPECT_EQ(ErrorOf(text),
              Located(LineOf(text, "fixed_from: " + bad), "rules.kernel_panic.fixed_from",
                      bad + " is not past the affected versions (<=1.5.7)"))
        << bad;
  }
  // An open-ended affected range has no "past".
  std::string text = EditedRules("    affected: \"<= 1.5.7\"", "    affected: \">= 1.5.7\"");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "fixed_from:"), "rules.kernel_panic.fixed_from",
                                   "1.5.10 is not past the affected versions (>=1.5.7)"));
  text = EditedRules("    fixed_from: 1.5.10", "    fixed_from: 1.5.x");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "fixed_from:"), "rules.kernel_panic.fixed_from",
                                   "\"1.5.x\" is not a version"));
}

TEST(RulesLoaderTest, FixedFromIsOptional) {
  StatusOr<RuleTable> table = LoadRules(EditedRules("    fixed_from: 1.5.10\n", ""), kSource);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_FALSE(table->kernel_panic.fixed_from.has_value());
  EXPECT_EQ(table->kernel_panic.affected.ToString(), "<=1.5.7");
}

TEST(RulesLoaderTest, BadNotSupportedSeriesNumber) {
  const std::string text = EditedRules("        not_supported: [535, 550, 560, 565, 570, 575]",
                                       "        not_supported: [535x, 550, 560, 565, 570, 575]");
  EXPECT_EQ(ErrorOf(text), Located(LineOf(text, "535x"), "rules.driver.rows[1].not_supported[0]",
                                   "\"535x\" is not a whole number from 1 to 100000"));
}

TEST(RulesLoaderTest, LoadRulesFileReadsAFileAndNamesItsPath) {
  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/cgpu-guard-rules-good.yaml";
  const std::string bad = dir + "/cgpu-guard-rules-bad.yaml";
  std::ofstream(good) << EditedRules("  max: 20", "  max: 7");
  std::ofstream(bad) << EditedRules("  max: 20", "  max: seven");
  StatusOr<RuleTable> table = LoadRulesFile(good);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(table->max_pods_per_gpu, 7);
  table = LoadRulesFile(bad);
  std::remove(good.c_str());
  std::remove(bad.c_str());
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(
      table.status().message().rfind(
          bad + ":" + std::to_string(LineOf(RulesFileText(), "  max: 20")) + ": pods_per_gpu.max: ",
          0),
      0u)
      << table.status().message();
}

TEST(RulesLoaderTest, LoadRulesFileOnAMissingPath) {
  StatusOr<RuleTable> table = LoadRulesFile("/nonexistent/cgpu-rules.yaml");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(table.status().message(), "cannot read rules file /nonexistent/cgpu-rules.yaml");
}

}  // namespace
}  // namespace cgpu
