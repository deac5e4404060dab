#include "compress/pretrained_file.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

#include "compress/dsgz.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"

namespace dsg::compress {

PretrainedWeights read_pretrained_file(const std::string& path, const PretrainedReader& other) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open weights file '" + path + "'", "check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  if (bytes.empty()) throw Error("weights file '" + path + "' is empty");
  auto starts_with = [&](const char* magic, size_t n) {
    return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
  };
  if (starts_with("DSGMODEL", 8)) return pretrained_from_model(read_model_file(path), path, "dsgmodel");
  if (starts_with("DSGZ", 4)) return pretrained_from_model(decode_model(read_dsgz_file(path)), path, "dsgz");
  PretrainedWeights w;
  if (other && other(bytes, path, &w)) return w;
  return parse_caffemodel(bytes, path);
}

}  // namespace dsg::compress
