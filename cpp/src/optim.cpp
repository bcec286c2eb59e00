// optim.cpp — Optimizer: one flat state buffer, one backend call per segment.
#include "mlpcore/optim.h"

#include "mlpcore/backend.h"

namespace mc {

Optimizer::Optimizer(Device device, DType dtype, OptimParams params, std::vector<OptimSegment> segments)
    : device_(device), dtype_(dtype), params_(params), segments_(std::move(segments)) {
  const int slots = optim_state_slots(params_);
  for (const auto& s : segments_) {
    offsets_.push_back(state_numel_);
    state_numel_ += slots * s.n;
  }
  state_ = Buffer(device_, size_t(state_numel_) * dtype_size(dtype_));
  reset_state();
}

void Optimizer::reset_state() {
  backend_for(device_).fill(dtype_, state_.data(), state_numel_, 0.0);
  params_.step = 0;
}

void Optimizer::step() {
  Backend& be = backend_for(device_);
  params_.step += 1;
  const size_t es = dtype_size(dtype_);
  for (size_t i = 0; i < segments_.size(); ++i) {
    const auto& s = segments_[i];
    be.optim_step(dtype_, params_, s.param, s.grad, static_cast<char*>(state_.data()) + offsets_[i] * es, s.n);
  }
}

}  // namespace mc
