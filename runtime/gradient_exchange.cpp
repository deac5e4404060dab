#include "runtime/gradient_exchange.hpp"

#include "runtime/net.hpp"
#include "runtime/ops.hpp"

namespace dsg {

void DenseExchange::exchange(int, const Device& device) {
  const int64_t n = int64_t(net_.arena_size());
  if (n == 0 || comm_.size() == 1) return;
  float* diff = net_.arena_diff(device);
  comm_.allreduce_sum(diff, n, device);
  ops_for(device).scale(n, 1.0f / float(comm_.size()), diff);
}

uint64_t DenseExchange::dense_bytes() const { return uint64_t(net_.arena_size()) * sizeof(float); }

}  // namespace dsg
