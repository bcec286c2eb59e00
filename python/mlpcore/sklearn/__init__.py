"""scikit-learn estimators on the mlpcore core: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` (same
parameter names and meanings, same fitted attributes, same defaults). The stochastic solvers
('sgd', 'adam') run the Trainer's epoch runner (``mlpcore.training``): one C++ call per epoch of
shuffled mini-batches, the GIL released. 'lbfgs' runs scipy's L-BFGS-B with one C++ call per
function evaluation (``Network.loss_and_grad``: the whole data set's loss and gradient over the
flat parameter vector). Predictions run in the core's batch-invariant mode: a row's prediction
does not depend on the rows predicted with it, nor on the thread count.

    from mlpcore.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)

What is the same as scikit-learn (the update rule, not only the names):
- Initialisation: scikit-learn's Glorot-uniform draws (weights *and* biases in
  ±sqrt(6 / (fan_in + fan_out)), factor 2 for 'logistic'), taken from
  ``check_random_state(random_state)`` in scikit-learn's order, so a given ``random_state``
  starts from exactly scikit-learn's weights.
- dtype: float32 X trains float32 parameters, anything else float64 (ints are cast), as
  scikit-learn; 'lbfgs' trains in float64 (scikit-learn's L-BFGS ends with float64 parameters
  whatever X is). Predictions are float32 only for float32 X on float32 parameters (numpy's
  promotion of X @ coefs_, as scikit-learn's).
- Loss and gradient: scikit-learn's gradient is that of  sum_rows_outputs w loss / sum(w)
  plus  alpha * ||W||^2 / (2 * sum(w))  per batch (w = 1 without sample weights; the sum is
  then the batch size). The core's losses are weighted means over all ``batch * outputs``
  elements (and MSE has no 1/2), i.e. scikit-learn's data loss times a gain ``c``: 2/outputs
  for squared error, 1 for softmax cross-entropy, 1/outputs for logistic (binary / multilabel)
  outputs and for Poisson. The stochastic solvers undo it in the optimizer: SGD runs at
  ``lr / c`` with L2 weight decay ``c * alpha / sum(w)``; Adam (invariant to the gradient scale)
  runs at ``lr`` with ``eps * c`` and the same weight decay. PyTorch's SGD momentum (buffer =
  gradient sum, lr outside) equals scikit-learn's velocity form while the learning rate is
  constant, Nesterov included. L-BFGS scales the gradient by ``1 / c`` and adds the L2 term over
  the weights only, exactly as scikit-learn.
- ``loss='poisson'`` (regressor): log link (predictions are exp of the network's output),
  half the Poisson deviance, through the core's PoissonNLLLoss plus the targets' constant.
- ``loss_curve_`` / ``loss_`` / ``best_loss_`` use scikit-learn's definition: half the mean
  squared error (regression), the log loss summed over outputs (classification), the half
  deviance (Poisson), plus the L2 term of each batch, averaged over the epoch's rows. Stopping on
  ``tol`` / ``n_iter_no_change``, ``early_stopping`` (a ``validation_fraction`` split, stratified
  for binary targets, scored by accuracy or R² with the rows' sample weights, best weights
  restored), ``learning_rate`` schedules ('constant', 'invscaling', 'adaptive', SGD only),
  ``warm_start`` and ``partial_fit`` (hidden for 'lbfgs') follow scikit-learn's rules. Reaching
  ``max_iter`` emits ``sklearn.exceptions.ConvergenceWarning``; so does an L-BFGS run that stops
  for another reason than convergence (scikit-learn's message; ``max_fun``, ``tol`` as gtol).
- ``coefs_`` / ``intercepts_`` are lists of arrays in scikit-learn's layout that can be
  assigned (the list or an item) or written into to set the weights (e.g. before a warm-started
  fit); shapes are checked on assignment.
- A ``y`` with one class fits (one logistic output; predict returns that class).

Known, documented differences (all small):
- The stochastic solvers' L2 penalty is a weight decay over every parameter, biases included
  (scikit-learn penalises weights only), and it uses the nominal batch size (times the mean
  sample weight) for every batch of an epoch. The L2 part of ``loss_curve_`` uses the weights at
  the start of the epoch (exact with one batch per epoch).
- Adam: eps is added to sqrt(v_hat) (PyTorch) rather than to sqrt(v) (scikit-learn).
- Shuffling draws its permutations from the core's portable RNG (seeded from
  ``random_state``), not numpy's, so the batch order differs from scikit-learn's.
- Binary problems use one logit with BCEWithLogitsLoss (scikit-learn's logistic output);
  multiclass uses softmax cross-entropy on class ids; multilabel indicator ``y`` uses one
  logistic output per label. The log loss is computed from the logits, exactly, where
  scikit-learn clips probabilities at float eps (they differ only for saturated outputs).
- A training loss that turns non-finite with ``early_stopping=True`` stops the fit with a
  ConvergenceWarning after recording that epoch (scikit-learn iterates on the non-finite weights
  to ``max_iter``); both restore the best weights. Without early stopping both raise ValueError.
- ``partial_fit`` is hidden for 'lbfgs' on both estimators (scikit-learn's regressor leaves it
  visible through a slip in its ``available_if`` condition).
- Sparse ``X`` is accepted and densified (the core is dense).

Extra parameters: ``device`` ('cpu' or 'cuda') and ``n_threads`` (None keeps the current thread
count; an int sets it with ``mlpcore.set_num_threads`` for the duration of each call and
restores the previous count afterwards).

Files: ``base`` (parameters, the network in scikit-learn's terms, ``coefs_`` / ``intercepts_``,
the fit entry point, pickling), ``stochastic`` ('sgd' / 'adam'), ``lbfgs``, ``classifier``,
``regressor``.

Pickling stores the network's parameters and the optimizer state as one mlpcore checkpoint
(``mlpcore.io.save_bytes``: safetensors bytes, tensor names as ``model.named_parameters()``),
never the C++ objects. A model pickled with
``device='cuda'`` unpickles on the GPU when one is present and on the CPU otherwise.
"""

from .classifier import MLPClassifier
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
