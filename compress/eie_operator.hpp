// EIE-style inference straight from the compressed form of a weight blob (Han et al. 2016, ISCA):
// the kernel walks the relative-indexed entries (z, code) of a CODEBOOK / SPARSE_F32 blob, or the
// 2-bit codes of a TERNARY one, looks each code up in the layer's codebook and accumulates
//   C[row, :] += S[code] * B[col, :]
// for the non-zero weights only, skipping input rows of B that are entirely zero (EIE's dynamic
// activation sparsity). The dense weight matrix is never materialised. Differences from EIE's
// hardware: row-major (CSR-like) entry order as in Deep Compression's storage, one thread, no
// processing-element interleaving, float arithmetic.
#pragma once
#include <memory>

#include "compress/dsgz.hpp"
#include "runtime/weight_operator.hpp"

namespace dsg::compress {

// Throws dsg::Error for a RAW blob or a blob that is not at least 2-d.
std::shared_ptr<const WeightOperator> make_compressed_operator(const CompressedBlob& blob);

}  // namespace dsg::compress
