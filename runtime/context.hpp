// Per-call execution context handed to every layer: the device, the phase, and the keys of the
// counter-based random generator (seed, iteration) so that random patterns are reproducible and
// identical across devices.
#pragma once
#include <cstdint>

#include "dsg.pb.h"
#include "runtime/device.hpp"

namespace dsg {

struct Context {
  Device device = Device::cpu();
  Phase phase = TRAIN;
  uint64_t seed = 0;
  int64_t iteration = 0;
};

}  // namespace dsg
