#include "adapters/rules_loader.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace cgpu {
namespace {

// Thrown inside this file only, caught in LoadRules: parsing a tree is far clearer with one
// exit for all errors. Never crosses the public interface.
struct RulesError {
  std::string message;
};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& path,
                         const std::string& what) const {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    throw RulesError{source_ + (line > 0 ? ":" + std::to_string(line) : "") + ": " + path + ": " +
                     what};
  }

  YAML::Node Map(const YAML::Node& parent, const std::string& path,
                 const std::set<std::string>& allowed) const {
    if (!parent.IsMap()) Fail(parent, path, "expected a mapping");
    std::set<std::string> seen;
    for (const auto& entry : parent) {
      const std::string key = entry.first.as<std::string>();
      if (!allowed.count(key)) {
        std::string known;
        for (const auto& name : allowed) known += (known.empty() ? "" : ", ") + name;
        Fail(entry.first, path + "." + key, "unknown key (expected one of: " + known + ")");
      }
      // yaml-cpp keeps the first of two equal keys and drops the second without a word.
      if (!seen.insert(key).second) Fail(entry.first, path + "." + key, "is given twice");
    }
    return parent;
  }

  YAML::Node Required(const YAML::Node& parent, const std::string& key,
                      const std::string& path) const {
    YAML::Node child = parent[key];
    if (!child.IsDefined() || child.IsNull()) Fail(parent, path + "." + key, "is required");
    return child;
  }

  std::string Scalar(const YAML::Node& node, const std::string& path) const {
    if (!node.IsScalar()) Fail(node, path, "expected a single value");
    std::string value = node.Scalar();
    if (value.empty()) Fail(node, path, "must not be empty");
    return value;
  }

  std::string Text(const YAML::Node& parent, const std::string& key,
                   const std::string& path) const {
    return Scalar(Required(parent, key, path), path + "." + key);
  }

  int Integer(const YAML::Node& node, const std::string& path, int min, int max) const {
    const std::string text = Scalar(node, path);
    try {
      size_t used = 0;
      const int value = std::stoi(text, &used);
      if (used == text.size() && value >= min && value <= max) return value;
    } catch (const std::exception&) {
    }
    Fail(node, path,
         "\"" + text + "\" is not a whole number from " + std::to_string(min) + " to " +
             std::to_string(max));
  }

  Version AVersion(const YAML::Node& node, const std::string& path) const {
    const std::string text = Scalar(node, path);
    std::optional<Version> version = Version::Parse(text);
    if (!version) Fail(node, path, "\"" + text + "\" is not a version");
    return *version;
  }

  VersionRange Range(const YAML::Node& node, const std::string& path) const {
    const std::string text = Scalar(node, path);
    std::optional<VersionRange> range = VersionRange::Parse(text);
    if (!range) {
      Fail(
          node, path,
          "\"" + text + "\" is not a version range (forms: 1.5.3 - 1.5.20, <= 1.10, >= 1.5.10, 5)");
    }
    return *range;
  }

  std::vector<YAML::Node> List(const YAML::Node& parent, const std::string& key,
                               const std::string& path, bool required) const {
    YAML::Node node = parent[key];
    if (!node.IsDefined() || node.IsNull()) {
      if (required) Fail(parent, path + "." + key, "is required");
      return {};
    }
    if (!node.IsSequence()) Fail(node, path + "." + key, "expected a list");
    return std::vector<YAML::Node>(node.begin(), node.end());
  }

  // "470" or "470 <= 470.161.03": a driver series, as a family of versions.
  VersionSet Series(const YAML::Node& node, const std::string& path) const {
    const std::string text = Scalar(node, path);
    const size_t bound = text.find("<=");
    const std::string series_text = text.substr(0, text.find_first_of(" <"));
    std::optional<Version> series = Version::Parse(series_text);
    // Anything after the series but "<= bound" ("470 foo", "470 < 470.1") is an error, not an
    // unbounded series.
    const size_t after = text.find_first_not_of(' ', series_text.size());
    if (!series || series->components().size() != 1 || series->major() <= 0 ||
        (after != std::string::npos && after != bound)) {
      Fail(node, path, "\"" + text + "\" is not a driver series (forms: 470, 470 <= 470.161.03)");
    }
    if (bound == std::string::npos) return VersionSet::Family(*series);
    std::optional<Version> max = Version::Parse(text.substr(bound + 2));
    if (!max || max->major() != series->major()) {
      Fail(node, path,
           "\"" + text + "\": the bound must be a version of the " + series_text + " series");
    }
    return VersionSet::Family(*series, max);
  }

  // A cell of the toolkit or kernel table: "5.x", "5.x <= 5.15", "<= 1.10", "1.11 - 1.17".
  VersionSet Set(const YAML::Node& node, const std::string& path) const {
    const std::string text = Scalar(node, path);
    std::optional<VersionSet> set = VersionSet::Parse(text);
    if (!set) {
      Fail(node, path,
           "\"" + text +
               "\" is not a version set (forms: 5.x, 5.x <= 5.15, <= 1.10, 1.11 - 1.17, >= 1.11; "
               "a bound lies inside its family)");
    }
    return *set;
  }

  RuleText Texts(const YAML::Node& rule, const std::string& path) const {
    return RuleText{Text(rule, "symptom", path), Text(rule, "remedy", path)};
  }

 private:
  std::string source_;
};

std::string Indexed(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// Rows of one table may not claim the same cGPU version twice.
template <typename Row>
void CheckNoOverlap(const Reader& reader, const std::vector<Row>& rows,
                    const std::vector<YAML::Node>& nodes, const std::string& path) {
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const VersionRange& a = rows[i].cgpu;
      const VersionRange& b = rows[j].cgpu;
      const bool disjoint = (a.high && b.low && a.high->ComparePrefix(*b.low) < 0 &&
                             b.low->ComparePrefix(*a.high) > 0) ||
                            (b.high && a.low && b.high->ComparePrefix(*a.low) < 0 &&
                             a.low->ComparePrefix(*b.high) > 0);
      if (!disjoint) {
        reader.Fail(
            nodes[i], Indexed(path, i) + ".cgpu",
            a.ToString() + " overlaps row " + std::to_string(j) + " (" + b.ToString() + ")");
      }
    }
  }
}

std::vector<VersionSetRow> DriverRows(const Reader& r, const YAML::Node& rule,
                                      const std::string& path) {
  std::vector<VersionSetRow> rows;
  const auto nodes = r.List(rule, "rows", path, true);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string row_path = Indexed(path + ".rows", i);
    r.Map(nodes[i], row_path, {"cgpu", "supported", "not_supported"});
    VersionSetRow row;
    row.cgpu = r.Range(r.Required(nodes[i], "cgpu", row_path), row_path + ".cgpu");
    const auto supported = r.List(nodes[i], "supported", row_path, true);
    for (size_t k = 0; k < supported.size(); ++k) {
      row.supported.push_back(r.Series(supported[k], Indexed(row_path + ".supported", k)));
    }
    const auto excluded = r.List(nodes[i], "not_supported", row_path, false);
    for (size_t k = 0; k < excluded.size(); ++k) {
      const int series = r.Integer(excluded[k], Indexed(row_path + ".not_supported", k), 1, 100000);
      row.not_supported.push_back(VersionSet::Family(Version({series})));
    }
    rows.push_back(std::move(row));
  }
  CheckNoOverlap(r, rows, nodes, path + ".rows");
  return rows;
}

std::vector<InstanceFamilyRow> FamilyRows(const Reader& r, const YAML::Node& rule,
                                          const std::string& path) {
  std::vector<InstanceFamilyRow> rows;
  const auto nodes = r.List(rule, "rows", path, true);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string row_path = Indexed(path + ".rows", i);
    r.Map(nodes[i], row_path, {"cgpu", "supported", "not_supported"});
    InstanceFamilyRow row;
    row.cgpu = r.Range(r.Required(nodes[i], "cgpu", row_path), row_path + ".cgpu");
    for (const char* key : {"supported", "not_supported"}) {
      auto& target = std::string(key) == "supported" ? row.supported : row.not_supported;
      const auto families = r.List(nodes[i], key, row_path, std::string(key) == "supported");
      for (size_t k = 0; k < families.size(); ++k) {
        target.push_back(r.Scalar(families[k], Indexed(row_path + "." + key, k)));
      }
    }
    rows.push_back(std::move(row));
  }
  CheckNoOverlap(r, rows, nodes, path + ".rows");
  return rows;
}

std::vector<VersionSetRow> VersionSetRows(const Reader& r, const YAML::Node& rule,
                                          const std::string& path) {
  std::vector<VersionSetRow> rows;
  const auto nodes = r.List(rule, "rows", path, true);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string row_path = Indexed(path + ".rows", i);
    r.Map(nodes[i], row_path, {"cgpu", "supported", "not_supported"});
    VersionSetRow row;
    row.cgpu = r.Range(r.Required(nodes[i], "cgpu", row_path), row_path + ".cgpu");
    for (const char* key : {"supported", "not_supported"}) {
      auto& target = std::string(key) == "supported" ? row.supported : row.not_supported;
      const auto cells = r.List(nodes[i], key, row_path, std::string(key) == "supported");
      for (size_t k = 0; k < cells.size(); ++k) {
        target.push_back(r.Set(cells[k], Indexed(row_path + "." + key, k)));
      }
    }
    rows.push_back(std::move(row));
  }
  CheckNoOverlap(r, rows, nodes, path + ".rows");
  return rows;
}

// `affected`, and the fix the source names, if it names one: `fixed_from` lies past `affected`.
KnownIssue Issue(const Reader& r, const YAML::Node& rule, const std::string& path) {
  KnownIssue issue;
  issue.affected = r.Range(r.Required(rule, "affected", path), path + ".affected");
  const YAML::Node fixed = rule["fixed_from"];
  if (fixed.IsDefined() && !fixed.IsNull()) {
    issue.fixed_from = r.AVersion(fixed, path + ".fixed_from");
    if (!issue.affected.high || !issue.affected.IsAbove(*issue.fixed_from)) {
      r.Fail(fixed, path + ".fixed_from",
             issue.fixed_from->ToString() + " is not past the affected versions (" +
                 issue.affected.ToString() + ")");
    }
  }
  return issue;
}

LabelMatch Label(const Reader& r, const YAML::Node& node, const std::string& path) {
  r.Map(node, path, {"key", "value"});
  return LabelMatch{r.Text(node, "key", path), r.Text(node, "value", path)};
}

RuleTable Parse(const Reader& r, const YAML::Node& root) {
  RuleTable table;
  r.Map(root, "(top)",
        {"schema", "pods_per_gpu", "cgpu_enabled_labels", "isolation_disabled_label", "rules"});
  const std::string schema = r.Text(root, "schema", "(top)");
  if (schema != "cgpu-guard/rules/v1") {
    r.Fail(root["schema"], "schema",
           "\"" + schema + "\" is not supported (expected cgpu-guard/rules/v1)");
  }

  const YAML::Node pods = r.Map(r.Required(root, "pods_per_gpu", "(top)"), "pods_per_gpu",
                                {"max", "symptom", "remedy"});
  table.max_pods_per_gpu =
      r.Integer(r.Required(pods, "max", "pods_per_gpu"), "pods_per_gpu.max", 1, 1000);
  table.texts["pods-per-gpu"] = r.Texts(pods, "pods_per_gpu");

  const auto labels = r.List(root, "cgpu_enabled_labels", "(top)", true);
  for (size_t i = 0; i < labels.size(); ++i) {
    table.cgpu_enabled_labels.push_back(Label(r, labels[i], Indexed("cgpu_enabled_labels", i)));
  }
  table.isolation_disabled_label =
      Label(r, r.Required(root, "isolation_disabled_label", "(top)"), "isolation_disabled_label");

  const YAML::Node rules = r.Map(r.Required(root, "rules", "(top)"), "rules",
                                 {"driver", "instance_family", "container_toolkit", "kernel",
                                  "kernel_panic", "container_os", "nvml"});
  const std::set<std::string> table_keys = {"symptom", "remedy", "rows"};

  const YAML::Node driver = r.Map(r.Required(rules, "driver", "rules"), "rules.driver", table_keys);
  table.texts["driver"] = r.Texts(driver, "rules.driver");
  table.driver = DriverRows(r, driver, "rules.driver");

  const YAML::Node family =
      r.Map(r.Required(rules, "instance_family", "rules"), "rules.instance_family", table_keys);
  table.texts["instance-family"] = r.Texts(family, "rules.instance_family");
  table.instance_family = FamilyRows(r, family, "rules.instance_family");

  const YAML::Node toolkit =
      r.Map(r.Required(rules, "container_toolkit", "rules"), "rules.container_toolkit", table_keys);
  table.texts["container-toolkit"] = r.Texts(toolkit, "rules.container_toolkit");
  table.container_toolkit = VersionSetRows(r, toolkit, "rules.container_toolkit");

  const YAML::Node kernel = r.Map(r.Required(rules, "kernel", "rules"), "rules.kernel", table_keys);
  table.texts["kernel"] = r.Texts(kernel, "rules.kernel");
  table.kernel = VersionSetRows(r, kernel, "rules.kernel");

  const YAML::Node panic = r.Map(r.Required(rules, "kernel_panic", "rules"), "rules.kernel_panic",
                                 {"symptom", "remedy", "affected", "fixed_from"});
  table.texts["kernel-panic"] = r.Texts(panic, "rules.kernel_panic");
  table.kernel_panic = Issue(r, panic, "rules.kernel_panic");

  const YAML::Node os = r.Map(r.Required(rules, "container_os", "rules"), "rules.container_os",
                              {"symptom", "remedy", "affected", "fixed_by_ai_installer"});
  table.texts["container-os"] = r.Texts(os, "rules.container_os");
  table.container_os.affected =
      r.Range(r.Required(os, "affected", "rules.container_os"), "rules.container_os.affected");
  table.container_os.fixed_by_ai_installer =
      r.AVersion(r.Required(os, "fixed_by_ai_installer", "rules.container_os"),
                 "rules.container_os.fixed_by_ai_installer");

  const YAML::Node nvml =
      r.Map(r.Required(rules, "nvml", "rules"), "rules.nvml",
            {"symptom", "remedy", "affected", "last_safe", "newer_series_from"});
  table.texts["nvml"] = r.Texts(nvml, "rules.nvml");
  table.nvml.affected = r.Range(r.Required(nvml, "affected", "rules.nvml"), "rules.nvml.affected");
  const auto safe = r.List(nvml, "last_safe", "rules.nvml", true);
  for (size_t i = 0; i < safe.size(); ++i) {
    table.nvml.last_safe.push_back(r.Series(safe[i], Indexed("rules.nvml.last_safe", i)));
  }
  table.nvml.newer_series_from = r.Integer(r.Required(nvml, "newer_series_from", "rules.nvml"),
                                           "rules.nvml.newer_series_from", 1, 100000);
  return table;
}

}  // namespace

StatusOr<RuleTable> LoadRules(std::string_view yaml_text, std::string_view source_name) {
  const std::string source(source_name);
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsDefined() || root.IsNull()) return InvalidArgument(source + ": the file is empty");
    return Parse(Reader(source), root);
  } catch (const RulesError& error) {
    return InvalidArgument(error.message);
  } catch (const YAML::Exception& error) {
    return InvalidArgument(source + ":" + std::to_string(error.mark.line + 1) +
                           ": not valid YAML: " + error.msg);
  }
}

StatusOr<RuleTable> LoadRulesFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read rules file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return LoadRules(text.str(), path);
}

}  // namespace cgpu
