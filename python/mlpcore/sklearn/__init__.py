"""scikit-learn estimators on the mlpcore core: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` (same
parameter names and meanings, same fitted attributes, same defaults), trained by the Trainer's
epoch runner (``mlpcore.training``): one C++ call per epoch of shuffled mini-batches, the GIL
released. Predictions run in the core's batch-invariant mode: a row's prediction does not depend
on the rows predicted with it, nor on the thread count.

    from mlpcore.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)

What is the same as scikit-learn (the update rule, not only the names):
- Initialisation: scikit-learn's Glorot-uniform draws (weights *and* biases in
  ±sqrt(6 / (fan_in + fan_out)), factor 2 for 'logistic'), taken from
  ``check_random_state(random_state)`` in scikit-learn's order, so a given ``random_state``
  starts from exactly scikit-learn's weights.
- Loss and gradient: scikit-learn's gradient is that of  sum_rows_outputs loss / batch_size
  plus  alpha * ||W||^2 / (2 * batch_size).  The core's losses are means over all
  ``batch * outputs`` elements (and MSE has no 1/2), i.e. scikit-learn's data loss times a gain
  ``c``: 2/outputs for squared error, 1 for softmax cross-entropy, 1/outputs for logistic
  (binary / multilabel) outputs. We undo it in the optimizer: SGD runs at ``lr / c`` with
  L2 weight decay ``c * alpha / batch_size``; Adam (invariant to the gradient scale) runs at
  ``lr`` with ``eps * c`` and the same weight decay. PyTorch's SGD momentum (buffer = gradient
  sum, lr outside) equals scikit-learn's velocity form while the learning rate is constant,
  Nesterov included.
- ``loss_curve_`` / ``loss_`` / ``best_loss_`` use scikit-learn's definition: half the mean
  squared error (regression), the log loss summed over outputs (classification), plus
  ``alpha * ||W||^2 / (2 * batch_size)`` summed over the batches of the epoch and divided by
  the number of samples. Stopping on ``tol`` / ``n_iter_no_change``, ``early_stopping`` (a
  stratified ``validation_fraction`` split scored by accuracy or R², best weights restored),
  ``learning_rate`` schedules ('constant', 'invscaling', 'adaptive', SGD only), ``warm_start``
  and ``partial_fit`` follow scikit-learn's rules. Reaching ``max_iter`` emits
  ``sklearn.exceptions.ConvergenceWarning``.

Known, documented differences (all small):
- The network computes in float32 whatever the input dtype; outputs are returned as float64.
- The L2 penalty is a weight decay over every parameter, biases included (scikit-learn
  penalises weights only), and it uses the nominal batch size for the last, smaller batch of an
  epoch. The L2 part of ``loss_curve_`` uses the weights at the end of the epoch.
- Adam: eps is added to sqrt(v_hat) (PyTorch) rather than to sqrt(v) (scikit-learn).
- Shuffling draws its permutations from the core's portable RNG (seeded from
  ``random_state``), not numpy's, so the batch order differs from scikit-learn's.
- Binary problems use one logit with BCEWithLogitsLoss (scikit-learn's logistic output);
  multiclass uses softmax cross-entropy on class ids; multilabel indicator ``y`` uses one
  logistic output per label. ``solver='lbfgs'`` and ``sample_weight`` are not supported.
- Sparse ``X`` is accepted and densified (the core is dense).

Extra parameters: ``device`` ('cpu' or 'cuda') and ``n_threads`` (None keeps the current thread
count; an int sets it with ``mlpcore.set_num_threads`` for the duration of each call and
restores the previous count afterwards).

Files: ``base`` (parameters, the network and optimizer in scikit-learn's terms, the fit loop,
pickling), ``classifier``, ``regressor``.

Pickling stores the network's parameters and the optimizer state as one mlpcore checkpoint
(``mlpcore.io.save_bytes``: safetensors bytes, tensor names as ``model.named_parameters()``),
never the C++ objects. A model pickled with
``device='cuda'`` unpickles on the GPU when one is present and on the CPU otherwise.
"""

from .classifier import MLPClassifier
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
