#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cgpu::testing {

std::string ReadFixture(const std::string& relative_path) {
  const std::string path = std::string(CGPU_TEST_FIXTURES) + "/" + relative_path;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

const std::string kRulesPath = std::string(CGPU_SOURCE_DIR) + "/rules/cgpu-rules.yaml";

std::string RulesFileText() {
  std::ifstream in(kRulesPath, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << "cannot read " << kRulesPath;
  return text.str();
}

std::string EditedRules(const std::string& from, const std::string& to) {
  std::string text = RulesFileText();
  const size_t at = text.find(from);
  if (at == std::string::npos || text.find(from, at + 1) != std::string::npos) {
    ADD_FAILURE() << "\"" << from << "\" does not occur exactly once in " << kRulesPath;
    return text;
  }
  return text.replace(at, from.size(), to);
}

int LineOf(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  if (at == std::string::npos) {
    ADD_FAILURE() << "\"" << needle << "\" not in the text";
    return -1;
  }
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
}

}  // namespace cgpu::testing
