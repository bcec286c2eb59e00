// mlpcore/loss.h — the losses. Each backend computes value and gradient in one pass
// (Backend::loss_forward_backward), always with mean reduction:
//   mse:             mean over all elements of (pred - target)^2
//   cross_entropy:   mean over rows of logsumexp(pred_r) - pred_r[label_r]   (int32 labels)
//   bce_with_logits: mean over all elements of max(x,0) - x*t + log1p(exp(-|x|))
#pragma once
#include "mlpcore/check.h"

namespace mc {

enum class LossKind : int { mse = 0, cross_entropy = 1, bce_with_logits = 2 };

inline const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::mse: return "mse";
    case LossKind::cross_entropy: return "cross_entropy";
    default: return "bce_with_logits";
  }
}

}  // namespace mc
