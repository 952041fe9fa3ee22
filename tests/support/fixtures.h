// Reading test fixtures from tests/fixtures/ (see tests/fixtures/SOURCES.md for their origin).
#pragma once

#include <string>

namespace cgpu::testing {

std::string ReadFixture(const std::string& relative_path);

}  // namespace cgpu::testing
