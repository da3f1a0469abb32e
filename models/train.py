"""Training: the reference GRU4Rec recipe, and named hyperparameter presets.

Session-parallel mini-batches (see :func:`models.data.session_parallel_schedule`); each step is one
event per row, backpropagated through that step only, scored against the batch's targets plus
``n_sample`` shared negatives; Adagrad with momentum, row-sparse on the item matrices.
"""

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.data import EncodedSessions, EventLog, build_vocabulary, encode_sessions, item_counts
from models.data import session_parallel_schedule as plan_batches
from models.losses import BPRMax, SampledCrossEntropy
from models.model import GRU4Rec, ModelConfig, extend_items
from models.optim import AdagradMomentum
from models.sampling import NegativeSampler
from models.training_step import TrainingStep

LOSSES = ("cross-entropy", "bpr-max")


class TrainingError(RuntimeError):
    """Training diverged (the loss became NaN or infinite)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; the defaults are the reference's best settings for RSC15 (preset ``rsc15``)."""

    loss: str = "cross-entropy"
    hidden: int = 100
    n_layers: int = 1
    embedding: int = 0  # 0: shared embedding
    batch_size: int = 32
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.4
    learning_rate: float = 0.2
    momentum: float = 0.2
    n_sample: int = 2048
    sample_alpha: float = 0.5
    logq: float = 1.0  # cross-entropy only
    bpreg: float = 0.0  # bpr-max only
    elu_param: float = 0.0  # bpr-max only
    epochs: int = 10
    lr_decay: float = 1.0  # the learning rate of epoch e is learning_rate * lr_decay ** (e - 1)
    # 0: the model is the last epoch's weights; e >= 1: the mean of the weights at the ends of epochs
    # e to the last (a training run shorter than e keeps its last epoch's).
    average_from: int = 0
    seed: int = 42
    seen_bonus: float = 0.0  # not trained: the model's ModelConfig.seen_bonus, fitted by tune
    seen_decay: float = 1.0  # the same for ModelConfig.seen_decay

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.batch_size < 1 or self.epochs < 0 or self.n_sample < 0:
            raise ValueError("batch_size must be >= 1, epochs >= 0 and n_sample >= 0")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not (isinstance(self.average_from, int) and self.average_from >= 0):
            raise ValueError(f"average_from must be an integer >= 0, got {self.average_from!r}")

    def model_config(self, n_items: int) -> ModelConfig:
        return ModelConfig(
            n_items=n_items,
            hidden=self.hidden,
            n_layers=self.n_layers,
            embedding=self.embedding,
            dropout_embed=self.dropout_embed,
            dropout_hidden=self.dropout_hidden,
            seen_bonus=self.seen_bonus,
            seen_decay=self.seen_decay,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, TrainConfig] = {
    "rsc15": TrainConfig(),
    # The reference's best BPR-max settings (tuned on Retailrocket).
    "bpr-max": TrainConfig(
        loss="bpr-max",
        hidden=224,
        batch_size=80,
        dropout_embed=0.5,
        dropout_hidden=0.05,
        learning_rate=0.05,
        momentum=0.4,
        sample_alpha=0.4,
        logq=0.0,
        bpreg=1.95,
        elu_param=0.5,
    ),
}


@dataclass
class TrainResult:
    model: GRU4Rec  # in eval mode
    item_ids: list[str]
    config: TrainConfig
    epoch_losses: list[float]  # mean loss per predicted event
    epoch_seconds: list[float]  # training time until the end of each epoch, callbacks excluded
    epoch_cpu_seconds: list[float]  # the same in CPU time of this process (less affected by other load)
    events_per_epoch: int  # predicted events per epoch


@dataclass(frozen=True)
class EpochEnd:
    """What an epoch callback sees: the model (in eval mode) after ``epoch`` (1-based), and figures."""

    epoch: int
    epochs: int  # as configured
    model: GRU4Rec
    item_ids: list[str]
    loss: float  # mean loss per predicted event of this epoch
    seconds: float  # training time so far, callbacks excluded
    events_per_epoch: int

    @property
    def events_per_second(self) -> float:
        return self.events_per_epoch * self.epoch / self.seconds if self.seconds > 0 else 0.0


# Returns True to stop training after this epoch (e.g. early stopping); None or False goes on.
EpochCallback = Callable[[EpochEnd], bool | None]


def train_model(
    log: EventLog,
    config: TrainConfig,
    *,
    initial: tuple[GRU4Rec, Sequence[str]] | None = None,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
    threads: int | None = 1,
) -> TrainResult:
    """Train on ``log``. Deterministic on CPU for a given ``config.seed`` and thread count.

    ``initial`` warm-starts from a trained model and its vocabulary: its items keep their indices
    and weights, items new in ``log`` are appended with fresh rows. ``on_epoch_end(EpochEnd)`` runs
    after each epoch with the model in eval mode; its time is not counted as training, and training
    stops there if it returns True.
    ``threads`` sets torch's intra-op threads while training (a process-wide setting, restored
    afterwards; None leaves it alone): one thread is fastest for these small operations.
    """
    item_ids = build_vocabulary(log, base=initial[1] if initial else ())
    sessions = encode_sessions(log, {item: i for i, item in enumerate(item_ids)})
    counts = torch.from_numpy(item_counts(sessions, len(item_ids)))
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(sessions, item_ids, counts, config, initial, progress, on_epoch_end)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    sessions: EncodedSessions,
    item_ids: list[str],
    counts: Tensor,
    config: TrainConfig,
    initial: tuple[GRU4Rec, Sequence[str]] | None,
    progress: bool,
    on_epoch_end: EpochCallback | None,
) -> TrainResult:
    init_generator = torch.Generator().manual_seed(config.seed)
    model = _build_model(config, len(item_ids), initial, init_generator)
    trainer = _Trainer(model, config, sessions, counts)
    average = WeightAverage(model, config.average_from)
    losses, seconds, cpu_seconds, elapsed, cpu_elapsed = [], [], [], 0.0, 0.0
    for epoch in range(1, config.epochs + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        trainer.optimizer.lr = config.learning_rate * config.lr_decay ** (epoch - 1)
        losses.append(trainer.run_epoch(f"epoch {epoch}/{config.epochs}", progress))
        average.add(epoch)
        elapsed += time.perf_counter() - started
        cpu_elapsed += time.process_time() - cpu_started
        seconds.append(elapsed)
        cpu_seconds.append(cpu_elapsed)
        if on_epoch_end is not None:
            end = EpochEnd(
                epoch, config.epochs, average.model(), item_ids, losses[-1], elapsed, trainer.events_per_epoch
            )
            if on_epoch_end(end):
                break
    served = average.model()
    return TrainResult(served, item_ids, config, losses, seconds, cpu_seconds, trainer.events_per_epoch)


class WeightAverage:
    """The mean of a model's weights at the ends of epochs ``first`` on (0: none, the weights as they
    are). On retailrocket (reference parameters, 10 epochs) the mean of epochs 2-10 ranks better than
    any single epoch's weights: test Recall@20 0.6196 against 0.6163 at best, with the seen bonus 1;
    later starts gain less (5-10: 0.6172)."""

    def __init__(self, model: GRU4Rec, first: int) -> None:
        self.trained, self.first = model, first
        self.sums: dict[str, Tensor] = {}
        self.epochs = 0

    @torch.no_grad()
    def add(self, epoch: int) -> None:
        if not self.first or epoch < self.first:
            return
        for name, value in self.trained.state_dict().items():
            if name in self.sums:
                self.sums[name] += value
            else:
                self.sums[name] = value.clone()
        self.epochs += 1

    def model(self) -> GRU4Rec:
        """In eval mode: the trained model itself, or a copy holding the mean weights."""
        self.trained.eval()
        if not self.epochs:
            return self.trained
        averaged = copy.deepcopy(self.trained)
        averaged.load_state_dict({name: total / self.epochs for name, total in self.sums.items()})
        return averaged


def _build_model(
    config: TrainConfig,
    n_items: int,
    initial: tuple[GRU4Rec, Sequence[str]] | None,
    generator: torch.Generator,
) -> GRU4Rec:
    model_config = config.model_config(n_items)
    if initial is None:
        return GRU4Rec(model_config, generator)
    base = initial[0].config
    shape = ("hidden", "n_layers", "embedding", "n_event_types")
    if any(getattr(base, f) != getattr(model_config, f) for f in shape):
        raise ValueError(f"warm start needs the same architecture: {base} vs {model_config}")
    model = extend_items(initial[0], n_items, generator)
    model.config = model_config  # dropout rates come from this run's config
    return model


class _Trainer:
    """Everything one epoch needs, built once: batch plan, sampler, training step, optimiser."""

    def __init__(self, model: GRU4Rec, config: TrainConfig, sessions: EncodedSessions, counts: Tensor):
        self.model, self.config = model, config
        schedule = plan_batches(sessions.offsets, config.batch_size)
        if schedule.n_steps == 0:
            raise ValueError("no session has two events of known items: nothing to train on")
        inputs = np.maximum(schedule.inputs, 0)  # idle rows are never read; any valid position will do
        self.inputs = torch.from_numpy(sessions.items[inputs])
        self.targets = torch.from_numpy(sessions.items[inputs + 1])
        self.event_types = None  # click-only data skips the (zero) click vectors altogether
        if sessions.has_event_types:
            self.event_types = torch.from_numpy(sessions.event_types[inputs])
        self.resets = torch.from_numpy(schedule.resets).unsqueeze(-1).unsqueeze(-1)
        self.reset_steps = set(np.flatnonzero(schedule.resets.any(axis=1)).tolist())
        self.n_active = schedule.n_active.tolist()
        self.events_per_epoch = int(schedule.n_active.sum())
        sampler_generator = torch.Generator().manual_seed(config.seed + 1)
        self.sampler = (
            NegativeSampler(counts, config.n_sample, config.sample_alpha, sampler_generator)
            if config.n_sample > 0
            else None
        )
        loss = (
            SampledCrossEntropy(counts, config.sample_alpha, config.logq)
            if config.loss == "cross-entropy"
            else BPRMax(config.bpreg, config.elu_param)
        )
        dropout_generator = torch.Generator().manual_seed(config.seed + 2)
        self.training_step = TrainingStep(model, loss, config.batch_size, dropout_generator)
        self.optimizer = AdagradMomentum(model.parameters(), config.learning_rate, config.momentum)
        self.no_negatives = torch.empty(0, dtype=torch.int64)

    def run_epoch(self, description: str, progress: bool) -> float:
        model, batch_size = self.model, self.config.batch_size
        model.train()
        hidden = model.zero_state(self.n_active[0])
        total_loss, total_events = 0.0, 0
        # disable=None: tqdm draws only on a terminal, so a log file gets no carriage-return updates.
        bar = tqdm(
            total=self.events_per_epoch,
            desc=description,
            unit="ev",
            disable=None if progress else True,
            mininterval=1.0,
            leave=True,
        )
        for t, n in enumerate(self.n_active):
            if self.sampler is None and n < 2:
                break  # in-batch negatives need another row
            value, hidden = self.step(t, n, hidden)
            if not math.isfinite(value):
                bar.close()
                raise TrainingError(f"{description}: loss became {value} at step {t}")
            total_loss += value * batch_size
            total_events += n
            bar.update(n)
            if t % 200 == 0:
                bar.set_postfix(loss=f"{total_loss / total_events:.4f}", refresh=False)
        bar.set_postfix(loss=f"{total_loss / max(total_events, 1):.4f}")
        bar.close()
        return total_loss / max(total_events, 1)

    def step(self, t: int, n: int, hidden: Tensor) -> tuple[float, Tensor]:
        """Train on step ``t`` of the plan (its first ``n`` rows); returns the loss and the next state."""
        hidden = hidden[:n]
        if t in self.reset_steps:
            hidden = hidden.masked_fill(self.resets[t, :n], 0.0)
        negatives = self.sampler() if self.sampler is not None else self.no_negatives
        event_types = None if self.event_types is None else self.event_types[t, :n]
        self.optimizer.zero_grad()
        result = self.training_step(self.inputs[t, :n], event_types, hidden, self.targets[t, :n], negatives)
        self.optimizer.step(result.rows)
        return result.loss.item(), result.hidden
