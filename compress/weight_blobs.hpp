// Which parameter blobs of a model the .dsgz codec stores as weights (sparse or quantized when
// that is smaller), decided by asking each layer (Layer::weight_blobs()) rather than by its type
// string, and compress_model() with that decision. Kept apart from compress/dsgz.cpp so that the
// .dsgz codec itself (and the fuzzer built from it) does not depend on the layer registry.
#pragma once
#include "compress/dsgz.hpp"
#include "dsg.pb.h"

namespace dsg::compress {

// Layer name -> its weight blobs (Layer::weight_blobs(); an LSTM: {0, 2}), for every layer of
// `net`. Each layer is created from its LayerParameter through the layer registry (not set up);
// an unknown layer type is a dsg::Error listing the known ones.
WeightBlobMap weight_blob_map(const NetParameter& net);

// compress_model(model, weight_blob_map(model.net()), options): every layer's weight blobs become
// SPARSE_F32 when that is smaller, k-means / TTQ layers' blob 0 CODEBOOK / TERNARY, the rest RAW.
CompressResult compress_model(const ModelFile& model, const CompressOptions& options = {});

}  // namespace dsg::compress
