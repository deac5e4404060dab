// IDX reader (MNIST / Fashion-MNIST): an images file (magic 0x00000803: unsigned bytes, 3 dims
// N, H, W) and a labels file (magic 0x00000801: unsigned bytes, 1 dim N), each raw or gzipped.
// All header fields are big-endian. Samples come out as {1, H, W}; num_classes = max label + 1.
#include <algorithm>
#include <filesystem>

#include "datasets/source.hpp"
#include "runtime/error.hpp"

namespace dsg {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

uint32_t read_be32(const std::vector<uint8_t>& b, size_t offset) {
  return (uint32_t(b[offset]) << 24) | (uint32_t(b[offset + 1]) << 16) | (uint32_t(b[offset + 2]) << 8) |
         uint32_t(b[offset + 3]);
}

std::string missing_hint(const std::string& path) {
  return "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or point --data at "
         "a directory holding " +
         std::filesystem::path(path).filename().string();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

// Labels file next to `images`: "images-idx3" -> "labels-idx1" (and "images.idx3" ->
// "labels.idx1"), applied to the file name only.
std::string derive_label_path(const std::string& images) {
  std::filesystem::path p(images);
  std::string name = p.filename().string();
  const std::string original = name;
  replace_all(name, "images-idx3", "labels-idx1");
  replace_all(name, "images.idx3", "labels.idx1");
  if (name == original)
    throw Error("IDX: cannot derive the labels file from '" + images +
                    "' (its name contains neither 'images-idx3' nor 'images.idx3')",
                "set data_param.label_source to the labels file");
  return (p.parent_path() / name).string();
}

// Checks the magic and the size of a whole IDX file; returns the dims.
std::vector<uint32_t> parse_header(const std::vector<uint8_t>& bytes, const std::string& path, uint32_t magic,
                                   const char* what) {
  const int ndims = int(magic & 0xff);
  const size_t header = 4 + 4 * size_t(ndims);
  if (bytes.size() < 4 || read_be32(bytes, 0) != magic) {
    std::string found = bytes.size() < 4 ? strfmt("a %zu-byte file", bytes.size())
                                         : strfmt("magic 0x%08x", read_be32(bytes, 0));
    throw Error(strfmt("'%s' is not an IDX %s file (expected magic 0x%08x, found %s)", path.c_str(), what, magic,
                       found.c_str()));
  }
  if (bytes.size() < header)
    throw Error(strfmt("IDX %s file '%s' is truncated: expected at least %zu header bytes, got %zu", what,
                       path.c_str(), header, bytes.size()));
  std::vector<uint32_t> dims(ndims);
  uint64_t expected = header, payload = 1;
  for (int d = 0; d < ndims; ++d) {
    dims[d] = read_be32(bytes, 4 + 4 * size_t(d));
    payload *= dims[d];
    if (payload > (uint64_t(1) << 40))
      throw Error("IDX " + std::string(what) + " file '" + path + "' has implausible dimensions");
  }
  expected += payload;
  if (bytes.size() != expected)
    throw Error(strfmt("IDX %s file '%s' is %s: expected %llu bytes, got %zu", what, path.c_str(),
                       bytes.size() < expected ? "truncated" : "too long", static_cast<unsigned long long>(expected),
                       bytes.size()));
  return dims;
}

std::unique_ptr<DataSource> create_idx(const DataParameter& param, const std::string& source, Phase) {
  const std::string images_path = source;
  const std::string labels_path = param.label_source().empty() ? derive_label_path(source) : param.label_source();

  std::vector<uint8_t> images = dataset_io::read_file(images_path, missing_hint(images_path));
  const std::vector<uint32_t> idims = parse_header(images, images_path, kImagesMagic, "images");
  std::vector<uint8_t> labels = dataset_io::read_file(labels_path, missing_hint(labels_path));
  const std::vector<uint32_t> ldims = parse_header(labels, labels_path, kLabelsMagic, "labels");

  const uint32_t n = idims[0], h = idims[1], w = idims[2];
  if (n == 0 || h == 0 || w == 0)
    throw Error(strfmt("IDX images file '%s' is empty (%u images of %ux%u)", images_path.c_str(), n, h, w));
  if (ldims[0] != n)
    throw Error(strfmt("IDX count mismatch: '%s' holds %u images but '%s' holds %u labels", images_path.c_str(), n,
                       labels_path.c_str(), ldims[0]));

  images.erase(images.begin(), images.begin() + 16);
  labels.erase(labels.begin(), labels.begin() + 8);
  const int num_classes = int(*std::max_element(labels.begin(), labels.end())) + 1;
  std::string description = strfmt("IDX %s (+ %s): %u images 1x%ux%u, %d classes", images_path.c_str(),
                                   std::filesystem::path(labels_path).filename().string().c_str(), n, h, w,
                                   num_classes);
  return std::make_unique<InMemoryDataSource>(std::vector<int>{1, int(h), int(w)}, std::move(images),
                                              std::move(labels), num_classes, std::move(description));
}

}  // namespace

DSG_REGISTER_DATASET("IDX", idx, create_idx);

}  // namespace dsg
