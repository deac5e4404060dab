// Learning-rate schedules (Caffe's lr_policy plus cosine), as a pure function of the iteration.
#pragma once
#include "dsg.pb.h"

namespace dsg {

// fixed: base; step: base*gamma^floor(it/stepsize); exp: base*gamma^it;
// inv: base*(1+gamma*it)^-power; multistep: base*gamma^(number of stepvalues <= it);
// poly: base*(1-it/max_iter)^power; sigmoid: base/(1+exp(-gamma*(it-stepsize)));
// cosine: base*0.5*(1+cos(pi*it/max_iter)).
float learning_rate(const SolverParameter& param, int iter);

}  // namespace dsg
