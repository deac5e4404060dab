// Resolving the data_param paths of a net configuration before its Data layers are created.
#pragma once
#include <string>

#include "dsg.pb.h"

namespace dsg {

// For every layer of type "Data" in `net`:
//  * a relative data_param.source / label_source becomes absolute against `config_dir` (the
//    directory of the configuration file; empty = the current directory);
//  * when `data_override_dir` is non-empty (the --data option; relative to the current
//    directory) the directory part of each path is replaced by it, keeping the file name; for
//    CIFAR10/CIFAR100, whose source is a directory, the source becomes that directory itself, and
//    for TEXT the source becomes the --data path itself (a text file or a directory).
// Empty IDX paths stay empty (the layer reports them).
void resolve_data_sources(NetParameter& net, const std::string& config_dir, const std::string& data_override_dir);

}  // namespace dsg
