#include "shell/flags.h"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace cgpu {
namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, std::string_view name, bool is_short) {
  for (const FlagSpec& spec : specs) {
    if ((is_short ? spec.short_name : spec.name) == name && !name.empty()) return &spec;
  }
  return nullptr;
}

}  // namespace

StatusOr<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                                const std::vector<FlagSpec>& specs) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help_requested = true;
      continue;
    }
    if (arg == "-" || arg.size() < 2 || arg[0] != '-') {
      parsed.positional.emplace_back(arg);
      continue;
    }
    const bool is_short = arg[1] != '-';
    std::string_view body = arg.substr(is_short ? 1 : 2);
    std::string_view name = body;
    std::string_view value;
    bool has_inline_value = false;
    if (size_t eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_inline_value = true;
    }
    const FlagSpec* spec = FindSpec(specs, name, is_short);
    if (spec == nullptr) {
      return InvalidArgument("unknown flag " + std::string(arg) + " (see --help)");
    }
    const std::string shown = "--" + spec->name;
    if (spec->value_name.empty()) {
      if (has_inline_value) return InvalidArgument(shown + " takes no value");
    } else if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        return InvalidArgument(shown + " needs a value (" + spec->value_name + ")");
      }
      value = args[++i];
    }
    if (Status status = spec->set(value); !status.ok()) {
      return InvalidArgument(shown + ": " + status.message());
    }
  }
  return parsed;
}

std::string FlagUsage(std::string_view usage_line, const std::vector<FlagSpec>& specs) {
  std::vector<std::string> lefts;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    std::string left = spec.short_name.empty() ? "      " : "  -" + spec.short_name + ", ";
    left += "--" + spec.name;
    if (!spec.value_name.empty()) left += " " + spec.value_name;
    width = std::max(width, left.size());
    lefts.push_back(std::move(left));
  }
  std::ostringstream out;
  out << usage_line << "\n\nFlags:\n";
  for (size_t i = 0; i < specs.size(); ++i) {
    out << lefts[i] << std::string(width + 2 - lefts[i].size(), ' ') << specs[i].help;
    if (!specs[i].shown_default.empty()) out << " (default " << specs[i].shown_default << ")";
    out << "\n";
  }
  const std::string help = "  -h, --help";
  out << help << std::string(std::max(width, help.size()) + 2 - help.size(), ' ')
      << "show this help\n";
  return out.str();
}

StatusOr<long long> ParseInteger(std::string_view text, long long min, long long max) {
  long long value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return InvalidArgument("expected a whole number, got \"" + std::string(text) + "\"");
  }
  if (value < min || value > max) {
    return InvalidArgument("expected a number from " + std::to_string(min) + " to " +
                           std::to_string(max) + ", got " + std::string(text));
  }
  return value;
}

StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  static constexpr std::pair<std::string_view, long long> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"", 1000}};
  for (const auto& [suffix, scale] : kUnits) {
    if (text.size() < suffix.size() || text.substr(text.size() - suffix.size()) != suffix) continue;
    std::string_view number = text.substr(0, text.size() - suffix.size());
    if (number.empty() || number.find_first_not_of("0123456789") != std::string_view::npos) {
      continue;
    }
    StatusOr<long long> value = ParseInteger(number, 0, 1'000'000'000);
    if (value.ok()) return std::chrono::milliseconds(*value * scale);
  }
  return InvalidArgument("expected a duration such as 500ms, 10s or 5m, got \"" +
                         std::string(text) + "\"");
}

StatusOr<long long> ParseByteSize(std::string_view text) {
  static constexpr std::pair<std::string_view, long long> kUnits[] = {
      {"Ki", 1LL << 10}, {"Mi", 1LL << 20}, {"Gi", 1LL << 30}, {"", 1}};
  for (const auto& [suffix, scale] : kUnits) {
    if (text.size() <= suffix.size() || text.substr(text.size() - suffix.size()) != suffix)
      continue;
    StatusOr<long long> value =
        ParseInteger(text.substr(0, text.size() - suffix.size()), 1, (1LL << 40) / scale);
    if (value.ok()) return *value * scale;
  }
  return InvalidArgument("expected a size such as 3Mi, 512Ki or 1048576, got \"" +
                         std::string(text) + "\"");
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  static constexpr std::pair<std::string_view, long long> kUnits[] = {
      {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}};
  const long long ms = duration.count();
  for (const auto& [suffix, scale] : kUnits) {
    if (ms != 0 && ms % scale == 0) return std::to_string(ms / scale) + std::string(suffix);
  }
  return ms == 0 ? "0s" : std::to_string(ms) + "ms";
}

std::string FormatByteSize(long long bytes) {
  static constexpr std::pair<std::string_view, long long> kUnits[] = {
      {"Gi", 1LL << 30}, {"Mi", 1LL << 20}, {"Ki", 1LL << 10}};
  for (const auto& [suffix, scale] : kUnits) {
    if (bytes != 0 && bytes % scale == 0)
      return std::to_string(bytes / scale) + std::string(suffix);
  }
  return std::to_string(bytes);
}

FlagValue SetHostPort(HostPort& target) {
  return {[&target](std::string_view value) -> Status {
            StatusOr<HostPort> parsed = ParseHostPort(value);
            if (!parsed.ok()) return parsed.status();
            target = *parsed;
            return OkStatus();
          },
          ToString(target)};
}

FlagValue SetDuration(std::chrono::milliseconds& target) {
  return {[&target](std::string_view value) -> Status {
            StatusOr<std::chrono::milliseconds> parsed = ParseDuration(value);
            if (!parsed.ok()) return parsed.status();
            target = *parsed;
            return OkStatus();
          },
          FormatDuration(target)};
}

FlagValue SetInt(int& target, int min, int max) {
  return {[&target, min, max](std::string_view value) -> Status {
            StatusOr<long long> parsed = ParseInteger(value, min, max);
            if (!parsed.ok()) return parsed.status();
            target = static_cast<int>(*parsed);
            return OkStatus();
          },
          std::to_string(target)};
}

FlagValue SetLong(long& target, long min, long max) {
  return {[&target, min, max](std::string_view value) -> Status {
            StatusOr<long long> parsed = ParseInteger(value, min, max);
            if (!parsed.ok()) return parsed.status();
            target = static_cast<long>(*parsed);
            return OkStatus();
          },
          std::to_string(target)};
}

FlagValue SetByteSize(long long& target) {
  return {[&target](std::string_view value) -> Status {
            StatusOr<long long> parsed = ParseByteSize(value);
            if (!parsed.ok()) return parsed.status();
            target = *parsed;
            return OkStatus();
          },
          FormatByteSize(target)};
}

FlagValue SetString(std::string& target) {
  return {[&target](std::string_view value) -> Status {
            if (value.empty()) return InvalidArgument("must not be empty");
            target = std::string(value);
            return OkStatus();
          },
          target};
}

}  // namespace cgpu
