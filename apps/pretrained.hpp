// Pretrained weights for the tools (dsgtrain --weights, the solver's `weights:` field): reads any
// format DSG knows — .dsgmodel, .dsgz, Caffe .caffemodel (compress/pretrained_file.hpp) and, in
// builds with the ONNX library, ONNX (apps/onnx_import.hpp) — and copies it into a net by layer
// name with Caffe's semantics and report (runtime/pretrained.hpp).
#pragma once
#include <string>
#include <vector>

#include "compress/pretrained_file.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"
#include "runtime/pretrained.hpp"
#ifdef DSG_WITH_ONNX
#include "apps/onnx_import.hpp"
#endif

namespace dsg::apps {

// Reads one weights file, its format detected by content. Throws dsg::Error naming the file.
inline PretrainedWeights read_weights_file(const std::string& path) {
#ifdef DSG_WITH_ONNX
  return compress::read_pretrained_file(path, read_onnx_weights);
#else
  return compress::read_pretrained_file(path, [](const std::string& bytes, const std::string& p, PretrainedWeights*) {
    // An ONNX ModelProto starts with ir_version (field 1, varint); a NetParameter cannot.
    if (!bytes.empty() && bytes[0] == '\x08')
      throw Error("'" + p + "' looks like an ONNX model; this build has no ONNX support",
                  "install libonnx-dev and rebuild");
    return false;
  });
#endif
}

// Copies every file of `files` into `net`, in order (later files overwrite earlier ones' layers);
// each entry may be a comma-separated list, as in Caffe. Logs each file's report and returns them.
inline std::vector<PretrainedReport> load_pretrained(Net& net, const std::vector<std::string>& files) {
  std::vector<PretrainedReport> reports;
  for (const std::string& entry : files) {
    size_t start = 0;
    while (start <= entry.size()) {
      size_t comma = entry.find(',', start);
      if (comma == std::string::npos) comma = entry.size();
      const std::string path = entry.substr(start, comma - start);
      start = comma + 1;
      if (path.empty()) continue;
      const PretrainedWeights w = read_weights_file(path);
      reports.push_back(copy_pretrained(net, w));
      log_pretrained_report(w, reports.back());
    }
  }
  return reports;
}

}  // namespace dsg::apps
