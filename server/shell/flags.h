// A small command-line flag parser shared by the subcommands.
//
// Flags are `--name value` or `--name=value`; `-x value` works for flags given a short name.
// Each flag owns a setter that validates its value, so a bad value is reported as
// "--listen: expected HOST:PORT, got \"x\"" before anything starts. The setters for the common
// kinds of value also note the target's value when the spec is built, and the help shows it as
// the flag's default: build the specs over a default-constructed options struct, and the help can
// never disagree with the defaults the program runs with. Not thread-safe; parse once.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "shell/host_port.h"  // SetHostPort

namespace cgpu {

struct FlagSpec {
  std::string name;        // without dashes: "listen"
  std::string short_name;  // optional, without dash: "f"
  std::string value_name;  // "HOST:PORT"; empty for a boolean switch that takes no value
  std::string help;        // one line
  std::function<Status(std::string_view value)> set;
  // Shown after the help as "(default X)"; empty shows none (the help may word it itself).
  std::string shown_default = "";
};

struct ParsedArgs {
  bool help_requested = false;
  std::vector<std::string> positional;
};

StatusOr<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                                const std::vector<FlagSpec>& specs);

// "Usage: cgpu-guard <command> [flags]" followed by one aligned line per flag: its help, then its
// shown default.
std::string FlagUsage(std::string_view usage_line, const std::vector<FlagSpec>& specs);

// "250ms", "10s", "5m", "1h"; a bare number is seconds.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);

StatusOr<long long> ParseInteger(std::string_view text, long long min, long long max);

// A flag taking a value, and setters for the common kinds of value (each checks it).
using FlagSetter = std::function<Status(std::string_view value)>;

// A setter with the default the help shows for it: the target's value when the setter was made,
// in the form the flag takes ("10s", "3Mi", "0.0.0.0:8443").
struct FlagValue {
  FlagSetter set;
  std::string shown_default;
  // The same setter showing `text` as its default instead; "" shows none, for a default the help
  // words itself ("default: the rules'").
  FlagValue ShowingDefault(std::string text) && {
    shown_default = std::move(text);
    return std::move(*this);
  }
};

inline FlagSpec Flag(std::string name, std::string value_name, std::string help, FlagSetter set) {
  return FlagSpec{std::move(name), "", std::move(value_name), std::move(help), std::move(set)};
}
inline FlagSpec Flag(std::string name, std::string value_name, std::string help, FlagValue value) {
  return FlagSpec{std::move(name),       "",
                  std::move(value_name), std::move(help),
                  std::move(value.set),  std::move(value.shown_default)};
}
FlagValue SetHostPort(HostPort& target);
FlagValue SetDuration(std::chrono::milliseconds& target);
FlagValue SetInt(int& target, int min, int max);
FlagValue SetString(std::string& target);  // refuses an empty value; an empty target shows none
FlagValue SetByteSize(long long& target);  // ParseByteSize
FlagValue SetLong(long& target, long min, long max);

// One of a fixed set of words, e.g. --mode enforce|warn|dry-run; shows the word of the target's
// value.
template <typename T>
FlagValue SetChoice(T& target, std::vector<std::pair<std::string_view, T>> choices) {
  std::string shown;
  for (const auto& [word, choice] : choices) {
    if (choice == target) {
      shown = std::string(word);
      break;
    }
  }
  FlagSetter set = [&target, choices = std::move(choices)](std::string_view value) -> Status {
    std::string expected;
    for (const auto& [word, choice] : choices) {
      if (value == word) {
        target = choice;
        return OkStatus();
      }
      expected += (expected.empty() ? "" : ", ") + std::string(word);
    }
    return InvalidArgument("expected one of " + expected + ", got \"" + std::string(value) + "\"");
  };
  return FlagValue{std::move(set), std::move(shown)};
}

// The largest unit that divides it: "250ms", "10s", "5m", "1h"; what ParseDuration reads back.
std::string FormatDuration(std::chrono::milliseconds duration);

// The largest unit that divides it: "3Mi", "512Ki", "1000"; what ParseByteSize reads back.
std::string FormatByteSize(long long bytes);

// "3Mi", "512Ki", "1048576": a byte size.
StatusOr<long long> ParseByteSize(std::string_view text);

}  // namespace cgpu
