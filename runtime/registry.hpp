// String-keyed registries (layers, solvers, datasets, sparsity policies). Registering a name
// twice is an error; asking for an unknown name lists the known ones.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace dsg {

template <class Base, class... Args>
class Registry {
 public:
  using Creator = std::function<std::unique_ptr<Base>(Args...)>;

  // `kind` names what is registered, for messages ("layer type", "solver", ...).
  static Registry& instance(const char* kind) {
    static Registry registry(kind);
    return registry;
  }

  void add(const std::string& name, Creator creator) {
    if (creators_.count(name)) throw Error(kind_ + " '" + name + "' is registered twice");
    creators_[name] = std::move(creator);
  }

  bool has(const std::string& name) const { return creators_.count(name) != 0; }

  std::unique_ptr<Base> create(const std::string& name, Args... args) const {
    auto it = creators_.find(name);
    if (it == creators_.end())
      throw Error("unknown " + kind_ + " '" + name + "'; known: " + known_list());
    return it->second(std::forward<Args>(args)...);
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : creators_) out.push_back(kv.first);
    return out;
  }

  std::string known_list() const {
    std::string s;
    for (const auto& kv : creators_) s += (s.empty() ? "" : ", ") + kv.first;
    return s.empty() ? "(none)" : s;
  }

 private:
  explicit Registry(const char* kind) : kind_(kind) {}
  std::string kind_;
  std::map<std::string, Creator> creators_;
};

}  // namespace dsg
