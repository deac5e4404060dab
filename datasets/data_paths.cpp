#include "datasets/data_paths.hpp"

#include <filesystem>

namespace dsg {
namespace {

namespace fs = std::filesystem;

std::string absolute_against(const std::string& path, const std::string& base) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_relative()) p = (base.empty() ? fs::current_path() : fs::absolute(base)) / p;
  return p.lexically_normal().string();
}

// `dir` + the file name of `path`; a trailing separator in `path` is ignored.
std::string rebase(const std::string& path, const std::string& dir) {
  if (path.empty()) return path;
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return (fs::path(dir) / p.filename()).lexically_normal().string();
}

}  // namespace

void resolve_data_sources(NetParameter& net, const std::string& config_dir, const std::string& data_override_dir) {
  for (auto& layer : *net.mutable_layer()) {
    if (layer.type() != "Data" || !layer.has_data_param()) continue;
    DataParameter* dp = layer.mutable_data_param();
    const bool source_is_dir = dp->backend() == DataParameter::CIFAR10 || dp->backend() == DataParameter::CIFAR100 ||
                               dp->backend() == DataParameter::TEXT;
    if (!data_override_dir.empty()) {
      // --data is a command-line path: relative to the current directory, not to the config.
      fs::path d = fs::absolute(data_override_dir).lexically_normal();
      if (d.filename().empty()) d = d.parent_path();
      const std::string dir = d.string();
      if (source_is_dir) dp->set_source(dir);
      else if (!dp->source().empty()) dp->set_source(rebase(dp->source(), dir));
      if (!dp->label_source().empty()) dp->set_label_source(rebase(dp->label_source(), dir));
    }
    if (!dp->source().empty()) dp->set_source(absolute_against(dp->source(), config_dir));
    if (!dp->label_source().empty()) dp->set_label_source(absolute_against(dp->label_source(), config_dir));
  }
}

}  // namespace dsg
