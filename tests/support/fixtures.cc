#include "support/fixtures.h"

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

}  // namespace cgpu::testing
