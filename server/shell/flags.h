// A small command-line flag parser shared by the subcommands.
//
// Flags are `--name value` or `--name=value`; `-x value` works for flags given a short name.
// Each flag owns a setter that validates its value, so a bad value is reported as
// "--listen: expected HOST:PORT, got \"x\"" before anything starts. Not thread-safe; parse once.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "shell/host_port.h"  // SetHostPort

namespace cgpu {

struct FlagSpec {
  std::string name;        // without dashes: "listen"
  std::string short_name;  // optional, without dash: "f"
  std::string value_name;  // "HOST:PORT"; empty for a boolean switch that takes no value
  std::string help;        // one line, including the default
  std::function<Status(std::string_view value)> set;
};

struct ParsedArgs {
  bool help_requested = false;
  std::vector<std::string> positional;
};

StatusOr<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                                const std::vector<FlagSpec>& specs);

// "Usage: cgpu-guard <command> [flags]" followed by one aligned line per flag.
std::string FlagUsage(std::string_view usage_line, const std::vector<FlagSpec>& specs);

// "250ms", "10s", "5m", "1h"; a bare number is seconds.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);

StatusOr<long long> ParseInteger(std::string_view text, long long min, long long max);

// A flag taking a value, and setters for the common kinds of value (each checks it).
using FlagSetter = std::function<Status(std::string_view value)>;
inline FlagSpec Flag(std::string name, std::string value_name, std::string help, FlagSetter set) {
  return FlagSpec{std::move(name), "", std::move(value_name), std::move(help), std::move(set)};
}
FlagSetter SetHostPort(HostPort& target);
FlagSetter SetDuration(std::chrono::milliseconds& target);
FlagSetter SetInt(int& target, int min, int max);
FlagSetter SetString(std::string& target);  // refuses an empty value
FlagSetter SetByteSize(long long& target);  // ParseByteSize
FlagSetter SetLong(long& target, long min, long max);

// "3Mi", "512Ki", "1048576": a byte size.
StatusOr<long long> ParseByteSize(std::string_view text);

}  // namespace cgpu
