// .dsgmodel files: a 24-byte header ("DSGMODEL", format version u32, payload size u64,
// CRC-32 of the payload u32, all little-endian) followed by a binary ModelFile protobuf.
// Writes go to a temporary file in the same directory, are flushed to disk, then renamed over the
// destination, so a crash mid-write never leaves a half-written model under the final name.
#pragma once
#include <string>

#include "dsg.pb.h"

namespace dsg {

constexpr uint32_t kModelFileVersion = 1;

// Writes atomically; throws dsg::Error on any I/O failure.
void write_model_file(const std::string& path, const ModelFile& model);
// Reads and verifies (magic, version, size, checksum, protobuf); throws dsg::Error naming the
// file and what is wrong for missing, truncated or corrupt files.
ModelFile read_model_file(const std::string& path);

// Records the top shapes of every data layer (BatchSource) of `net` in model.source_shape.
class Net;
void record_source_shapes(const Net& net, ModelFile* model);
// Returns `net` with every layer named in model.source_shape replaced by an Input layer of the
// recorded shapes (those measured in `phase`, else in the other phase), so that the net can be
// built without its dataset. Throws dsg::Error when a layer that produces data has no recorded
// shape (a snapshot written before shapes were recorded).
NetParameter with_recorded_sources(const NetParameter& net, const ModelFile& model, Phase phase);

// Writes `bytes` to `path` atomically (temp file + fsync + rename).
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace dsg
