"""Typed configuration with the paper's defaults, loaded and validated in one place.

Every knob is a dataclass field whose metadata says what values it accepts; `from_mapping` builds a config
from a plain dict (params.yaml) and fails on the first bad key with one line naming the key, what it got and
what is allowed. Stages never read YAML themselves.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar, get_type_hints

from .knobs import ConfigError, knob
from .seeds import SEED_MAX
from .strategies import STRATEGY_NAMES
from .strategies import enas as _enas
from .strategies import nao as _nao
from .strategies.enas import ENASConfig
from .strategies.evnas import EvNASConfig
from .strategies.nao import NAOConfig
from .strategies.rea import REAConfig


@dataclass
class RuntimeConfig:
    device: str = "auto"          # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N
    seed: int = knob(2, ge=0, le=SEED_MAX)  # every generator it reaches takes it (seeds.SEED_MAX)
    amp: bool = True              # bf16 autocast on CUDA; ignored on CPU
    channels_last: bool = True    # NHWC activations on CUDA; ignored on CPU
    deterministic: bool = False   # deterministic kernels on CUDA, no TF32 or autotuning: bit-exact repeats, slower
    fused_optimizer: bool = True  # fused SGD kernel on CUDA (one launch for all parameters); ignored on CPU
    compile: bool = False         # torch.compile the CNN evaluation network (first epoch pays the compilation)
    gpus: int = knob(1, ge=1, le=1024)  # processes of the search/evaluate stages (torchrun + DDP); 1: one process

    def check_consistency(self, prefix: str) -> None:
        """The device's spelling (whether that device exists is the stage's check, on the machine it runs on)."""
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"{prefix}device: got {self.device!r}; expected auto, cpu, cuda or cuda:N")


@dataclass
class DataConfig:
    root: str = "data/raw"                             # where raw downloads live (CIFAR-10 files, ...)
    train_portion: float = knob(0.8, gt=0.0, lt=1.0)  # share of the training set for shared weights; rest trains the policy


@dataclass
class SearchConfig:
    strategy: str = knob("ednas", choices=STRATEGY_NAMES)  # ednas_core/strategies; each reads its own section
    epochs: int = knob(300, ge=1)
    batch_size: int = knob(128, ge=1)           # child (shared weights) batch
    policy_batch_size: int = knob(128, ge=1)    # validation batch per policy step (one reward)
    layers: int = knob(8, ge=2)                 # cells of the search network, reductions at 1/3 and 2/3
    init_channels: int = knob(16, ge=2)
    alternate: str = knob("epoch", choices=("epoch", "step"))
    augment: bool = True                        # random crop + flip of the child's training images
    lr: float = knob(0.05, gt=0.0)              # child learning rate
    lr_min: float = knob(0.001, ge=0.0)
    lr_schedule: str = knob("cosine", choices=("cosine", "step"))
    lr_step_epochs: int = knob(10, ge=1)        # step schedule only: divide by 1/lr_step_gamma every N epochs
    lr_step_gamma: float = knob(0.1, gt=0.0, le=1.0)
    momentum: float = knob(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = knob(3e-4, ge=0.0)
    grad_clip: float = knob(5.0, gt=0.0)
    policy_lr: float = knob(3.5e-4, ge=0.0)
    policy_beta1: float = knob(0.5, ge=0.0, lt=1.0)
    policy_beta2: float = knob(0.999, ge=0.0, lt=1.0)
    policy_weight_decay: float = knob(1e-3, ge=0.0)
    policy_init_std: float = knob(1e-3, ge=0.0)
    baseline_decay: float = knob(0.99, ge=0.0, lt=1.0)
    entropy_weight: float = knob(0.0, ge=0.0)
    # the other strategies' own settings (only the section of search.strategy matters for a run; EDNAS's are
    # the policy_* keys above and random uses baseline_decay)
    enas: ENASConfig = field(default_factory=ENASConfig)
    evnas: EvNASConfig = field(default_factory=EvNASConfig)
    nao: NAOConfig = field(default_factory=NAOConfig)
    rea: REAConfig = field(default_factory=REAConfig)

    def check_consistency(self, prefix: str) -> None:
        check_nao_rounds(self.strategy, self.nao, self.epochs, prefix)


def check_nao_rounds(strategy: str, nao: NAOConfig, epochs: int, prefix: str) -> None:
    """Strategy nao scores its pool, trains its encoder-predictor-decoder and grows the pool at the end of every
    update_every-th epoch only: a schedule shorter than update_every would run no round at all and derive from an
    untrained predictor's ranking of the seed pool, a search that learned nothing. (The other strategies learn in
    every epoch.)"""
    if strategy == "nao" and nao.update_every > epochs:
        raise ConfigError(f"{prefix}nao.update_every: got {nao.update_every}; expected at most {prefix}epochs "
                          f"({epochs}): NAO scores its pool and trains its predictor only every update_every epochs, "
                          f"so this search would run no round; lower {prefix}nao.update_every or raise {prefix}epochs")


@dataclass
class DeriveConfig:
    samples: int = knob(100, ge=1)              # architectures sampled from the final policy
    batch_size: int = knob(128, ge=1)           # validation batch each candidate is scored on
    # best: highest reward of the candidates | argmax: the strategy's final architecture | queried (nb201 tabular
    # only): the best-validation cell among the search's own look-ups, NB201's protocol (no look-up beyond the budget)
    mode: str = knob("best", choices=("best", "argmax", "queried"))


@dataclass
class EvaluateConfig:
    genotype: str = "derived"                   # derived | paper-cifar10 | paper-imagenet | path to a genotype JSON
    epochs: int = knob(600, ge=1)
    batch_size: int = knob(128, ge=1)
    layers: int = knob(20, ge=3)
    init_channels: int = knob(36, ge=2)
    lr: float = knob(0.025, gt=0.0)
    lr_min: float = knob(0.0, ge=0.0)
    momentum: float = knob(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = knob(3e-4, ge=0.0)
    grad_clip: float = knob(5.0, gt=0.0)
    auxiliary_weight: float = knob(0.4, ge=0.0)  # 0 disables the auxiliary head
    drop_path: float = knob(0.2, ge=0.0, lt=1.0)
    augment: bool = True                         # random crop + flip
    cutout: int = knob(16, ge=0)                 # 0 disables cutout (applied only with augment)


@dataclass
class RNNSearchConfig:
    """The PTB search (paper 4.3, DARTS's recurrent search settings); policy fields mirror SearchConfig."""

    strategy: str = knob("ednas", choices=STRATEGY_NAMES)  # ednas_core/strategies; each reads its own section
    epochs: int = knob(150, ge=1)
    batch_size: int = knob(256, ge=1)           # child batch (columns of the training stream)
    policy_batch_size: int = knob(256, ge=1)    # columns of the validation stream; one bptt window per reward (DARTS: 256)
    bptt: int = knob(35, ge=1)
    variable_bptt: bool = True                  # AWD-LSTM's random child window lengths (lr scaled by length / bptt)
    emb: int = knob(300, ge=1)                  # embedding size (= hidden: the decoder is tied to the embedding)
    hidden: int = knob(300, ge=1)
    alternate: str = knob("epoch", choices=("epoch", "step"))
    lr: float = knob(20.0, gt=0.0)              # child SGD learning rate (constant)
    momentum: float = knob(0.0, ge=0.0, lt=1.0)
    weight_decay: float = knob(5e-7, ge=0.0)
    grad_clip: float = knob(0.25, gt=0.0)
    dropout: float = knob(0.75, ge=0.0, lt=1.0)   # locked dropout on the cell output
    dropouth: float = knob(0.25, ge=0.0, lt=1.0)  # mask on h_{t-1} (and node inputs) inside the cell
    dropoutx: float = knob(0.75, ge=0.0, lt=1.0)  # mask on x_t inside the cell
    dropouti: float = knob(0.2, ge=0.0, lt=1.0)   # locked dropout on the embeddings
    dropoute: float = knob(0.0, ge=0.0, lt=1.0)   # whole-word embedding dropout
    ar_alpha: float = knob(0.0, ge=0.0)           # activation regularisation on the dropped outputs (DARTS: 0)
    tar_beta: float = knob(1e-3, ge=0.0)          # temporal activation regularisation (DARTS: 1e-3)
    policy_lr: float = knob(3e-3, ge=0.0)
    policy_beta1: float = knob(0.5, ge=0.0, lt=1.0)
    policy_beta2: float = knob(0.999, ge=0.0, lt=1.0)
    policy_weight_decay: float = knob(1e-3, ge=0.0)
    policy_init_std: float = knob(1e-3, ge=0.0)
    baseline_decay: float = knob(0.99, ge=0.0, lt=1.0)
    entropy_weight: float = knob(0.0, ge=0.0)
    reward_c: float = knob(80.0, gt=0.0)         # reward = reward_c / validation perplexity
    enas: ENASConfig = field(default_factory=_enas.rnn_defaults)   # ENAS's PTB search script
    evnas: EvNASConfig = field(default_factory=EvNASConfig)        # EvNAS searched CNN cells only
    nao: NAOConfig = field(default_factory=_nao.rnn_defaults)      # NAO-WS's PTB search script
    rea: REAConfig = field(default_factory=REAConfig)              # NAS-Bench-201's REA settings

    def check_consistency(self, prefix: str) -> None:
        check_nao_rounds(self.strategy, self.nao, self.epochs, prefix)


@dataclass
class RNNEvaluateConfig:
    """Training a recurrent genotype on PTB from scratch (paper 4.3): SGD, then averaged SGD (AWD-LSTM trigger)."""

    genotype: str = "derived"                   # derived | paper-ptb | path to a genotype JSON
    epochs: int = knob(1600, ge=1)
    batch_size: int = knob(64, ge=1)
    eval_batch_size: int = knob(10, ge=1)       # validation and test columns (DARTS)
    bptt: int = knob(35, ge=1)
    variable_bptt: bool = True                  # AWD-LSTM's random window lengths (lr scaled by length / bptt)
    emb: int = knob(850, ge=1)
    hidden: int = knob(850, ge=1)
    lr: float = knob(20.0, gt=0.0)
    weight_decay: float = knob(8e-7, ge=0.0)
    grad_clip: float = knob(0.25, gt=0.0)
    dropout: float = knob(0.75, ge=0.0, lt=1.0)
    dropouth: float = knob(0.25, ge=0.0, lt=1.0)
    dropoutx: float = knob(0.75, ge=0.0, lt=1.0)
    dropouti: float = knob(0.2, ge=0.0, lt=1.0)
    dropoute: float = knob(0.1, ge=0.0, lt=1.0)
    ar_alpha: float = knob(0.0, ge=0.0)           # activation regularisation (DARTS: 0)
    tar_beta: float = knob(1e-3, ge=0.0)          # temporal activation regularisation (DARTS: 1e-3)
    test_batch_size: int = knob(1, ge=1)        # columns of the final test pass (DARTS: 1)
    nonmono: int = knob(5, ge=1)                # switch to ASGD when valid loss > best of all but the last N epochs


@dataclass
class NB201SearchConfig(SearchConfig):
    """The NAS-Bench-201 search: `tabular` looks every reward up in the benchmark's table (no network; a budget
    of queries), `weight_sharing` trains the NB201 supernet on CIFAR-10 with the search loop (init_channels =
    the benchmark's C, layers = its N cells per stage) and measures how well the shared weights rank cells."""

    mode: str = knob("tabular", choices=("tabular", "weight_sharing"))
    budget: int = knob(150, ge=1)               # tabular: rewards (table look-ups) of the whole search
    queries_per_epoch: int = knob(10, ge=1)     # tabular: rewards per epoch (one MLflow step); epochs = budget / this
    rank_every: int = knob(5, ge=1)             # weight_sharing: rank the probe cells every N epochs (and at the last)
    rank_samples: int = knob(200, ge=2)         # weight_sharing: fixed uniform sample of cells whose ranking is measured
    rank_batches: int = knob(2, ge=1)           # weight_sharing: validation batches each probe cell is scored on

    def check_consistency(self, prefix: str) -> None:
        """Weight sharing: SearchConfig's. Tabular: a budget in which the strategy makes no learning step at all
        (its look-ups would be a random search's under its name) is refused with the key; a study of small
        budgets (python -m tools.nb201_study --budget) runs them anyway. tests/test_tabular.py counts the steps."""
        if self.mode == "weight_sharing":
            super().check_consistency(prefix)
            return
        first_step = {  # look-ups up to the strategy's first learning step (NAO's first round: below)
            "enas": (self.enas.num_aggregate, f"{prefix}enas.num_aggregate",
                     "the rewards of its controller's first Adam step"),
            "evnas": (self.evnas.population_size, f"{prefix}evnas.population_size",
                      "the first generation scored, then bred"),
            "rea": (self.rea.population_size + 1, f"{prefix}rea.population_size",
                    "the random population scored, then the first mutant of a selected parent")}
        if self.strategy in first_step and self.budget < first_step[self.strategy][0]:
            needed, key, why = first_step[self.strategy]
            raise ConfigError(f"{prefix}budget: got {self.budget}; strategy {self.strategy} learns nothing in fewer "
                              f"than {needed} look-ups ({why}); raise {prefix}budget or lower {key}")
        if self.strategy == "nao":  # tabular: NAO scores its pool over several epochs (ednas_core/tabular.py)
            scored, epochs, u = 0, tabular_epochs(self.budget, self.queries_per_epoch), self.nao.update_every
            for _ in range(u, epochs + 1, u):  # at most queries_per_epoch look-ups on every update_every-th epoch
                scored += min(self.queries_per_epoch, self.budget - scored)
            if scored < self.nao.seed_architectures:
                raise ConfigError(
                    f"{prefix}nao.seed_architectures: got {self.nao.seed_architectures}; expected at most {scored}, "
                    f"the look-ups NAO gets in this tabular search ({prefix}budget {self.budget}, at most "
                    f"{prefix}queries_per_epoch {self.queries_per_epoch} on every {prefix}nao.update_every-th "
                    f"({u}) epoch): no round would score the whole pool and train the predictor; lower "
                    f"{prefix}nao.seed_architectures or {prefix}nao.update_every, or raise {prefix}budget")



def tabular_epochs(budget: int, queries_per_epoch: int) -> int:
    """Epochs of a tabular NB201 search (ednas_core/tabular.py): queries_per_epoch look-ups each, the rest of the
    budget in the last."""
    return -(-budget // queries_per_epoch)

@dataclass
class NB201EvaluateConfig:
    """NAS-Bench-201 evaluation: the table look-up of the cell's trained accuracies, and with train: true also
    training the cell here with the benchmark's 200-epoch recipe (train_nb201.py)."""

    genotype: str = "derived"   # derived | an NB201 architecture string |op~0|+|...| | path to a genotype JSON
    train: bool = False         # also train the cell on CIFAR-10 (train + test split as the table's cifar10 column)
    epochs: int = knob(200, ge=1)
    batch_size: int = knob(256, ge=1)
    init_channels: int = knob(16, ge=1)          # C of the benchmark's skeleton
    layers: int = knob(5, ge=1)                  # N: cells per stage
    lr: float = knob(0.1, gt=0.0)                # SGD, cosine to lr_min
    lr_min: float = knob(0.0, ge=0.0)
    momentum: float = knob(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = knob(5e-4, ge=0.0)
    augment: bool = True                         # random crop + flip


@dataclass
class ImageNetSearchConfig(SearchConfig):
    """The direct ImageNet search (paper section 4.2): the search network behind DARTS's ImageNet stems (224x224
    inputs reduced to 28x28), the paper's 1M / 0.2M split of the training images instead of data.train_portion,
    images decoded from their files by worker processes."""

    train_images: int = knob(1_000_000, ge=1)   # training images that train the shared weights (paper: 1M)
    policy_images: int = knob(200_000, ge=1)    # other training images that train the policy (paper: 0.2M)
    image_size: int = knob(224, ge=32)          # side of the crops fed to the network (the stems divide it by 8)
    workers: int = knob(8, ge=0)                # decoding processes per data loader and process (0: in the process)
    on_unreadable: str = knob("skip", choices=("skip", "stop"))  # skip (counted, logged) or stop at a bad image


@dataclass
class ImageNetEvaluateConfig:
    """Training a CNN genotype on ImageNet in the mobile setting (paper section 4.2, DARTS's train_imagenet.py):
    14 cells, C=48, auxiliary head, label smoothing, SGD with 0.97 decay per epoch after a linear warm-up; top-1
    and top-5 error on the 50,000 validation images."""

    genotype: str = "derived"                   # derived | paper-imagenet | paper-cifar10 | path to a genotype JSON
    epochs: int = knob(250, ge=1)
    batch_size: int = knob(200, ge=1)           # per process; global batch = batch_size x runtime.gpus
    scale_lr: bool = True                       # lr x runtime.gpus with the global batch (linear scaling rule)
    layers: int = knob(14, ge=3)
    init_channels: int = knob(48, ge=2)
    lr: float = knob(0.1, gt=0.0)               # for batch_size on one process
    lr_gamma: float = knob(0.97, gt=0.0, le=1.0)  # multiplied in every epoch
    warmup_epochs: int = knob(5, ge=0)          # lr x (epoch + 1) / warmup_epochs in the first epochs (0: none)
    momentum: float = knob(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = knob(3e-5, ge=0.0)
    grad_clip: float = knob(5.0, gt=0.0)
    label_smoothing: float = knob(0.1, ge=0.0, lt=1.0)
    auxiliary_weight: float = knob(0.4, ge=0.0)  # 0 disables the auxiliary head
    drop_path: float = knob(0.0, ge=0.0, lt=1.0)  # DARTS's ImageNet recipe: none
    image_size: int = knob(224, ge=32)          # training crops and validation centre crops
    resize: int = knob(256, ge=32)              # validation: shorter side resized to this, then centre-cropped
    workers: int = knob(8, ge=0)                # decoding processes per data loader and process
    on_unreadable: str = knob("skip", choices=("skip", "stop"))

    def check_consistency(self, prefix: str) -> None:
        if self.resize < self.image_size:
            raise ConfigError(f"{prefix}resize: {self.resize} is smaller than {prefix}image_size {self.image_size}; "
                              "the validation centre crop needs resize >= image_size (DARTS: 256 and 224)")


@dataclass
class ImageNetTaskConfig:
    """The per-task sections of the direct ImageNet search and its mobile-setting evaluation."""

    search: ImageNetSearchConfig = field(default_factory=lambda: imagenet_search_defaults())
    derive: DeriveConfig = field(default_factory=lambda: DeriveConfig(samples=100, batch_size=50))
    evaluate: ImageNetEvaluateConfig = field(default_factory=ImageNetEvaluateConfig)


def imagenet_search_defaults() -> ImageNetSearchConfig:
    """EDNAS_SPEC.md section 4: SGD without Nesterov, lr 0.05 divided by 10 every 10 epochs, child batch 200,
    policy batch 50, 50 epochs; the rest as the CIFAR-10 search."""
    return ImageNetSearchConfig(epochs=50, batch_size=200, policy_batch_size=50, lr=0.05, lr_min=0.0, lr_schedule="step",
                                lr_step_epochs=10, lr_step_gamma=0.1, nesterov=False)


# the tasks params.yaml accepts; each is a Task registered under that name in ednas_core/tasks (kept apart so that
# reading params imports no network code; tests/tasks/test_tasks_dispatch.py checks that both name the same tasks)
TASKS: tuple[str, ...] = ("cifar10", "digits", "ptb", "markov", "nb201", "imagenet")


def task_prefix(task: str) -> str:
    """Where a task's sections live in params.yaml: '' for CIFAR-10 (search.lr), 'digits.' for digits."""
    return "" if task == "cifar10" else f"{task}."


@dataclass
class TaskConfig:
    """The per-task sections: what search, derive and evaluate do for one task."""

    search: SearchConfig = field(default_factory=SearchConfig)
    derive: DeriveConfig = field(default_factory=DeriveConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def demo_nao(base: NAOConfig, update_every: int) -> NAOConfig:
    """NAO-WS's pool and controller schedule scaled to a demo of a few minutes (a fifth of the pool, a tenth
    of the controller's passes), scoring and growing the pool every `update_every` epochs."""
    return dataclasses.replace(base, update_every=update_every, seed_architectures=200, new_architectures=80,
                               random_architectures=10, top_k=20, epochs=100)


def digits_defaults() -> TaskConfig:
    """The embedded CPU demo: scikit-learn's 8x8 digits, a small network, minutes on 2 cores."""
    return TaskConfig(
        search=SearchConfig(epochs=15, batch_size=64, policy_batch_size=64, layers=3, init_channels=16,
                            augment=False, lr=0.1, lr_min=0.001, policy_lr=0.1,
                            evnas=EvNASConfig(population_size=20, tournament_size=4), nao=demo_nao(NAOConfig(), 5)),
        derive=DeriveConfig(samples=100, batch_size=128),
        evaluate=EvaluateConfig(epochs=20, batch_size=64, layers=5, init_channels=12, lr=0.05,
                                drop_path=0.1, augment=False, cutout=0),
    )


@dataclass
class TextTaskConfig:
    """The per-task sections of a language-modelling task (recurrent cells)."""

    search: RNNSearchConfig = field(default_factory=RNNSearchConfig)
    derive: DeriveConfig = field(default_factory=lambda: DeriveConfig(samples=100, batch_size=64))
    evaluate: RNNEvaluateConfig = field(default_factory=RNNEvaluateConfig)


def markov_defaults() -> TextTaskConfig:
    """The embedded text demo: a generated Markov-chain corpus (50 words), small recurrent networks, CPU."""
    return TextTaskConfig(
        search=RNNSearchConfig(epochs=8, batch_size=32, policy_batch_size=32, bptt=20, emb=32, hidden=32,
                               policy_lr=0.03,
                               dropout=0.1, dropouth=0.05, dropoutx=0.1, dropouti=0.05, dropoute=0.0,
                               enas=dataclasses.replace(_enas.rnn_defaults(), train_steps=30),
                               evnas=EvNASConfig(population_size=20, tournament_size=4),
                               nao=demo_nao(_nao.rnn_defaults(), 4)),
        derive=DeriveConfig(samples=100, batch_size=32),
        evaluate=RNNEvaluateConfig(epochs=6, batch_size=32, eval_batch_size=32, bptt=20, emb=48, hidden=48,
                                   dropout=0.1, dropouth=0.05, dropoutx=0.1, dropouti=0.05, dropoute=0.0),
    )


@dataclass
class NB201TaskConfig:
    """The per-task sections of the NAS-Bench-201 task."""

    search: NB201SearchConfig = field(default_factory=lambda: nb201_search_defaults())
    derive: DeriveConfig = field(default_factory=lambda: DeriveConfig(samples=100, batch_size=128, mode="queried"))
    evaluate: NB201EvaluateConfig = field(default_factory=NB201EvaluateConfig)


def nb201_search_defaults() -> NB201SearchConfig:
    """NAS-Bench-201's settings: the search skeleton C=16, N=5 (the benchmark's), the child SGD of its
    weight-sharing baselines, and the REINFORCE learning rate and EMA of NATS-Bench's reinforce.py for EDNAS."""
    return NB201SearchConfig(
        epochs=100, batch_size=64, policy_batch_size=64, layers=5, init_channels=16, augment=True,
        lr=0.025, lr_min=0.001, nesterov=True, weight_decay=5e-4, grad_clip=5.0,
        policy_lr=0.01, baseline_decay=0.9,
        enas=dataclasses.replace(_enas.nb201_defaults(), train_steps=1),
        evnas=EvNASConfig(population_size=10, tournament_size=3),
        nao=dataclasses.replace(NAOConfig(), update_every=1, seed_architectures=50, new_architectures=25,
                                random_architectures=5, top_k=20, epochs=100))


@dataclass
class TrackingConfig:
    policy_every: int = knob(1, ge=1)     # log the policy vectors (softmax JSON) to MLflow every N epochs
    heatmap_every: int = knob(10, ge=1)   # log the policy heatmap PNG to MLflow every N epochs (and at the last)
    progress: str = knob("auto", choices=("auto", "bar", "lines", "off"))  # auto: bar in a terminal, lines in CI


@dataclass
class Params:
    """params.yaml: the CIFAR-10 sections at the top level (search.lr is the CIFAR-10 child learning rate),
    other tasks' sections under their name (digits.search.lr, ...)."""

    task: str = knob("cifar10", choices=TASKS)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    derive: DeriveConfig = field(default_factory=DeriveConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    digits: TaskConfig = field(default_factory=digits_defaults)
    ptb: TextTaskConfig = field(default_factory=TextTaskConfig)
    markov: TextTaskConfig = field(default_factory=markov_defaults)
    nb201: NB201TaskConfig = field(default_factory=NB201TaskConfig)
    imagenet: ImageNetTaskConfig = field(default_factory=ImageNetTaskConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def check_consistency(self, prefix: str) -> None:
        """derive.mode queried picks among a tabular search's own look-ups: nb201 in tabular mode only. (Several
        processes, runtime.gpus, train every task: the text tasks shard the columns of their token streams.)"""
        for task in TASKS:
            where = task_prefix(task)
            config = TaskConfig(self.search, self.derive, self.evaluate) if task == "cifar10" else getattr(self, task)
            tabular = task == "nb201" and config.search.mode == "tabular"
            if config.derive.mode == "queried" and not tabular:
                raise ConfigError(f"{prefix}{where}derive.mode: queried picks among the table look-ups of a tabular "
                                  f"search (nb201.search.mode: tabular); use best or argmax here")

    def task_config(self) -> TaskConfig | TextTaskConfig | NB201TaskConfig | ImageNetTaskConfig:
        if self.task == "cifar10":
            return TaskConfig(self.search, self.derive, self.evaluate)
        return getattr(self, self.task)

    def task_prefix(self) -> str:
        """Where the selected task's sections live in params.yaml ('' for CIFAR-10, 'digits.' for digits)."""
        return task_prefix(self.task)

    @staticmethod
    def task_prefixes() -> tuple[str, ...]:
        """Where every task's sections live in params.yaml."""
        return tuple(task_prefix(t) for t in TASKS)


T = TypeVar("T")


def _describe(meta: Mapping[str, Any], kind: type) -> str:
    if "choices" in meta:
        return "one of " + ", ".join(map(str, meta["choices"]))
    bounds = [f"{sym} {meta[k] if isinstance(meta[k], int) else format(meta[k], 'g')}"
              for k, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if k in meta]
    noun = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]
    return noun + (" " + " and ".join(bounds) if bounds else "")


def _hint(value: Any, kind: type) -> str:
    """Why a value that looks right is refused: params.yaml is YAML 1.2 (as DVC reads it), where yes/no/on/off
    are strings, and a quoted number is a string."""
    if not isinstance(value, str):
        finite = kind is not float or not isinstance(value, float) or math.isfinite(value)
        return "" if finite else " (finite: nan and inf are refused)"
    unquote = " (write it without quotes)"
    if kind is bool:
        word = value.strip().lower()
        if word in ("true", "false"):
            return unquote
        return " (params.yaml is YAML 1.2, as DVC reads it: yes/no/on/off are strings)" if word in (
            "yes", "no", "on", "off", "y", "n") else ""
    if kind in (int, float):
        try:
            number = float(value)
        except ValueError:
            return ""
        return unquote if math.isfinite(number) else ""
    return ""


def _coerce(value: Any, kind: type, key: str, meta: Mapping[str, Any]) -> Any:
    """`value` if it has type `kind` (an int is a float too; a bool is not a number; a string is never a bool
    or a number) and lies within `meta`'s bounds or choices, else a one-line ConfigError."""
    bad = ConfigError(f"{key}: got {value!r}; expected {_describe(meta, kind)}{_hint(value, kind)}")
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            value = float(value)
        except OverflowError:  # an int beyond any float
            raise bad from None
        if not math.isfinite(value):
            raise bad
    elif kind is str and not isinstance(value, str):
        raise bad
    checks = {"gt": lambda b: value > b, "ge": lambda b: value >= b, "lt": lambda b: value < b,
              "le": lambda b: value <= b, "choices": lambda c: value in c}
    if not all(check(meta[name]) for name, check in checks.items() if name in meta):
        raise bad
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "", strict: bool = True) -> T:
    """Builds dataclass `cls` from `data`. strict: every key must be present (params.yaml holds every knob).
    Unknown keys are always an error (a typo must not silently fall back to a default). A dataclass with a
    `check_consistency(prefix)` method gets it called: one-line ConfigError for values that conflict."""
    data = {} if data is None else data
    where = prefix.rstrip(".") or "params"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        guess = f"did you mean {prefix}{close[0]}? " if close else ""
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; {guess}known keys of {where}: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if strict:
                raise ConfigError(f"{key}: missing; add it to params.yaml (default {f.default!r})"
                                  if f.default is not dataclasses.MISSING else f"{key}: missing")
            continue
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_mapping(kind, data[name], key + ".", strict)
        else:
            values[name] = _coerce(data[name], kind, key, f.metadata)
    config = cls(**values)
    check = getattr(config, "check_consistency", None)
    if check is not None:  # checks across keys (e.g. a tournament no larger than the population)
        check(prefix)
    return config


def to_mapping(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_params(data: Mapping[str, Any]) -> Params:
    """params.yaml contents -> Params; every key must be present and valid (one-line ConfigError otherwise)."""
    return from_mapping(Params, data, strict=True)


_ABSENT = object()


def changed_keys(now: Mapping[str, Any], before: Mapping[str, Any]) -> list[str]:
    """Dotted keys added, removed or changed between two flat versions of params.yaml, in the order of `now`."""
    return [k for k in now if before.get(k, _ABSENT) != now[k]] + [k for k in before if k not in now]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'search': {'lr': 0.05}} -> {'search.lr': 0.05} (MLflow params, change detection)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

