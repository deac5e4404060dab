// Loading prototxt configs strictly: syntax errors, unknown fields and bad values are reported
// as "file:line:col: message" (1-based line and column).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "dsg.pb.h"

namespace dsg {

// Where things are in the config files, for error messages about values found after parsing.
struct ConfigLocations {
  // "file:line:col" of each layer block of the net, in NetParameter order (empty strings when
  // unknown, e.g. for nets built in code).
  std::vector<std::string> layer;
  // "file:line:col" of each layer's `type` field.
  std::vector<std::string> layer_type;
};

struct LoadedConfig {
  SolverParameter solver;      // with net_param filled in (the net file is inlined)
  std::string solver_path;
  std::string config_dir;      // directory of the solver file; relative paths resolve against it
  ConfigLocations net_locations;
};

// Reads a solver prototxt (with `net:` or an embedded `net_param`), validates its values and
// returns it with the net inlined into net_param. Throws dsg::Error with file:line:col.
LoadedConfig load_solver_config(const std::string& path);

// A check a plug-in adds to load_solver_config (the sparsity library checks that every
// sparsity_param names a known policy): called with the loaded solver (net inlined) and the
// locations of its layers; throws dsg::Error starting with "file:line:col". Register from a static
// object in the plug-in's library (the libraries are linked whole, so registrars run).
using ConfigCheck = std::function<void(const SolverParameter& solver, const ConfigLocations& net_locations)>;
void register_config_check(ConfigCheck check);

// Parses a NetParameter prototxt; fills `locations` when given.
NetParameter load_net_config(const std::string& path, ConfigLocations* locations = nullptr);

// Parses text as message `out`; errors name `file_label` with line and column.
void parse_text_proto(const std::string& text, const std::string& file_label, google::protobuf::Message* out);

std::string read_text_file(const std::string& path);

}  // namespace dsg
