// Approximate Random Dropout (Song et al., DATE 2019): the row-pattern distribution.
//
// Instead of a Bernoulli mask per sample, a layer of N units keeps one regular pattern for the
// whole mini-batch: a period dp in 1..D and an offset o uniform in [0, dp); unit i is kept when
// (i + o) % dp == 0 (kept activations are scaled by 1 / (1 - p) as in inverted dropout). With a
// uniform offset every unit is kept with probability exactly 1 / dp, so a distribution pi over
// periods drops every unit with probability sum_dp pi(dp) (1 - 1/dp).
//
// Count model (exact per-offset counts): with N = q dp + r (0 <= r < dp), pattern dp keeps q + 1
// units for r of its offsets and q units for the other dp - r, so it drops N - q - 1 units with
// probability r / dp and N - q units with probability (dp - r) / dp (mean N (1 - 1/dp)). The
// dropped-count distribution of pi is the pi-mixture of these two-point distributions.
//
// What is minimised: W1(pi) = sum_{k=0..N} |F_pi(k) - F_B(k)|, the 1-Wasserstein distance (in
// units) between that dropped-count distribution and Binomial(N, p) (Bernoulli dropout's dropped
// count), subject to sum pi = 1, pi >= 0 and sum pi(dp) (1 - 1/dp) = p exactly. The search
// parameterises pi = softmax(theta) over periods 1..D and runs Adam with the analytic subgradient
// on W1 / N + lambda (rate(pi) - p)^2, starting from 0.8 x the two-point mixture of the periods
// bracketing p + 0.2 x uniform. Every iterate is made feasible (masses < 1e-3 pruned, then mixed
// with the bracketing period on the far side of p so the rate is exactly p) and the feasible
// candidate with the smallest W1 wins; the bracketing two-point mixture itself is the first
// candidate, so the result is never worse than that trivial solution. Deterministic; about a
// millisecond for N <= 4096, D <= 32.
#pragma once
#include <vector>

namespace dsg {

struct RowPatternDistribution {
  double p = 0;               // target drop rate
  int units = 0;              // N
  std::vector<int> periods;   // candidate periods with non-zero probability, ascending
  std::vector<double> probs;  // their probabilities (sum 1)
  double wasserstein = 0;     // W1 between the dropped-count distributions (see above), in units
  double pair_term = 0;       // C(pi) of the result (see row_pattern_distribution)
  // Per-unit drop probability implied by the distribution (== p up to 1e-9).
  double drop_rate() const;
  // The period for a uniform random number u in [0, 1) (inverse CDF; u beyond the last cumulative
  // probability, e.g. through rounding, gives the last period).
  int sample_period(double u) const;
};

// Searches (or returns the cached) distribution for drop rate p over `units` units with periods
// 1..max_period. Cached per (p, units, max_period) for the life of the process (thread-safe); the
// reference stays valid. Throws dsg::Error when p is outside [0, 1 - 1/max_period] (naming the
// largest reachable rate) or units / max_period < 1.
// pair_weight > 0 adds pair_weight * C(pi) to the objective, C = the mean over unit distances d
// (weighted by the number of unit pairs at that distance) of (P(both dropped | d) - p^2)^2, so that
// the search prefers mixtures whose periods do not always drop the same groups together.
const RowPatternDistribution& row_pattern_distribution(double p, int units, int max_period = 16,
                                                       double pair_weight = 0);

// The same search without the cache (a fresh result every call; same inputs, same output).
RowPatternDistribution search_row_pattern_distribution(double p, int units, int max_period = 16,
                                                       double pair_weight = 0);

// The kept units of the pattern (period, offset): ascending indices i in [0, units) with
// (i + offset) % period == 0. Requires period >= 1, 0 <= offset < period, units >= 0.
std::vector<int> row_pattern_kept(int units, int period, int offset);

}  // namespace dsg
