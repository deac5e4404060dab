// Pretrained weights (dsgtrain --weights, the solver's `weights:` field), Caffe's semantics
// (Net::CopyTrainedLayersFrom): the blobs of every file layer whose NAME matches a layer of the
// net are copied into it; file layers that the net lacks are skipped, net layers that the file
// lacks keep their initialisation, and both are reported. A different number of blobs or a blob
// of another shape is an error naming the layer and both shapes (rename the layer to learn it
// from scratch). Shapes that differ only by axes of size 1 (Caffe's legacy 4-d blobs, ONNX's
// broadcast shapes) are the same memory layout and are accepted.
//
// This file holds the format-independent part and the readers that need only the schema: a
// .dsgmodel's ModelFile and a Caffe .caffemodel (a binary NetParameter whose new-style `layer`
// entries carry `blobs`; V1 `layers` are refused with a hint). compress/pretrained_file.hpp reads
// any file (adding .dsgz), apps/onnx_import.hpp ONNX.
#pragma once
#include <string>
#include <vector>

#include "dsg.pb.h"

namespace dsg {

class Net;

// One layer's parameter blobs as a weights file stores them, in blob order.
struct PretrainedLayer {
  std::string name;
  std::vector<BlobProto> blobs;
};

struct PretrainedWeights {
  std::string path;
  std::string format;  // "dsgmodel", "dsgz", "caffemodel", "onnx"
  std::vector<PretrainedLayer> layers;
};

// What copy_pretrained did, by layer name (in net order / file order).
struct PretrainedReport {
  std::vector<std::string> copied;         // layers whose blobs were copied
  std::vector<std::string> not_in_net;     // file layers with blobs that the net does not have
  std::vector<std::string> not_in_file;    // net layers with blobs that the file does not have
  std::vector<std::string> lines() const;  // the report as log lines (used by log_pretrained_report)
};

// Copies `weights` into `net` by layer name (see the top of this file). Throws dsg::Error on a
// blob count or shape mismatch, before anything of that layer is written.
PretrainedReport copy_pretrained(Net& net, const PretrainedWeights& weights);
// Logs the report: one summary line, then the skipped layers of either kind.
void log_pretrained_report(const PretrainedWeights& weights, const PretrainedReport& report);

// The parameters of a ModelFile (.dsgmodel snapshot or decoded .dsgz) grouped by layer. Throws
// dsg::Error when a layer's blob indices have a gap.
PretrainedWeights pretrained_from_model(const ModelFile& model, const std::string& path, const std::string& format);
// Parses a Caffe .caffemodel image. Throws dsg::Error (naming `path`) when the bytes are not a
// NetParameter, hold V1 `layers`, or hold no layer with blobs.
PretrainedWeights parse_caffemodel(const std::string& bytes, const std::string& path);

}  // namespace dsg
