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
  // Tests: run the layers' device code (forward_cuda / backward_cuda, written against DeviceOps and
  // runtime/launch.hpp bodies) on the host, with `device` the CPU. It checks the CUDA path's
  // orchestration and index arithmetic against the CPU path on every machine; a layer without
  // device code for a mode refuses, as it would on a GPU.
  bool device_code_on_host = false;
  // Debug: the Net checks the transfer counters (runtime/storage.hpp) around every layer's forward
  // and backward and throws dsg::Error naming the first layer during whose pass something was
  // copied between host and device (single values read back by reductions, scalar_reads, are
  // allowed: the displayed loss). Data layers, which load the batch, are exempt. dsgtrain
  // --check-transfers; the Solver also checks the update step.
  bool check_transfers = false;

  // Whether layers run their device code (a CUDA device, or device_code_on_host).
  bool runs_device_code() const { return device.type == DeviceType::CUDA || device_code_on_host; }
};

}  // namespace dsg
