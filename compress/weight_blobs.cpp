#include "compress/weight_blobs.hpp"

#include "runtime/layer.hpp"

namespace dsg::compress {

WeightBlobMap weight_blob_map(const NetParameter& net) {
  WeightBlobMap out;
  for (const LayerParameter& param : net.layer()) {
    const std::vector<int> blobs = create_layer(param)->weight_blobs();
    if (!blobs.empty()) out[param.name()] = blobs;
  }
  return out;
}

CompressResult compress_model(const ModelFile& model, const CompressOptions& options) {
  return compress_model(model, weight_blob_map(model.net()), options);
}

}  // namespace dsg::compress
