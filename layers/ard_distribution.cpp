#include "layers/ard_distribution.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <tuple>

#include "runtime/error.hpp"

namespace dsg {

namespace {

constexpr double kRateTol = 1e-12;  // p this close to 1 - 1/dp counts as that rate
constexpr double kPrune = 1e-3;     // masses below this are dropped from a candidate
constexpr double kLambda = 50;      // weight of the (rate - p)^2 penalty during the search
constexpr int kSteps = 600;         // Adam steps
constexpr double kLearningRate = 0.1;

double period_rate(int period) { return 1.0 - 1.0 / period; }

// W1 between the dropped-count distribution of a period distribution pi (index d = period d + 1)
// and Binomial(N, p), with its (sub)gradient in pi. F_pi is a step function with at most 2 D
// steps, so W1 = sum over the segments between steps of sum_k |c - F_B(k)|, which a binary search
// for where the monotone F_B crosses c plus prefix sums of F_B give in O(log N) per segment.
class CountObjective {
 public:
  CountObjective(double p, int units, int max_period) : n_(units), d_(max_period) {
    cdf_.assign(static_cast<size_t>(n_) + 1, 1.0);
    if (p > 0) {
      const double lp = std::log(p), lq = std::log1p(-p), lgn = std::lgamma(n_ + 1.0);
      double cum = 0;
      for (int k = 0; k < n_; ++k) {
        cum += std::exp(lgn - std::lgamma(k + 1.0) - std::lgamma(n_ - k + 1.0) + k * lp + (n_ - k) * lq);
        cdf_[static_cast<size_t>(k)] = std::min(cum, 1.0);
      }
    }
    prefix_.assign(cdf_.size() + 1, 0.0);
    for (size_t k = 0; k < cdf_.size(); ++k) prefix_[k + 1] = prefix_[k] + cdf_[k];

    // Atoms of each period (exact per-offset counts): N - q - 1 dropped with probability r / dp,
    // N - q with probability (dp - r) / dp, where N = q dp + r.
    std::vector<std::pair<int, double>> raw;  // (position, weight) per atom, in atom order
    for (int dp = 1; dp <= d_; ++dp) {
      const int q = n_ / dp, r = n_ % dp;
      if (r > 0) {
        atoms_.push_back({dp - 1, 0, static_cast<double>(r) / dp});
        raw.emplace_back(n_ - q - 1, 0.0);
      }
      atoms_.push_back({dp - 1, 0, static_cast<double>(dp - r) / dp});
      raw.emplace_back(n_ - q, 0.0);
    }
    for (const auto& a : raw) positions_.push_back(a.first);
    std::sort(positions_.begin(), positions_.end());
    positions_.erase(std::unique(positions_.begin(), positions_.end()), positions_.end());
    for (size_t i = 0; i < atoms_.size(); ++i)
      atoms_[i].position_index = static_cast<int>(
          std::lower_bound(positions_.begin(), positions_.end(), raw[i].first) - positions_.begin());
    // Period 1 drops nothing, so positions_[0] == 0 and the segments start at the atoms.
  }

  double w1(const std::vector<double>& pi, std::vector<double>* grad = nullptr) const {
    const size_t m = positions_.size();
    std::vector<double> mass(m, 0.0);
    for (const Atom& a : atoms_) mass[static_cast<size_t>(a.position_index)] += pi[static_cast<size_t>(a.period_index)] * a.weight;
    std::vector<double> sign_sum(m + 1, 0.0);  // sum over the segment of sign(F_pi - F_B)
    double cost = 0, c = 0;
    for (size_t i = 0; i < m; ++i) {
      c += mass[i];
      const size_t s = static_cast<size_t>(positions_[i]);
      const size_t e = i + 1 < m ? static_cast<size_t>(positions_[i + 1]) : cdf_.size();
      const size_t j = static_cast<size_t>(std::upper_bound(cdf_.begin() + static_cast<long>(s),
                                                            cdf_.begin() + static_cast<long>(e), c) -
                                           cdf_.begin());
      cost += c * static_cast<double>(j - s) - (prefix_[j] - prefix_[s]) + (prefix_[e] - prefix_[j]) -
              c * static_cast<double>(e - j);
      sign_sum[i] = static_cast<double>(j - s) - static_cast<double>(e - j);
    }
    if (grad) {
      // dW1/dpi(dp) = sum over its atoms a of weight(a) * sum_{k >= a} sign(F_pi(k) - F_B(k)).
      for (size_t i = m; i-- > 0;) sign_sum[i] += sign_sum[i + 1];
      grad->assign(static_cast<size_t>(d_), 0.0);
      for (const Atom& a : atoms_)
        (*grad)[static_cast<size_t>(a.period_index)] += a.weight * sign_sum[static_cast<size_t>(a.position_index)];
    }
    return cost;
  }

 private:
  struct Atom {
    int period_index;
    int position_index;
    double weight;
  };
  int n_, d_;
  std::vector<double> cdf_;     // F_B(k), k = 0..N
  std::vector<double> prefix_;  // prefix_[k] = sum_{j < k} F_B(j)
  std::vector<int> positions_;  // distinct atom positions, ascending
  std::vector<Atom> atoms_;
};

// C(pi) = sum_d w_d (P_co(d) - p^2)^2 / sum_d w_d over unit distances d = 1..N-1 with w_d = N - d
// pairs, where P_co(d) = sum_dp pi(dp) a(dp, d): both units dropped, a = 1 - 1/dp when dp divides d
// (same residue) and 1 - 2/dp otherwise (period 1 drops nothing). Linear in pi inside the square,
// so the gradient is 2 sum_d w_d (P_co(d) - p^2) a(dp, d) / sum_d w_d.
class PairObjective {
 public:
  PairObjective(double p, int units, int max_period) : p2_(p * p), d_(max_period) {
    for (int dist = 1; dist < units; ++dist) {
      weight_.push_back(double(units - dist));
      total_ += double(units - dist);
    }
  }
  double value(const std::vector<double>& pi, std::vector<double>* grad = nullptr) const {
    if (grad) grad->assign(static_cast<size_t>(d_), 0.0);
    if (total_ == 0) return 0;
    double c = 0;
    for (size_t i = 0; i < weight_.size(); ++i) {
      const int dist = int(i) + 1;
      double co = 0;
      for (int dp = 2; dp <= d_; ++dp) co += pi[size_t(dp - 1)] * both(dp, dist);
      const double diff = co - p2_;
      c += weight_[i] * diff * diff;
      if (grad)
        for (int dp = 2; dp <= d_; ++dp) (*grad)[size_t(dp - 1)] += 2 * weight_[i] * diff * both(dp, dist) / total_;
    }
    return c / total_;
  }

 private:
  static double both(int dp, int dist) { return dist % dp == 0 ? 1.0 - 1.0 / dp : 1.0 - 2.0 / dp; }
  double p2_, total_ = 0;
  int d_;
  std::vector<double> weight_;
};

double rate_of(const std::vector<double>& pi) {
  double m = 0;
  for (size_t d = 0; d < pi.size(); ++d) m += pi[d] * period_rate(static_cast<int>(d) + 1);
  return m;
}

// Prunes masses below kPrune (never the largest), renormalises, then makes the rate exactly p by
// mixing with the bracketing period on the far side of p: pi <- (1 - t) pi + t e_target.
std::vector<double> make_feasible(std::vector<double> pi, double p, int lo, int hi) {
  const double threshold = std::min(kPrune, 0.5 * *std::max_element(pi.begin(), pi.end()));
  for (double& x : pi)
    if (x < threshold) x = 0;
  const double sum = std::accumulate(pi.begin(), pi.end(), 0.0);
  for (double& x : pi) x /= sum;
  const double m = rate_of(pi);
  const int target = m < p ? hi : lo;
  const double gap = period_rate(target) - m;  // same sign as p - m when correctable
  if (m != p && gap != 0 && (gap > 0) == (p > m)) {
    const double t = std::min(1.0, (p - m) / gap);
    for (double& x : pi) x *= 1 - t;
    pi[static_cast<size_t>(target - 1)] += t;
  }
  return pi;
}

// Throws unless units, max_period >= 1 and p is in [0, 1 - 1/max_period] (NaN included).
void validate(double p, int units, int max_period) {
  if (units < 1) throw Error(strfmt("row_pattern_distribution: units must be >= 1, got %d", units));
  if (max_period < 1)
    throw Error(strfmt("row_pattern_distribution: max_period must be >= 1, got %d", max_period));
  const double reachable = period_rate(max_period);
  if (!(p >= 0) || p > reachable + kRateTol) {
    std::string hint = p < 1 ? strfmt("use max_period >= %d", static_cast<int>(std::ceil(1 / (1 - p) - 1e-9)))
                             : std::string("the drop rate must be < 1");
    throw Error(strfmt("Approximate Random Dropout: drop rate p = %g is not reachable with periods 1..%d "
                       "(largest reachable rate 1 - 1/%d = %g)",
                       p, max_period, max_period, reachable),
                hint);
  }
}

}  // namespace

double RowPatternDistribution::drop_rate() const {
  double m = 0;
  for (size_t i = 0; i < periods.size(); ++i) m += probs[i] * period_rate(periods[i]);
  return m;
}

int RowPatternDistribution::sample_period(double u) const {
  if (periods.empty()) throw Error("RowPatternDistribution::sample_period: the distribution is empty");
  double cum = 0;
  for (size_t i = 0; i < periods.size(); ++i) {
    cum += probs[i];
    if (u < cum) return periods[i];
  }
  return periods.back();
}

RowPatternDistribution search_row_pattern_distribution(double p, int units, int max_period, double pair_weight) {
  validate(p, units, max_period);
  if (!(pair_weight >= 0)) throw Error(strfmt("row_pattern_distribution: pair_weight must be >= 0, got %g", pair_weight));
  const int d = max_period;
  const size_t ds = static_cast<size_t>(d);

  // Bracketing periods: lo = largest with rate <= p, hi = smallest with rate >= p (equal when p
  // is a pattern rate, up to kRateTol).
  int lo = 1;
  while (lo < d && period_rate(lo + 1) <= p + kRateTol) ++lo;
  const int hi = std::abs(period_rate(lo) - p) <= kRateTol ? lo : lo + 1;
  std::vector<double> bracket(ds, 0.0);
  if (hi == lo) {
    bracket[static_cast<size_t>(lo - 1)] = 1;
  } else {
    const double w = (p - period_rate(lo)) / (period_rate(hi) - period_rate(lo));
    bracket[static_cast<size_t>(lo - 1)] = 1 - w;
    bracket[static_cast<size_t>(hi - 1)] = w;
  }

  const CountObjective objective(p, units, d);
  const PairObjective pairs(p, units, d);
  // The searched objective: W1 / N + pair_weight C (C only when pair_weight > 0).
  auto total = [&](const std::vector<double>& pi) {
    return objective.w1(pi) / units + (pair_weight > 0 ? pair_weight * pairs.value(pi) : 0.0);
  };
  std::vector<double> best = bracket;
  double best_w1 = total(best);

  // Adam on theta, pi = softmax(theta), minimising W1 / N + lambda (rate - p)^2.
  std::vector<double> theta(ds), mom(ds, 0.0), vel(ds, 0.0), pi(ds), grad;
  for (size_t i = 0; i < ds; ++i) theta[i] = std::log(0.8 * bracket[i] + 0.2 / d);
  for (int step = 1; step <= kSteps; ++step) {
    const double top = *std::max_element(theta.begin(), theta.end());
    double z = 0;
    for (size_t i = 0; i < ds; ++i) z += pi[i] = std::exp(theta[i] - top);
    for (double& x : pi) x /= z;

    const std::vector<double> candidate = make_feasible(pi, p, lo, hi);
    const double w = total(candidate);
    if (w < best_w1 - 1e-12) best_w1 = w, best = candidate;
    if (pair_weight > 0) {
      // Correcting the rate with the bracketing period pulls a mixture back towards it (all the way
      // when p is a pattern rate); correcting with the extreme periods keeps the mixture's shape.
      const std::vector<double> spread = make_feasible(pi, p, 1, d);
      const double ws = total(spread);
      if (std::abs(rate_of(spread) - p) < 1e-9 && ws < best_w1 - 1e-12) best_w1 = ws, best = spread;
    }

    objective.w1(pi, &grad);
    std::vector<double> pair_grad;
    if (pair_weight > 0) pairs.value(pi, &pair_grad);
    const double penalty = 2 * kLambda * (rate_of(pi) - p);
    double mean_grad = 0;
    for (size_t i = 0; i < ds; ++i) {
      grad[i] = grad[i] / units + penalty * period_rate(static_cast<int>(i) + 1) +
                (pair_weight > 0 ? pair_weight * pair_grad[i] : 0.0);
      mean_grad += pi[i] * grad[i];
    }
    const double c1 = 1 - std::pow(0.9, step), c2 = 1 - std::pow(0.999, step);
    for (size_t i = 0; i < ds; ++i) {
      const double g = pi[i] * (grad[i] - mean_grad);  // through the softmax
      mom[i] = 0.9 * mom[i] + 0.1 * g;
      vel[i] = 0.999 * vel[i] + 0.001 * g * g;
      theta[i] -= kLearningRate * (mom[i] / c1) / (std::sqrt(vel[i] / c2) + 1e-12);
    }
  }

  RowPatternDistribution out;
  out.p = p;
  out.units = units;
  out.wasserstein = objective.w1(best);
  out.pair_term = pairs.value(best);
  for (size_t i = 0; i < ds; ++i)
    if (best[i] > 0) out.periods.push_back(static_cast<int>(i) + 1), out.probs.push_back(best[i]);
  return out;
}

const RowPatternDistribution& row_pattern_distribution(double p, int units, int max_period, double pair_weight) {
  static std::mutex mutex;
  static std::map<std::tuple<double, int, int, double>, std::unique_ptr<RowPatternDistribution>> cache;
  validate(p, units, max_period);  // before the lookup: a NaN key would break the map's ordering
  if (!(pair_weight >= 0)) throw Error(strfmt("row_pattern_distribution: pair_weight must be >= 0, got %g", pair_weight));
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[std::make_tuple(p, units, max_period, pair_weight)];
  if (!slot)
    slot = std::make_unique<RowPatternDistribution>(search_row_pattern_distribution(p, units, max_period, pair_weight));
  return *slot;
}

std::vector<int> row_pattern_kept(int units, int period, int offset) {
  if (period < 1 || offset < 0 || offset >= period || units < 0)
    throw Error(strfmt("row_pattern_kept: need period >= 1, 0 <= offset < period and units >= 0, got "
                       "units %d, period %d, offset %d",
                       units, period, offset));
  std::vector<int> kept;
  for (int i = (period - offset) % period; i < units; i += period) kept.push_back(i);
  return kept;
}

}  // namespace dsg
