#include "runtime/config.hpp"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"

namespace dsg {
namespace fs = std::filesystem;
using google::protobuf::TextFormat;

namespace {

std::vector<ConfigCheck>& config_checks() {
  static std::vector<ConfigCheck> checks;
  return checks;
}

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectErrors(std::string file) : file_(std::move(file)) {}
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = strfmt("%s:%d:%d: %s", file_.c_str(), line + 1, column + 1, message.c_str());
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string file_;
  std::string first_;
};

std::string location(const std::string& file, const TextFormat::ParseLocation& loc) {
  if (loc.line < 0) return file;
  return strfmt("%s:%d:%d", file.c_str(), loc.line + 1, loc.column + 1);
}

// The location of field `name` of the message described by `tree` (or of the file if absent).
std::string field_location(const std::string& file, const TextFormat::ParseInfoTree* tree,
                           const google::protobuf::Descriptor* desc, const char* name, int index = -1) {
  if (!tree) return file;
  const auto* field = desc->FindFieldByName(name);
  if (!field) return file;
  return location(file, tree->GetLocation(field, index));
}

void fill_net_locations(const std::string& file, const TextFormat::ParseInfoTree* net_tree, const NetParameter& net,
                        ConfigLocations* out) {
  if (!out) return;
  out->layer.clear();
  out->layer_type.clear();
  const auto* layer_field = NetParameter::descriptor()->FindFieldByName("layer");
  for (int i = 0; i < net.layer_size(); ++i) {
    if (!net_tree) {
      out->layer.push_back(file);
      out->layer_type.push_back(file);
      continue;
    }
    out->layer.push_back(location(file, net_tree->GetLocation(layer_field, i)));
    const auto* sub = net_tree->GetTreeForNested(layer_field, i);
    out->layer_type.push_back(field_location(file, sub, LayerParameter::descriptor(), "type"));
  }
}

void validate_net(const NetParameter& net, const ConfigLocations& loc) {
  for (int i = 0; i < net.layer_size(); ++i) {
    const auto& layer = net.layer(i);
    std::string where = i < int(loc.layer.size()) ? loc.layer[i] : std::string("net");
    if (layer.name().empty()) throw Error(where + ": layer has no name");
    if (!layer.has_type()) throw Error(where + ": layer '" + layer.name() + "' has no type");
    if (!layer_registry().has(layer.type())) {
      std::string at = i < int(loc.layer_type.size()) ? loc.layer_type[i] : where;
      throw Error(at + ": unknown layer type '" + layer.type() + "' (layer '" + layer.name() +
                  "'); known: " + layer_registry().known_list());
    }
  }
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open config file '" + path + "'", "check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

static void parse_with_tree(const std::string& text, const std::string& file_label, google::protobuf::Message* out,
                            TextFormat::ParseInfoTree* tree) {
  TextFormat::Parser parser;
  CollectErrors errors(file_label);
  parser.RecordErrorsTo(&errors);
  if (tree) parser.WriteLocationsTo(tree);
  if (!parser.ParseFromString(text, out)) {
    throw Error(errors.first().empty() ? file_label + ": cannot parse" : errors.first());
  }
}

void parse_text_proto(const std::string& text, const std::string& file_label, google::protobuf::Message* out) {
  parse_with_tree(text, file_label, out, nullptr);
}

NetParameter load_net_config(const std::string& path, ConfigLocations* locations) {
  NetParameter net;
  TextFormat::ParseInfoTree tree;
  parse_with_tree(read_text_file(path), path, &net, &tree);
  ConfigLocations loc;
  fill_net_locations(path, &tree, net, &loc);
  validate_net(net, loc);
  if (locations) *locations = loc;
  return net;
}

LoadedConfig load_solver_config(const std::string& path) {
  LoadedConfig out;
  out.solver_path = path;
  out.config_dir = fs::path(path).parent_path().string();
  if (out.config_dir.empty()) out.config_dir = ".";
  std::string text = read_text_file(path);
  TextFormat::ParseInfoTree tree;
  SolverParameter& s = out.solver;
  try {
    parse_with_tree(text, path, &s, &tree);
  } catch (const Error& e) {
    // A net definition passed where a solver is expected: say so instead of "unknown field layer".
    NetParameter probe;
    TextFormat::Parser quiet;
    CollectErrors ignore(path);
    quiet.RecordErrorsTo(&ignore);
    if (quiet.ParseFromString(text, &probe) && probe.layer_size() > 0)
      throw Error(path + ": this is a net definition; dsgtrain needs a solver config",
                  "write a solver file with `net: \"" + fs::path(path).filename().string() +
                      "\"` or an embedded net_param { ... }");
    throw;
  }
  const auto* D = SolverParameter::descriptor();
  auto at = [&](const char* field) { return field_location(path, &tree, D, field); };

  // Net source: exactly one of net / net_param / train_net / train_net_param.
  int sources = s.has_net() + s.has_net_param() + s.has_train_net() + s.has_train_net_param();
  if (sources == 0) throw Error(path + ": solver names no net", "add `net: \"file.prototxt\"` or `net_param { ... }`");
  if (sources > 1) throw Error(path + ": solver gives more than one net (net, net_param, train_net, train_net_param)");
  if (s.test_net_size() || s.test_net_param_size())
    throw Error(at(s.test_net_size() ? "test_net" : "test_net_param") +
                ": separate test nets are not supported; use one net with include { phase: TEST } layers");
  if (s.has_net() || s.has_train_net()) {
    std::string rel = s.has_net() ? s.net() : s.train_net();
    fs::path p = fs::path(rel).is_absolute() ? fs::path(rel) : fs::path(out.config_dir) / rel;
    if (!fs::exists(p)) throw Error(at(s.has_net() ? "net" : "train_net") + ": net file '" + p.string() + "' not found");
    *s.mutable_net_param() = load_net_config(p.string(), &out.net_locations);
    s.clear_net();
    s.clear_train_net();
  } else {
    const char* field = s.has_net_param() ? "net_param" : "train_net_param";
    if (s.has_train_net_param()) {
      *s.mutable_net_param() = s.train_net_param();
      s.clear_train_net_param();
    }
    const auto* sub = tree.GetTreeForNested(D->FindFieldByName(field), -1);
    fill_net_locations(path, sub, s.net_param(), &out.net_locations);
    validate_net(s.net_param(), out.net_locations);
  }

  // Values.
  if (!s.has_base_lr()) throw Error(path + ": base_lr is required");
  if (!(s.base_lr() > 0) || !std::isfinite(s.base_lr()))
    throw Error(at("base_lr") + strfmt(": base_lr must be a positive number, got %g", s.base_lr()));
  if (s.max_iter() < 0) throw Error(at("max_iter") + strfmt(": max_iter must be >= 0, got %d", s.max_iter()));
  if (s.momentum() < 0 || s.momentum() >= 1)
    throw Error(at("momentum") + strfmt(": momentum must be in [0, 1), got %g", s.momentum()));
  if (s.weight_decay() < 0) throw Error(at("weight_decay") + strfmt(": weight_decay must be >= 0, got %g", s.weight_decay()));
  if (s.iter_size() < 1) throw Error(at("iter_size") + strfmt(": iter_size must be >= 1, got %d", s.iter_size()));
  if (s.test_interval() < 0) throw Error(at("test_interval") + ": test_interval must be >= 0");
  if (s.test_interval() > 0 && s.test_iter_size() == 0)
    throw Error(at("test_interval") + ": test_interval is set but test_iter is not");
  for (int i = 0; i < s.test_iter_size(); ++i)
    if (s.test_iter(i) <= 0) throw Error(field_location(path, &tree, D, "test_iter", i) + ": test_iter must be > 0");
  if (s.snapshot() < 0) throw Error(at("snapshot") + ": snapshot must be >= 0");
  if (s.display() < 0) throw Error(at("display") + ": display must be >= 0");
  if (s.regularization_type() != "L2" && s.regularization_type() != "L1")
    throw Error(at("regularization_type") + ": regularization_type must be \"L1\" or \"L2\", got \"" +
                s.regularization_type() + "\"");
  static const char* policies[] = {"fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid", "cosine"};
  std::string policy = s.has_lr_policy() ? s.lr_policy() : "fixed";
  bool known = false;
  for (const char* p : policies) known = known || policy == p;
  if (!known)
    throw Error(at("lr_policy") + ": unknown lr_policy \"" + policy +
                "\"; known: fixed, step, exp, inv, multistep, poly, sigmoid, cosine");
  if ((policy == "step" || policy == "sigmoid") && s.stepsize() <= 0)
    throw Error(at("lr_policy") + ": lr_policy \"" + policy + "\" needs stepsize > 0");
  if (policy == "multistep" && s.stepvalue_size() == 0)
    throw Error(at("lr_policy") + ": lr_policy \"multistep\" needs stepvalue entries");
  if ((policy == "step" || policy == "exp" || policy == "inv" || policy == "multistep") && !s.has_gamma())
    throw Error(at("lr_policy") + ": lr_policy \"" + policy + "\" needs gamma");
  if ((policy == "inv" || policy == "poly") && !s.has_power())
    throw Error(at("lr_policy") + ": lr_policy \"" + policy + "\" needs power");
  if (s.type() != "SGD" && s.type() != "Nesterov" && s.type() != "Adam")
    throw Error(at("type") + ": unknown solver type \"" + s.type() + "\"; known: Adam, Nesterov, SGD");
  for (const ConfigCheck& check : config_checks()) check(s, out.net_locations);
  return out;
}

void register_config_check(ConfigCheck check) { config_checks().push_back(std::move(check)); }

}  // namespace dsg
