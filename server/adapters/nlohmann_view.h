// NlohmannView: a JsonView (object_view_reader.h) on an nlohmann::json value, for the readers
// that still get their objects as nlohmann::json (informers, `check`, cluster-state files).
// Never throws. The viewed value must outlive the view.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

namespace cgpu {

class NlohmannView {
 public:
  NlohmannView() = default;
  explicit NlohmannView(const nlohmann::json& value) : value_(&value) {}

  bool exists() const { return value_ != nullptr; }
  bool is_null() const { return value_ != nullptr && value_->is_null(); }
  bool is_object() const { return value_ != nullptr && value_->is_object(); }

  std::string_view TypeName() const {
    if (value_ == nullptr) return {};
    return value_->is_number() ? std::string_view("number") : value_->type_name();
  }

  std::optional<bool> Bool() const {
    if (value_ == nullptr || !value_->is_boolean()) return std::nullopt;
    return value_->get<bool>();
  }

  NlohmannView Member(std::string_view key) const {
    if (!is_object()) return {};
    auto it = value_->find(key);
    return it == value_->end() ? NlohmannView() : NlohmannView(*it);
  }

  std::string_view String() const {
    if (value_ == nullptr || !value_->is_string()) return {};
    return value_->get_ref<const std::string&>();
  }

  template <typename F>
  void ForEachMember(F&& f) const {
    if (!is_object()) return;
    for (auto it = value_->begin(); it != value_->end(); ++it) {
      f(std::string_view(it.key()), NlohmannView(it.value()));
    }
  }

  template <typename F>
  void ForEachElement(F&& f) const {
    if (value_ == nullptr || !value_->is_array()) return;
    for (const nlohmann::json& element : *value_) f(NlohmannView(element));
  }

 private:
  const nlohmann::json* value_ = nullptr;
};

}  // namespace cgpu
