"""
mlpcore C++ core (private: use the mlpcore package)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['ActKind', 'Communicator', 'DropoutState', 'EpochResult', 'InitKind', 'LossKind', 'LossSpec', 'Network', 'OpKind', 'OpSpec', 'OptimKind', 'OptimParams', 'Optimizer', 'ParamArena', 'act_backward', 'act_forward', 'blas_info', 'clip_grad_norm', 'cuda_available', 'cuda_unavailable_reason', 'dropout_forward', 'epoch_seed', 'get_batch_invariant', 'get_check_finite', 'get_num_threads', 'linear_backward', 'linear_forward', 'local_communicator', 'loss_forward_backward', 'maxout_backward', 'maxout_forward', 'mpi_communicator', 'mul', 'num_threads_pinned', 'op_backward', 'op_forward', 'permutation', 'set_batch_invariant', 'set_check_finite', 'set_num_threads']
class ActKind:
    """
    Members:
    
      identity
    
      relu
    
      leaky_relu
    
      sigmoid
    
      tanh
    
      elu
    
      gelu
    
      silu
    
      softmax
    """
    __members__: typing.ClassVar[dict[str, ActKind]]
    elu: typing.ClassVar[ActKind]
    gelu: typing.ClassVar[ActKind]
    identity: typing.ClassVar[ActKind]
    leaky_relu: typing.ClassVar[ActKind]
    relu: typing.ClassVar[ActKind]
    sigmoid: typing.ClassVar[ActKind]
    silu: typing.ClassVar[ActKind]
    softmax: typing.ClassVar[ActKind]
    tanh: typing.ClassVar[ActKind]
    @typing.overload
    def __eq__(self, other: ActKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: ActKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class LossKind:
    """
    Members:
    
      mse
    
      cross_entropy
    
      bce_with_logits
    
      l1
    
      huber
    
      smooth_l1
    
      poisson_nll
    """
    __members__: typing.ClassVar[dict[str, LossKind]]
    bce_with_logits: typing.ClassVar[LossKind]
    cross_entropy: typing.ClassVar[LossKind]
    huber: typing.ClassVar[LossKind]
    l1: typing.ClassVar[LossKind]
    mse: typing.ClassVar[LossKind]
    poisson_nll: typing.ClassVar[LossKind]
    smooth_l1: typing.ClassVar[LossKind]
    @typing.overload
    def __eq__(self, other: LossKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: LossKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class OptimKind:
    """
    Members:
    
      sgd
    
      adam
    
      adamw
    
      rmsprop
    """
    __members__: typing.ClassVar[dict[str, OptimKind]]
    adam: typing.ClassVar[OptimKind]
    adamw: typing.ClassVar[OptimKind]
    rmsprop: typing.ClassVar[OptimKind]
    sgd: typing.ClassVar[OptimKind]
    @typing.overload
    def __eq__(self, other: OptimKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: OptimKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class InitKind:
    """
    Members:
    
      zeros
    
      he_uniform
    
      he_normal
    
      xavier_uniform
    
      xavier_normal
    """
    __members__: typing.ClassVar[dict[str, InitKind]]
    he_normal: typing.ClassVar[InitKind]
    he_uniform: typing.ClassVar[InitKind]
    xavier_normal: typing.ClassVar[InitKind]
    xavier_uniform: typing.ClassVar[InitKind]
    zeros: typing.ClassVar[InitKind]
    @typing.overload
    def __eq__(self, other: InitKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: InitKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class OpKind:
    """
    Members:
    
      linear
    
      activation
    
      dropout
    
      maxout
    
      residual_add
    
      layer_norm
    
      batch_norm
    """
    __members__: typing.ClassVar[dict[str, OpKind]]
    activation: typing.ClassVar[OpKind]
    batch_norm: typing.ClassVar[OpKind]
    dropout: typing.ClassVar[OpKind]
    layer_norm: typing.ClassVar[OpKind]
    linear: typing.ClassVar[OpKind]
    maxout: typing.ClassVar[OpKind]
    residual_add: typing.ClassVar[OpKind]
    @typing.overload
    def __eq__(self, other: OpKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: OpKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class DropoutState:
    def __init__(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def counter(self) -> int:
        ...
    @counter.setter
    def counter(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def seed(self) -> int:
        ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class ParamArena:
    def __init__(self, device: typing.Any, dtype: typing.Any, numel: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def copy_from(self, arg0: ParamArena) -> None:
        ...
    def init(self, offset: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, kind: InitKind, fan_in: typing.SupportsInt | typing.SupportsIndex, fan_out: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def read(self, grad: bool, offset: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex) -> numpy.ndarray:
        ...
    def view(self, grad: bool, offset: typing.SupportsInt | typing.SupportsIndex, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> numpy.ndarray:
        ...
    def write(self, grad: bool, offset: typing.SupportsInt | typing.SupportsIndex, values: numpy.ndarray) -> None:
        ...
    def zero_grad(self) -> None:
        ...
    @property
    def device(self) -> str:
        ...
    @property
    def dtype(self) -> numpy.dtype[typing.Any]:
        ...
    @property
    def numel(self) -> int:
        ...
class OptimParams:
    centered: bool
    kind: OptimKind
    nesterov: bool
    def __init__(self) -> None:
        ...
    @property
    def alpha(self) -> float:
        ...
    @alpha.setter
    def alpha(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def beta1(self) -> float:
        ...
    @beta1.setter
    def beta1(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def beta2(self) -> float:
        ...
    @beta2.setter
    def beta2(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def eps(self) -> float:
        ...
    @eps.setter
    def eps(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def momentum(self) -> float:
        ...
    @momentum.setter
    def momentum(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def step(self) -> int:
        ...
    @step.setter
    def step(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def weight_decay(self) -> float:
        ...
    @weight_decay.setter
    def weight_decay(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class Optimizer:
    params: OptimParams
    def __init__(self, params: OptimParams, segments: collections.abc.Sequence[tuple[ParamArena, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, bool]]) -> None:
        ...
    def clip_grad_norm(self, max_norm: typing.SupportsFloat | typing.SupportsIndex) -> float:
        """
        Scale the gradients of the active segments to a joint L2 norm of at most max_norm (torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
        """
    def read_state(self) -> numpy.ndarray:
        ...
    def reset_state(self) -> None:
        ...
    def set_lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    def step(self) -> None:
        ...
    def write_state(self, values: numpy.ndarray, step: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def state_numel(self) -> int:
        ...
class LossSpec:
    """
    A loss and its parameters, validated once (PyTorch's names and defaults; `weight`: cross_entropy's class weights). Networks and loss_forward_backward take it wherever they take a LossKind.
    """
    def __init__(self, kind: LossKind, *, delta: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 1.0, label_smoothing: typing.SupportsFloat | typing.SupportsIndex = 0.0, weight: typing.Any = None, pos_weight: typing.Any = None, log_input: bool = True, full: bool = False, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-08) -> None:
        ...
    def __repr__(self) -> str:
        ...
    @property
    def beta(self) -> float:
        ...
    @property
    def delta(self) -> float:
        ...
    @property
    def eps(self) -> float:
        ...
    @property
    def full(self) -> bool:
        ...
    @property
    def kind(self) -> LossKind:
        ...
    @property
    def label_smoothing(self) -> float:
        ...
    @property
    def log_input(self) -> bool:
        ...
    @property
    def pos_weight(self) -> typing.Any:
        """
        float64 copy, or None
        """
    @property
    def weight(self) -> typing.Any:
        """
        cross_entropy's class weights (PyTorch's `weight`): a float64 copy, or None
        """
class Communicator:
    """
    The processes of a data-parallel job (mlpcore/comm.h). Build with local_communicator() or, under mpiexec, through mlpcore.distributed.init().
    """
    def __repr__(self) -> str:
        ...
    def allreduce_sum(self, buf: typing.Any) -> None:
        """
        buf (any shape, float32/float64, C-contiguous): in place, the sum over ranks.
        """
    def barrier(self) -> None:
        ...
    def broadcast(self, buf: typing.Any, root: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        buf (float32/float64, C-contiguous): in place, root's values.
        """
    @property
    def rank(self) -> int:
        ...
    @property
    def size(self) -> int:
        ...
class OpSpec:
    act_kind: ActKind
    dropout: DropoutState
    has_bias: bool
    kind: OpKind
    transposed: bool
    def __init__(self) -> None:
        ...
    @property
    def act_param(self) -> float:
        ...
    @act_param.setter
    def act_param(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def arena(self) -> int:
        """
        Index into Network's arenas of the arena weight_off / bias_off / state_off index.
        """
    @arena.setter
    def arena(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def attrs(self) -> list[float]:
        """
        The op's own hyper-parameters (layer_norm: [eps]; batch_norm: [eps, momentum]).
        """
    @attrs.setter
    def attrs(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
    @property
    def bias_grad(self) -> bool:
        """
        False: the bias is frozen (no gradient computed).
        """
    @bias_grad.setter
    def bias_grad(self, arg0: bool) -> None:
        ...
    @property
    def bias_off(self) -> int:
        ...
    @bias_off.setter
    def bias_off(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def in_features(self) -> int:
        ...
    @in_features.setter
    def in_features(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def out_features(self) -> int:
        ...
    @out_features.setter
    def out_features(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def p(self) -> float:
        ...
    @p.setter
    def p(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def pieces(self) -> int:
        ...
    @pieces.setter
    def pieces(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def skip(self) -> int:
        ...
    @skip.setter
    def skip(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def state_off(self) -> int:
        """
        Offset of the op's non-parameter state (running statistics), or -1.
        """
    @state_off.setter
    def state_off(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def weight_grad(self) -> bool:
        """
        False: the weight is frozen (no gradient computed).
        """
    @weight_grad.setter
    def weight_grad(self, arg0: bool) -> None:
        ...
    @property
    def weight_off(self) -> int:
        ...
    @weight_off.setter
    def weight_off(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class EpochResult:
    """
    What Network.train_epoch did (read-only).
    """
    __hash__: typing.ClassVar[None] = None
    def __eq__(self, arg0: EpochResult) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    @property
    def comm_seconds(self) -> float:
        """
        Seconds in the communicator's collectives (data parallel; waiting for other ranks included).
        """
    @property
    def correct(self) -> int:
        """
        Arg-max hits (cross-entropy), else 0.
        """
    @property
    def loss(self) -> float:
        """
        Mean loss over the rows run.
        """
    @property
    def rows(self) -> int:
        """
        Rows run.
        """
class Network:
    training: bool
    def __init__(self, arenas: typing.Any, ops: collections.abc.Sequence[OpSpec], in_features: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        arenas: a ParamArena or a list of them (one device and dtype); OpSpec.arena indexes it.
        """
    def backward(self, grad_output: typing.Any) -> numpy.ndarray:
        """
        Backward of the last forward: adds to the parameter gradients (dropout masks of that forward), returns d loss / d x (B, in_features). RuntimeError if another call used the network since.
        """
    def evaluate(self, loss: LossKind | LossSpec, X: typing.Any, y: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex = 1024, validate: bool = True, sample_weight: typing.Any = None) -> tuple[float, int]:
        """
        (mean loss over all rows, arg-max hits (cross-entropy, unweighted)); with sample_weight (n,) the mean is sum(w v) / sum(w n) over the whole set.
        """
    def forward(self, x: typing.Any) -> numpy.ndarray:
        """
        Forward in the network's train/eval mode; keeps what backward needs until another call uses the network.
        """
    def loss_and_grad(self, layout: typing.Any, theta: typing.Any, grad_out: numpy.ndarray, loss: LossKind | LossSpec, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None, l2_alpha: typing.SupportsFloat | typing.SupportsIndex = 0.0, value_scale: typing.SupportsFloat | typing.SupportsIndex = 1.0, grad_scale: typing.SupportsFloat | typing.SupportsIndex = 1.0, validate: bool = True) -> float:
        """
        Full-batch loss and gradient at the flat parameter vector theta (float64): writes theta into the parameters, runs forward, loss and backward over all rows, writes the gradient (theta's layout) to grad_out and returns value_scale * loss + l2_alpha / (2 s) * sum of the penalised segments' squares (gradient: grad_scale * d loss + l2_alpha / s * theta on them); loss is the mean over all rows (weighted by sample_weight (n,) when given), s the number of rows or the sum of the weights. layout: (ParamArena, offset, numel, penalised) per segment, distinct parameters of this network.
        """
    def predict(self, X: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex = 1024) -> numpy.ndarray:
        ...
    def release_device_data(self) -> None:
        """
        Drop the cached device copies of data sets (a network on cuda); the next call uploads again.
        """
    def train_epoch(self, optimizer: Optimizer, loss: LossKind | LossSpec, X: typing.Any, y: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, shuffle: bool, seed: typing.SupportsInt | typing.SupportsIndex, epoch: typing.SupportsInt | typing.SupportsIndex = 0, check_finite: bool = True, batch_begin: typing.SupportsInt | typing.SupportsIndex = 0, batch_end: typing.SupportsInt | typing.SupportsIndex = -1, validate: bool = True, sample_weight: typing.Any = None, clip_grad_norm: typing.Any = None, outputs: typing.Any = None, comm: Communicator = None) -> EpochResult:
        """
        sample_weight (n,): gathered with the rows; each batch's loss is its weighted mean (mlpcore/loss.h).
        """
    def train_step(self, optimizer: Optimizer, loss: LossKind | LossSpec, x: typing.Any, y: typing.Any, check_finite: bool = True, validate: bool = True, sample_weight: typing.Any = None, clip_grad_norm: typing.Any = None, comm: Communicator = None) -> float:
        ...
    @property
    def arenas(self) -> list[ParamArena]:
        ...
    @property
    def cached_device_data(self) -> int:
        """
        Number of data sets held in device memory (0 on cpu).
        """
    @property
    def capacity(self) -> int:
        ...
    @property
    def device(self) -> str:
        ...
    @property
    def in_features(self) -> int:
        ...
    @property
    def num_ops(self) -> int:
        ...
    @property
    def out_features(self) -> int:
        ...
def _as_device(device: typing.Any, available: bool = True) -> str:
    """
    'cpu' or 'cuda' for a device argument ('cuda:N' is 'cuda'; ValueError otherwise); with available, RuntimeError when that device cannot be used here.
    """
def _as_dtype(dtype: typing.Any) -> numpy.dtype[typing.Any]:
    """
    The numpy dtype float32 / float64 for a dtype argument (TypeError otherwise): the layers' dtype rule.
    """
def _as_labels(y: typing.Any, name: str, rows: typing.SupportsInt | typing.SupportsIndex, classes: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int32]:
    """
    Validate/convert class ids exactly as the core does (classes < 0: not known yet, ids >= 0).
    """
def _as_matrix(x: typing.Any, name: str, dtype: typing.Any, cols: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.ndarray:
    """
    Validate/convert a float matrix argument exactly as the core does (used by the Python layer).
    """
def _as_sample_weight(w: typing.Any, name: str, rows: typing.SupportsInt | typing.SupportsIndex, dtype: typing.Any, rows_of: str = 'X') -> numpy.ndarray:
    """
    Validate/convert sample weights (rows,) exactly as the core does (used by the Python layer).
    """
def _check_loss_finite(value: typing.SupportsFloat | typing.SupportsIndex, epoch: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    The training guard of the compiled step (RuntimeError for a non-finite batch loss, naming epoch and batch from 1; epoch < 0: a single step), for the module path's loop.
    """
def act_backward(kind: ActKind, param: typing.SupportsFloat | typing.SupportsIndex, grad_output: typing.Any, x: numpy.ndarray, a: numpy.ndarray, dtype: typing.Any) -> numpy.ndarray:
    ...
def act_forward(kind: ActKind, param: typing.SupportsFloat | typing.SupportsIndex, x: typing.Any, dtype: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray]:
    """
    (a = act(x), x as converted): backward reads both, so x is checked and converted once.
    """
def blas_info() -> str:
    ...
def clip_grad_norm(segments: collections.abc.Sequence[tuple[ParamArena, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, bool]], max_norm: typing.SupportsFloat | typing.SupportsIndex, error_if_nonfinite: bool = False) -> float:
    """
    torch.nn.utils.clip_grad_norm_ over the gradients of (arena, offset, numel, active) runs: one pass for the norm, one to scale; returns the norm before clipping.
    """
def cuda_available() -> bool:
    ...
def cuda_unavailable_reason() -> str:
    ...
def dropout_forward(x: typing.Any, p: typing.SupportsFloat | typing.SupportsIndex, state: DropoutState, dtype: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray]:
    ...
def epoch_seed(seed: typing.Any, epoch: typing.Any) -> int:
    """
    The shuffle seed of epoch `epoch` (0-based) of a run seeded with `seed` (ints, taken modulo 2**64): a hash of (seed, epoch) only, so a resumed run draws the same orders as an uninterrupted one.
    """
def get_batch_invariant() -> bool:
    ...
def get_check_finite() -> bool:
    ...
def get_num_threads() -> int:
    """
    The pinned count, else the count large GEMMs use.
    """
def linear_backward(grad_output: typing.Any, x: numpy.ndarray, weight: numpy.ndarray, dweight: typing.Any, dbias: typing.Any, need_dx: bool, transposed: bool, dtype: typing.Any) -> typing.Any:
    ...
def linear_forward(x: typing.Any, weight: numpy.ndarray, bias: typing.Any, transposed: bool, dtype: typing.Any, fixed_order: bool = False) -> tuple[numpy.ndarray, numpy.ndarray]:
    """
    z = x @ W.T + bias (and x as converted, kept for backward). fixed_order: the batch-invariant GEMM.
    """
def local_communicator() -> Communicator:
    """
    The communicator of a one-process job (rank 0 of 1).
    """
def loss_forward_backward(kind: LossKind | LossSpec, pred: typing.Any, target: typing.Any, dtype: typing.Any, sample_weight: typing.Any = None) -> tuple[float, numpy.ndarray]:
    """
    (mean loss, d loss / d pred) of a batch: `kind` a LossKind or LossSpec; with sample_weight (B,) the weighted mean sum(w v) / sum(w n) of mlpcore/loss.h (0, and a zero gradient, when that sum is 0).
    """
def maxout_backward(grad_output: typing.Any, idx: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], pieces: typing.SupportsInt | typing.SupportsIndex, dtype: typing.Any) -> numpy.ndarray:
    ...
def maxout_forward(x: typing.Any, pieces: typing.SupportsInt | typing.SupportsIndex, dtype: typing.Any) -> tuple[numpy.ndarray, numpy.typing.NDArray[numpy.int32]]:
    ...
def mpi_communicator(library: str, handle_bytes: typing.SupportsInt | typing.SupportsIndex, comm: int, float32: int, float64: int, op_sum: int, in_place: int) -> Communicator:
    """
    An MPI communicator over a library already loaded and initialised (mlpcore.distributed.init() builds it from mpi4py): library = that library or a module linked to it; the rest are handles of its ABI.
    """
def mul(a: typing.Any, b: numpy.ndarray, dtype: typing.Any) -> numpy.ndarray:
    ...
def num_threads_pinned() -> bool:
    """
    True after set_num_threads(n) or with OPENBLAS_NUM_THREADS set; False under the automatic policy.
    """
def op_backward(spec: ..., arena: typing.Any, grad_output: typing.Any, x: numpy.ndarray, y: numpy.ndarray, saved: numpy.ndarray, training: bool, dtype: typing.Any, need_dx: bool = True) -> typing.Any:
    ...
def op_forward(spec: ..., arena: typing.Any, x: typing.Any, training: bool, dtype: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.typing.NDArray[numpy.uint8]]:
    ...
def permutation(n: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    """
    The shuffling order Network.train_epoch uses for (n, seed): int64 (n,).
    """
def set_batch_invariant(enabled: bool) -> None:
    """
    Process-wide: predict, evaluate and eval-mode forward of CPU networks give every output row bitwise independent of its batch, the batch size and the thread count (a fixed-order GEMM instead of BLAS). Training is unaffected; CUDA networks ignore it.
    """
def set_check_finite(enabled: bool) -> None:
    ...
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex | None) -> None:
    """
    Pin n OpenBLAS threads for every GEMM; None: the automatic default (one thread for GEMMs too small to split, OpenBLAS's default count for larger ones).
    """
