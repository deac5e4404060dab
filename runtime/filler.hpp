// Weight initialisation from a FillerParameter: constant, uniform, gaussian, xavier, msra
// (Caffe's semantics: fan_in = count / shape[0], fan_out = count / shape[1]).
#pragma once
#include <cstdint>
#include <random>

#include "dsg.pb.h"
#include "runtime/tensor.hpp"

namespace dsg {

// Fills `tensor` using `rng`; throws dsg::Error for an unknown filler type.
void fill(const FillerParameter& filler, Tensor& tensor, std::mt19937_64& rng);

// The filler types `fill` knows, for validation messages.
const char* known_fillers();

}  // namespace dsg
