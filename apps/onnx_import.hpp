// Pretrained weights from an ONNX model (dsgtrain --weights): the graph's initializers mapped to
// DSG layers by name, as DSG's exporter (apps/onnx_export.hpp) names them, so that an exported
// model re-imports exactly:
//   LAYER/weight, LAYER/bias   blobs 0 and 1 (InnerProduct, Convolution)
//   LAYER/scale, LAYER/bias    blobs 0 and 1 of a Scale layer
//   LAYER/mean, LAYER/var      a BatchNorm's statistics: blobs 0 and 1, blob 2 (the moving-average
//                              factor) = 1; the unit LAYER/scale and zero LAYER/bias the exporter
//                              adds to a BatchNorm without a Scale are not blobs and are ignored
//   LAYER/P/codebook + LAYER/P/indices   shared weights (Gather): decoded to codebook[indices]
// A "_N" suffix the exporter adds to keep names unique is dropped. Other initializers (Reshape
// shapes, ...) are ignored. Built only with the ONNX library (DSG_WITH_ONNX).
#pragma once
#include <string>

#include "runtime/pretrained.hpp"

namespace dsg {

// A compress::PretrainedReader: false when `bytes` is not an ONNX ModelProto with a graph; throws
// dsg::Error naming `path` when it is one but an initializer cannot be decoded or none maps to a layer.
bool read_onnx_weights(const std::string& bytes, const std::string& path, PretrainedWeights* out);

}  // namespace dsg
