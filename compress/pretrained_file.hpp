// Reads a pretrained-weights file of any format DSG knows, detected by content (not extension):
// a .dsgmodel snapshot ("DSGMODEL" magic), a .dsgz compressed model ("DSGZ" magic, decoded to
// dense weights), or else a Caffe .caffemodel (binary NetParameter). A caller in apps/ passes
// `other` to try a format this layer cannot read (ONNX, apps/onnx_import.hpp) before Caffe's.
// copy_pretrained (runtime/pretrained.hpp) then copies the result into a net by layer name.
#pragma once
#include <functional>
#include <string>

#include "runtime/pretrained.hpp"

namespace dsg::compress {

// Tries to read `bytes` (the file at `path`) in another format: returns false when they are not
// in that format, fills `out` when they are, throws dsg::Error when they are but are corrupt.
using PretrainedReader = std::function<bool(const std::string& bytes, const std::string& path, PretrainedWeights* out)>;

// Throws dsg::Error naming the file for a missing, unreadable, corrupt or unrecognised file.
PretrainedWeights read_pretrained_file(const std::string& path, const PretrainedReader& other = {});

}  // namespace dsg::compress
