// The element kernels of the CUDA DeviceOps (runtime/op_kernels.hpp) run on the host with
// launch_host, in small parallel chunks, against the CPU DeviceOps (the oracle) over the same
// inputs. This checks the GPU kernels' index arithmetic on every machine (odd sizes, strided
// leading dimensions, index lists with gaps, accumulate or not, ignored labels, every solver step).
// Tolerances: elementwise results are exact (compared with ==, so the sign of a zero is free);
// uniform is bit-identical; softmax goes through expf and may differ by a few ulps (host and device
// math libraries differ in the last bits, and this test must hold whichever expf the host has);
// column_sums is compared with the reduction tolerance (the CPU sums with a GEMV).
// Multiply-adds (axpy, relu, the solver steps) may be contracted into FMAs or not, and the
// compiler does not decide alike for the CPU ops' vectorised loops, their scalar tails and the
// bodies (nor does nvcc): those ops get dyadic inputs (few significant bits, coefficients like
// 0.875) whose products are exact, so that fused and unfused give the same bits and the
// comparison stays exact.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <limits>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <vector>

#include "runtime/launch.hpp"
#include "runtime/op_kernels.hpp"
#include "runtime/ops.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;

namespace {

const DeviceOps& ops = cpu_ops();

// Small chunks, so that the bodies run out of order and in parallel.
constexpr int64_t kGrain = 3;

template <class Body>
void run(int64_t n, const Body& body) {
  launch_host(n, body, kGrain);
}

// The distance in units in the last place between two finite floats (0 for +0 and -0).
int64_t ulps(float a, float b) {
  if (a == b) return 0;
  int32_t ia, ib;
  std::memcpy(&ia, &a, sizeof ia);
  std::memcpy(&ib, &b, sizeof ib);
  const int64_t la = ia < 0 ? -int64_t(ia & 0x7fffffff) : int64_t(ia);
  const int64_t lb = ib < 0 ? -int64_t(ib & 0x7fffffff) : int64_t(ib);
  return la > lb ? la - lb : lb - la;
}

// Every entry of got within max_ulps of want (exact for max_ulps == 0, NaN equal to NaN); the
// first mismatches are printed.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, int64_t max_ulps, const char* what) {
  REQUIRE(got.size() == want.size());
  int bad = 0;
  std::ostringstream first;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (both_nan || (!std::isnan(got[i]) && !std::isnan(want[i]) && ulps(got[i], want[i]) <= max_ulps)) continue;
    if (bad++ < 5) first << "  [" << i << "] body " << got[i] << " cpu " << want[i] << "\n";
  }
  INFO(what << ": " << bad << " of " << got.size() << " differ\n" << first.str());
  CHECK(bad == 0);
}

void expect_equal(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  expect_close(got, want, 0, what);
}

void expect_bits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  INFO(what);
  CHECK(std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) == 0);
}

// Values in [-1, 1) with some exact zeros (both signs) mixed in.
std::vector<float> values(size_t n, uint64_t seed) {
  std::vector<float> v = test::uniform_vector(n, seed);
  for (size_t i = 0; i < n; i += 7) v[i] = (i / 7) % 2 ? -0.0f : 0.0f;
  return v;
}

// Multiples of 1/256 in (-1, 1) (8 significant bits), zeros of both signs mixed in: products with
// dyadic coefficients, and the few steps of recurrences the tests run, stay exact in float.
std::vector<float> dyadic(size_t n, uint64_t seed) {
  std::vector<float> v = values(n, seed);
  for (float& x : v) x = std::round(x * 256.0f) / 256.0f;
  for (size_t i = 0; i < n; i += 7) v[i] = (i / 7) % 2 ? -0.0f : 0.0f;
  return v;
}

const int64_t kSizes[] = {1, 2, 31, 257, 1001};

}  // namespace

TEST_CASE("op kernels: fill, axpy and scale match the CPU ops", "[op_kernels]") {
  for (int64_t n : kSizes) {
    INFO("n " << n);
    for (float value : {3.5f, 0.0f, -0.0f, -1.25f}) {
      std::vector<float> got = values(size_t(n), 1), want = got;
      run(n, opk::Fill{value, got.data()});
      ops.fill(n, value, want.data());
      expect_bits(got, want, "fill");
    }
    const std::vector<float> x = dyadic(size_t(n), 2);
    for (float a : {0.5f, -1.75f, 0.0f}) {
      std::vector<float> got = dyadic(size_t(n), 3), want = got;
      run(n, opk::Axpy{a, x.data(), got.data()});
      ops.axpy(n, a, x.data(), want.data());
      expect_equal(got, want, "axpy");
      got = x, want = x;
      run(n, opk::Scale{a, got.data()});
      ops.scale(n, a, want.data());
      expect_equal(got, want, "scale");
    }
  }
}

TEST_CASE("op kernels: row gathers and scatters match the CPU ops", "[op_kernels]") {
  // Rows chosen with gaps and out of order out of a strided matrix [src_rows, ld] of which the
  // first `cols` columns are used.
  const int cols = 7, ld = 10, src_rows = 11;
  const std::vector<int> index{9, 0, 4, 7, 2};
  const int rows = int(index.size());
  const std::vector<float> matrix = values(size_t(src_rows) * ld, 4);

  std::vector<float> got(size_t(rows) * cols, -9.0f), want = got;
  run(int64_t(rows) * cols, opk::GatherRows{cols, matrix.data(), ld, index.data(), got.data()});
  ops.gather_rows(rows, cols, matrix.data(), ld, index.data(), want.data());
  expect_equal(got, want, "gather_rows");

  const std::vector<float> packed = values(size_t(rows) * cols, 5);
  for (bool acc : {false, true}) {
    INFO("accumulate " << acc);
    std::vector<float> dst = values(size_t(src_rows) * ld, 6), dst_want = dst;
    run(int64_t(rows) * cols, opk::ScatterRows{cols, packed.data(), index.data(), dst.data(), ld, acc});
    ops.scatter_rows(rows, cols, packed.data(), index.data(), dst_want.data(), ld, acc);
    expect_equal(dst, dst_want, "scatter_rows (the whole strided matrix, untouched rows and padding included)");
  }

  // Every row, in order, of a packed matrix (ld == cols).
  std::vector<int> all(static_cast<size_t>(src_rows));
  for (int r = 0; r < src_rows; ++r) all[size_t(r)] = r;
  std::vector<float> got_all(size_t(src_rows) * cols), want_all = got_all;
  run(int64_t(src_rows) * cols, opk::GatherRows{cols, matrix.data(), cols, all.data(), got_all.data()});
  ops.gather_rows(src_rows, cols, matrix.data(), cols, all.data(), want_all.data());
  expect_equal(got_all, want_all, "gather_rows, packed");
}

TEST_CASE("op kernels: column gathers and scatters match the CPU ops", "[op_kernels]") {
  // Columns with gaps and out of order out of [rows, ld] (row stride ld > every index).
  const int rows = 9, ld = 13;
  const std::vector<int> index{11, 1, 5, 3, 12, 8};
  const int cols = int(index.size());
  const std::vector<float> matrix = values(size_t(rows) * ld, 7);

  std::vector<float> got(size_t(rows) * cols, -9.0f), want = got;
  run(int64_t(rows) * cols, opk::GatherCols{cols, matrix.data(), ld, index.data(), got.data()});
  ops.gather_cols(rows, cols, matrix.data(), ld, index.data(), want.data());
  expect_equal(got, want, "gather_cols");

  const std::vector<float> packed = values(size_t(rows) * cols, 8);
  for (bool acc : {false, true}) {
    INFO("accumulate " << acc);
    std::vector<float> dst = values(size_t(rows) * ld, 9), dst_want = dst;
    run(int64_t(rows) * cols, opk::ScatterCols{cols, packed.data(), index.data(), dst.data(), ld, acc});
    ops.scatter_cols(rows, cols, packed.data(), index.data(), dst_want.data(), ld, acc);
    expect_equal(dst, dst_want, "scatter_cols (the whole strided matrix, untouched columns included)");
  }
}

TEST_CASE("op kernels: broadcast_rows and column_sums match the CPU ops", "[op_kernels]") {
  for (int rows : {1, 5, 33})
    for (int cols : {1, 13, 70}) {
      INFO(rows << " x " << cols);
      const std::vector<float> b = values(size_t(cols), 10);
      std::vector<float> got(size_t(rows) * cols, -9.0f), want = got;
      run(int64_t(rows) * cols, opk::BroadcastRows{cols, b.data(), got.data()});
      ops.broadcast_rows(rows, cols, b.data(), want.data());
      expect_equal(got, want, "broadcast_rows");

      const std::vector<float> x = values(size_t(rows) * cols, 11);
      const std::vector<float> s0 = values(size_t(cols), 12);
      std::vector<float> s = s0, s_want = s0;
      run(cols, opk::ColumnSums{rows, cols, x.data(), s.data()});
      ops.column_sums(rows, cols, x.data(), s_want.data());
      // The CPU sums with a GEMV (its own order): the reduction tolerance over rows + 1 terms.
      for (int c = 0; c < cols; ++c) {
        test::ReductionBound bound;
        bound.add(s0[size_t(c)]);
        for (int r = 0; r < rows; ++r) bound.add(x[size_t(r) * cols + c]);
        INFO("column " << c);
        CHECK(std::fabs(double(s[size_t(c)]) - s_want[size_t(c)]) <= bound.tolerance());
      }
    }
}

TEST_CASE("op kernels: relu forward and backward match the CPU ops", "[op_kernels]") {
  for (int64_t n : kSizes)
    for (float slope : {0.0f, 0.125f, -0.25f}) {
      INFO("n " << n << " slope " << slope);
      std::vector<float> x = dyadic(size_t(n), 13);
      const std::vector<float> dy = dyadic(size_t(n), 14);
      x[size_t(n) / 2] = std::numeric_limits<float>::quiet_NaN();  // a diverging run stays NaN
      std::vector<float> y(static_cast<size_t>(n)), y_want(static_cast<size_t>(n));
      run(n, opk::ReluForward{slope, x.data(), y.data()});
      ops.relu_forward(n, slope, x.data(), y_want.data());
      expect_equal(y, y_want, "relu_forward");
      std::vector<float> inplace = x;  // x == y
      run(n, opk::ReluForward{slope, inplace.data(), inplace.data()});
      expect_equal(inplace, y_want, "relu_forward in place");

      std::vector<float> dx(static_cast<size_t>(n)), dx_want(static_cast<size_t>(n));
      run(n, opk::ReluBackward{slope, y_want.data(), dy.data(), dx.data()});
      ops.relu_backward(n, slope, y_want.data(), dy.data(), dx_want.data());
      expect_equal(dx, dx_want, "relu_backward");
      std::vector<float> dinplace = dy;  // dy == dx
      run(n, opk::ReluBackward{slope, y_want.data(), dinplace.data(), dinplace.data()});
      expect_equal(dinplace, dx_want, "relu_backward in place");
    }
}

TEST_CASE("op kernels: apply_mask, lookup and scale_by_code match the CPU ops", "[op_kernels]") {
  const int table_size = 17;
  const std::vector<float> table = values(size_t(table_size), 15);
  for (int64_t n : kSizes) {
    INFO("n " << n);
    std::vector<uint8_t> mask(static_cast<size_t>(n)), codes(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      mask[size_t(i)] = uint8_t((i * 7 + 3) % 5 < 2);
      codes[size_t(i)] = uint8_t((i * 11 + 5) % table_size);
    }
    const std::vector<float> x = values(size_t(n), 16);
    std::vector<float> got = x, want = x;
    run(n, opk::ApplyMask{mask.data(), got.data()});
    ops.apply_mask(n, mask.data(), want.data());
    expect_equal(got, want, "apply_mask");

    std::vector<float> y(size_t(n), -9.0f), y_want = y;
    run(n, opk::Lookup{codes.data(), table.data(), y.data()});
    ops.lookup(n, codes.data(), table.data(), table_size, y_want.data());
    expect_equal(y, y_want, "lookup");

    got = x, want = x;
    run(n, opk::ScaleByCode{codes.data(), table.data(), got.data()});
    ops.scale_by_code(n, codes.data(), table.data(), table_size, want.data());
    expect_equal(got, want, "scale_by_code");
  }
}

TEST_CASE("op kernels: softmax and softmax_loss_backward match the CPU ops", "[op_kernels]") {
  struct Shape {
    int64_t outer, C, inner;
  };
  for (const Shape& s : {Shape{1, 1, 1}, Shape{3, 7, 5}, Shape{5, 10, 1}, Shape{2, 3, 33}, Shape{1, 1, 9}}) {
    INFO("outer " << s.outer << " C " << s.C << " inner " << s.inner);
    const int64_t count = s.outer * s.C * s.inner, positions = s.outer * s.inner;
    std::vector<float> x = test::uniform_vector(size_t(count), 17, -6.0f, 6.0f);
    std::vector<float> p(size_t(count), -9.0f), p_want = p;
    run(positions, opk::Softmax{s.C, s.inner, x.data(), p.data()});
    ops.softmax(s.outer, s.C, s.inner, x.data(), p_want.data());
    expect_close(p, p_want, 4, "softmax (through expf: a few ulps)");
    std::vector<float> inplace = x;  // x == p
    run(positions, opk::Softmax{s.C, s.inner, inplace.data(), inplace.data()});
    expect_close(inplace, p_want, 4, "softmax in place");

    // Labels: every class, ignored positions (two ignore labels: -1 and 255), and with has_ignore
    // off an out-of-range label (no one-hot, as on both devices).
    for (int ignore : {-1, 255})
      for (bool has_ignore : {true, false}) {
        INFO("ignore " << ignore << " has_ignore " << has_ignore);
        std::vector<float> label(static_cast<size_t>(positions));
        for (int64_t k = 0; k < positions; ++k)
          label[size_t(k)] = k % 4 == 1 ? float(ignore) : float((k * 5 + 2) % s.C);
        const float top_diff = 0.7f, normalizer = 13.0f;
        std::vector<float> dx(size_t(count), -9.0f), dx_want = dx;
        run(positions, opk::SoftmaxLossBackward{s.C, s.inner, p_want.data(), label.data(), has_ignore, ignore,
                                                &top_diff, &normalizer, dx.data()});
        ops.softmax_loss_backward(s.outer, s.C, s.inner, p_want.data(), label.data(), has_ignore, ignore, &top_diff,
                                  &normalizer, dx_want.data());
        expect_equal(dx, dx_want, "softmax_loss_backward");
        // In place (dx == p), as SoftmaxWithLoss may run it.
        std::vector<float> dinplace = p_want;
        run(positions, opk::SoftmaxLossBackward{s.C, s.inner, dinplace.data(), label.data(), has_ignore, ignore,
                                                &top_diff, &normalizer, dinplace.data()});
        expect_equal(dinplace, dx_want, "softmax_loss_backward in place");
      }
  }
}

TEST_CASE("op kernels: uniform is bit-identical to the CPU ops and writes nothing past n", "[op_kernels]") {
  for (int64_t n : {int64_t(1), int64_t(2), int64_t(3), int64_t(4), int64_t(5), int64_t(1023), int64_t(4099)})
    for (uint64_t seed : {uint64_t(0), uint64_t(12345)})
      for (uint64_t stream : {uint64_t(0), uint64_t(7)}) {
        INFO("n " << n << " seed " << seed << " stream " << stream);
        const size_t tail = 5;
        std::vector<float> got(size_t(n) + tail, -9.0f), want = got;
        run((n + 3) / 4, opk::Uniform{n, seed, stream, got.data()});
        ops.uniform(n, seed, stream, want.data());
        expect_bits(got, want, "uniform (the tail past n stays -9 in both)");
      }
}

TEST_CASE("op kernels: solver steps match the CPU ops over several steps", "[op_kernels]") {
  for (int64_t n : kSizes) {
    INFO("n " << n);
    const size_t N = size_t(n);
    const std::vector<float> w0 = dyadic(N, 20), g0 = dyadic(N, 21), v0 = dyadic(N, 22);
    {
      std::vector<float> g = g0, v = v0, g_want = g0, v_want = v0;
      for (int step = 0; step < 3; ++step) {
        run(n, opk::SgdStep{0.875f, 0.25f, g.data(), v.data()});
        ops.sgd_step(n, 0.875f, 0.25f, g_want.data(), v_want.data());
      }
      expect_equal(g, g_want, "sgd_step g");
      expect_equal(v, v_want, "sgd_step v");
    }
    {
      std::vector<float> g = g0, v = v0, g_want = g0, v_want = v0;
      for (int step = 0; step < 3; ++step) {
        run(n, opk::NesterovStep{0.5f, 0.25f, g.data(), v.data()});
        ops.nesterov_step(n, 0.5f, 0.25f, g_want.data(), v_want.data());
      }
      expect_equal(g, g_want, "nesterov_step g");
      expect_equal(v, v_want, "nesterov_step v");
    }
    {
      std::vector<float> g = g0, m(N, 0.0f), v(N, 0.0f), g_want = g0, m_want = m, v_want = v;
      for (int step = 1; step <= 3; ++step) {
        // b1 = 0.875, b2 = 0.75, eps = 2^-10: m and v stay dyadic; g = step_scale m / (sqrt(v) + eps)
        // is correctly rounded on both sides.
        const float scale = 0.0625f * float(step);
        run(n, opk::AdamStep{0.875f, 0.75f, 0x1p-10f, scale, g.data(), m.data(), v.data()});
        ops.adam_step(n, 0.875f, 0.75f, 0x1p-10f, scale, g_want.data(), m_want.data(), v_want.data());
        expect_equal(g, g_want, "adam_step g");
        // The next gradient: new dyadic values, identical on both sides.
        g = g_want = dyadic(N, 30 + uint64_t(step));
      }
      expect_equal(m, m_want, "adam_step m");
      expect_equal(v, v_want, "adam_step v");
    }
    for (float decay : {0.125f, 0.0f}) {
      INFO("decay " << decay);
      std::vector<float> g = g0, g_want = g0;
      run(n, opk::L2Decay{decay, w0.data(), g.data()});
      ops.l2_decay(n, decay, w0.data(), g_want.data());
      expect_equal(g, g_want, "l2_decay");
      g = g0, g_want = g0;
      run(n, opk::L1Decay{decay, w0.data(), g.data()});  // w0 has zeros of both signs: sign 0
      ops.l1_decay(n, decay, w0.data(), g_want.data());
      expect_equal(g, g_want, "l1_decay");

      std::vector<float> w = w0, gg = g0, v = v0, w_want = w0, gg_want = g0, v_want = v0;
      for (int step = 0; step < 3; ++step) {
        run(n, opk::SgdL2Update{0.5f, 0.25f, decay, w.data(), gg.data(), v.data()});
        ops.sgd_l2_update(n, 0.5f, 0.25f, decay, w_want.data(), gg_want.data(), v_want.data());
        for (size_t i = 0; i < N; ++i) gg[i] = gg_want[i] = g0[(i * 5 + size_t(step)) % N];
      }
      expect_equal(w, w_want, "sgd_l2_update w");
      expect_equal(v, v_want, "sgd_l2_update v");
      // g is zeroed by the step (checked before the next gradient is written).
      run(n, opk::SgdL2Update{0.5f, 0.25f, decay, w.data(), gg.data(), v.data()});
      ops.sgd_l2_update(n, 0.5f, 0.25f, decay, w_want.data(), gg_want.data(), v_want.data());
      expect_bits(gg, std::vector<float>(N, 0.0f), "sgd_l2_update zeroes g");
      expect_equal(w, w_want, "sgd_l2_update w, last step");
    }
  }
}
