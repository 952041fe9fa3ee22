// SimdjsonView: a JsonView (object_view_reader.h) on an element of a simdjson DOM document, so
// the one traversal from JSON to object views (ReadPodObject, ReadNodeObject, ...) reads simdjson
// documents exactly as it reads nlohmann::json values (nlohmann_view.h).
//
// A view is two words, cheap to copy, and valid only while its document is: until the
// dom::parser that produced it parses again or is destroyed. Strings it hands out point into the
// parser's buffers under the same rule. Member() gives the last occurrence of a repeated key (as
// nlohmann and Go do), at the cost of one pass over the object's keys. Error codes only: nothing
// here throws.
#pragma once

#include <simdjson.h>

#include <optional>
#include <string_view>

namespace cgpu {

class SimdjsonView {
 public:
  SimdjsonView() = default;
  explicit SimdjsonView(simdjson::dom::element element) : element_(element), exists_(true) {}

  bool exists() const { return exists_; }
  bool is_null() const { return exists_ && element_.is_null(); }
  bool is_object() const { return exists_ && element_.is_object(); }
  bool is_array() const { return exists_ && element_.is_array(); }

  std::string_view TypeName() const {
    if (!exists_) return {};
    switch (element_.type()) {
      case simdjson::dom::element_type::ARRAY:
        return "array";
      case simdjson::dom::element_type::OBJECT:
        return "object";
      case simdjson::dom::element_type::STRING:
        return "string";
      case simdjson::dom::element_type::BOOL:
        return "boolean";
      case simdjson::dom::element_type::NULL_VALUE:
        return "null";
      default:
        return "number";
    }
  }

  std::optional<bool> Bool() const {
    bool value = false;
    if (!exists_ || element_.get_bool().get(value) != simdjson::SUCCESS) return std::nullopt;
    return value;
  }

  // A number that is an integer fitting in 64 bits; nullopt for anything else (also 1.0).
  std::optional<int64_t> Int() const {
    int64_t value = 0;
    if (!exists_ || !element_.is_int64() || element_.get_int64().get(value) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    return value;
  }

  SimdjsonView Member(std::string_view key) const {
    SimdjsonView found;
    ForEachMember([&](std::string_view name, const SimdjsonView& value) {
      if (name == key) found = value;
    });
    return found;
  }

  std::string_view String() const {
    std::string_view text;
    if (!exists_ || element_.get_string().get(text) != simdjson::SUCCESS) return {};
    return text;
  }

  template <typename F>
  void ForEachMember(F&& f) const {
    simdjson::dom::object object;
    if (!exists_ || element_.get_object().get(object) != simdjson::SUCCESS) return;
    for (simdjson::dom::key_value_pair field : object) f(field.key, SimdjsonView(field.value));
  }

  template <typename F>
  void ForEachElement(F&& f) const {
    simdjson::dom::array array;
    if (!exists_ || element_.get_array().get(array) != simdjson::SUCCESS) return;
    for (simdjson::dom::element element : array) f(SimdjsonView(element));
  }

  // The value as compact JSON text (for error messages), "" when missing.
  std::string Json() const { return exists_ ? simdjson::minify(element_) : std::string(); }

 private:
  simdjson::dom::element element_;
  bool exists_ = false;
};

}  // namespace cgpu
