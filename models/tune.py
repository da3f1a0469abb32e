"""Hyperparameter search with Optuna on a validation split carved from the training data by time.

Each trial trains on the earlier sessions with parameters the sampler (TPE) suggests and, after every
epoch, measures the validation metric on the last sessions with each seen bonus of
:data:`~models.evaluate.SEEN_BONUS_GRID` and each decay of :data:`~models.evaluate.SEEN_DECAY_GRID`
(fitted, not sampled: one pass ranks with all of them) and keeps the best: training stops early when
the metric has not improved for ``patience`` epochs or when Optuna's median rule prunes the trial. A trial's
value is its best epoch's metric, and that epoch count goes into the preset. When the time budget
is spent, a running trial stops after its current epoch and is kept as pruned, marked as cut by the
budget: its best epoch still counts for the preset if nothing better completed, and the next run of
the study trains it again in full. The study lives in SQLite, so running again with the same data
and options resumes it. The test file is never read here.
"""

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from models.data import EventLog, split_last_sessions
from models.evaluate import SEEN_BONUS_GRID, SEEN_DECAY_GRID, SeenBonus, evaluate_seen_bonuses
from models.train import LOSSES, EpochEnd, TrainConfig, TrainingError, train_model

METRICS = ("recall@20+mrr@20", "recall@20", "mrr@20")
# Weight averaging (TrainConfig.average_from): off, or from the second epoch on (the best start on
# retailrocket: models.train.WeightAverage). A start-from preset is tried both ways, averaged first.
AVERAGE_FROM = (0, 2)
INTERRUPTED_TRIAL_GRACE_S = 120  # a trial without a heartbeat for this long was interrupted: run it again


@dataclass(frozen=True)
class TuneOptions:
    metric: str = METRICS[0]
    valid_share: float = 0.1
    max_epochs: int = 10
    patience: int = 2
    budget_s: float = 600.0
    trials: int = 100  # in the study in all, counting earlier runs
    seed: int = 42
    threads: int = 1

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.max_epochs < 1 or self.patience < 1 or self.trials < 1 or self.budget_s <= 0:
            raise ValueError("max_epochs, patience and trials must be >= 1 and the budget positive")


@dataclass(frozen=True)
class TuneResult:
    config: TrainConfig  # the best trial's parameters with its best epoch count
    value: float
    validation: dict[str, float]  # the best trial's metrics at its best epoch
    best_trial: int
    trials_run: int  # by this run
    trials_in_study: int  # finished ones, this run's and earlier runs'


Report = Callable[[str], None]


def suggest_config(trial: optuna.Trial, max_epochs: int, seed: int) -> TrainConfig:
    """The search space: the reference's tuning ranges, each containing the built-in presets' values;
    batches of at least 32 (smaller ones make an epoch several times longer)."""
    loss = trial.suggest_categorical("loss", LOSSES)
    params = {
        "loss": loss,
        "hidden": trial.suggest_int("hidden", 64, 512, step=4),
        "batch_size": trial.suggest_int("batch_size", 32, 256, step=8),
        "dropout_embed": _on_grid(trial, "dropout_embed", 0.0, 0.6, 0.05),
        "dropout_hidden": _on_grid(trial, "dropout_hidden", 0.0, 0.7, 0.05),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
        "momentum": _on_grid(trial, "momentum", 0.0, 0.9, 0.05),
        "n_sample": trial.suggest_categorical("n_sample", (512, 1024, 2048, 4096)),
        "sample_alpha": _on_grid(trial, "sample_alpha", 0.0, 1.0, 0.05),
        "lr_decay": _on_grid(trial, "lr_decay", 0.5, 1.0, 0.05),
        "average_from": trial.suggest_categorical("average_from", AVERAGE_FROM),
    }
    if loss == "cross-entropy":
        params["logq"] = trial.suggest_categorical("logq", (0.0, 1.0))
    else:
        params["logq"] = 0.0
        params["bpreg"] = _on_grid(trial, "bpreg", 0.0, 3.0, 0.05)
        params["elu_param"] = trial.suggest_categorical("elu_param", (0.0, 0.5, 1.0))
    return TrainConfig(**params, epochs=max_epochs, seed=seed)


def _on_grid(trial: optuna.Trial, name: str, low: float, high: float, step: float) -> float:
    """A float on a grid of ``step``, without the float noise of ``low + k * step`` (0.35000000000000003)."""
    return round(trial.suggest_float(name, low, high, step=step), 6)


def searched_params(config: TrainConfig) -> dict:
    """The values of ``config`` that :func:`suggest_config` searches, to start a study from it."""
    names = ["loss", "hidden", "batch_size", "dropout_embed", "dropout_hidden", "learning_rate"]
    names += ["momentum", "n_sample", "sample_alpha", "lr_decay", "average_from"]
    names += ["logq"] if config.loss == "cross-entropy" else ["bpreg", "elu_param"]
    return {name: getattr(config, name) for name in names}


def metric_value(metrics: dict[str, float], metric: str) -> float:
    return sum(metrics[part] for part in metric.split("+"))


def study_name(train: EventLog, options: TuneOptions) -> str:
    """Runs with the same data and options continue one study; other options start another."""
    return (
        f"streamrec-{train.fingerprint[:12]}-{options.metric}-valid{options.valid_share:g}"
        f"-epochs{options.max_epochs}-patience{options.patience}-seed{options.seed}"
    )


def tune(
    train: EventLog,
    options: TuneOptions,
    storage_path: Path,
    start_from: Sequence[TrainConfig] = (),
    report: Report = print,
) -> TuneResult:
    """Run trials until ``options.budget_s`` is spent or the study holds ``options.trials`` finished
    trials. A new study first tries the ``start_from`` configurations."""
    fit, valid = split_last_sessions(train, options.valid_share)
    study = open_study(train, options, storage_path)
    finished = _finished(study)
    if not study.trials:
        for config in start_from:
            # Averaged first (a preset's own averaging, else from epoch 2): measured the better of the two.
            for average_from in dict.fromkeys((config.average_from or AVERAGE_FROM[-1], *AVERAGE_FROM)):
                averaged = dataclasses.replace(config, average_from=average_from)
                study.enqueue_trial(searched_params(averaged), skip_if_exists=True)
    _rerun_trials_cut_by_the_budget(study)
    report(
        f"study {study.study_name} in {storage_path}: {len(finished)} finished trial(s) so far;"
        f" training on {fit.n_sessions} sessions ({fit.n_events} events), validating on the last"
        f" {valid.n_sessions} ({valid.n_events} events); metric {options.metric}"
    )
    deadline = time.monotonic() + options.budget_s
    run = _Objective(fit, valid, options, deadline, report)
    remaining = options.trials - len(finished)
    if remaining > 0:
        study.optimize(run, n_trials=remaining, timeout=options.budget_s, callbacks=[run.summarise])
    finished = _finished(study)
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    candidates = complete + _cut_by_budget(study)
    if not candidates:
        raise RuntimeError("no trial finished an epoch within the budget: give it more time")
    best = max(candidates, key=lambda t: t.user_attrs["best_value"])
    params = {"average_from": 0, **best.params}  # trials from before weight averaging trained without
    config = dataclasses.replace(
        suggest_config(optuna.trial.FixedTrial(params), options.max_epochs, options.seed),
        epochs=best.user_attrs["best_epoch"],
        seen_bonus=best.user_attrs.get("seen_bonus", 0.0),  # studies from before the bonus have none
        seen_decay=best.user_attrs.get("seen_decay", 1.0),
    )
    value, validation = best.user_attrs["best_value"], best.user_attrs["validation"]
    return TuneResult(config, value, validation, best.number, run.trials_run, len(finished))


def open_study(train: EventLog, options: TuneOptions, storage_path: Path) -> optuna.Study:
    storage_path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        # Marked experimental: heartbeats (how an interrupted trial is found and run again) and the
        # multivariate sampler (which models how the parameters interact, and so learns from fewer trials).
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{storage_path}",
            heartbeat_interval=INTERRUPTED_TRIAL_GRACE_S // 4,
            grace_period=INTERRUPTED_TRIAL_GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
        study = optuna.create_study(
            storage=storage,
            study_name=study_name(train, options),
            direction="maximize",
            load_if_exists=True,
            # A new study's first trials are known good presets, so from the first complete trial on, a
            # trial below the completed ones' median after an epoch stops there. Waiting for two (the
            # previous rule) let a diverged retailrocket trial (validation 0.002 against the preset's 0.89)
            # train all 10 epochs, 18 minutes, since each epoch bettered the last by a little.
            pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1),
        )
        # A trial on a shop's data takes minutes, so a budget holds tens of trials, not hundreds: the
        # sampler models the results after 5 trials instead of its default 10 random ones. Its seed
        # moves on with the study's size: a resumed run seeded alike drew the previous run's
        # parameters again (seen on retailrocket: trial 3 repeated trial 1).
        study.sampler = optuna.samplers.TPESampler(
            seed=options.seed + len(study.trials), n_startup_trials=5, multivariate=True, group=True
        )
    return study


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed and pruned trials, not counting those a budget cut short (they are trained again)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in study.get_trials(deepcopy=False, states=states) if not _cut(t)]


def _cut_by_budget(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if _cut(t)]


def _cut(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("cut_by_budget"))


def _rerun_trials_cut_by_the_budget(study: optuna.Study) -> None:
    """Queue each trial that an earlier run's budget cut short, once, to be trained in full."""
    queued = {t.user_attrs.get("rerun_of") for t in study.get_trials(deepcopy=False)}
    for trial in _cut_by_budget(study):
        if trial.number not in queued:
            study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})


class _Objective:
    """One trial: train with early stopping on the validation metric, reporting each epoch."""

    def __init__(
        self, fit: EventLog, valid: EventLog, options: TuneOptions, deadline: float, report: Report
    ) -> None:
        self.fit, self.valid, self.options = fit, valid, options
        self.deadline, self.report = deadline, report
        self.trials_run = 0
        self.started = time.monotonic()

    def __call__(self, trial: optuna.Trial) -> float:
        self.started = time.monotonic()
        config = suggest_config(trial, self.options.max_epochs, self.options.seed)
        self.report(f"trial {trial.number}: {_describe(searched_params(config))}")
        best = _EarlyStopping(self.options.patience)

        def after_epoch(end: EpochEnd) -> bool:
            (bonus, decay), metrics = best_seen_bonus(end, self.valid, self.options.metric)
            value = metric_value(metrics, self.options.metric)
            if best.update(value, end.epoch):
                trial.set_user_attr("best_epoch", end.epoch)
                trial.set_user_attr("best_value", value)
                trial.set_user_attr("validation", metrics)
                trial.set_user_attr("seen_bonus", bonus)
                trial.set_user_attr("seen_decay", decay)
            trial.report(value, end.epoch)
            self.report(
                f"trial {trial.number} epoch {end.epoch}: loss {end.loss:.4f}, {format_metrics(metrics)}"
                f" with seen bonus {bonus:g} decaying {decay:g}, {self.options.metric} {value:.4f},"
                f" {end.seconds:.0f} s training"
            )
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {end.epoch}: below the median of earlier trials")
            done = best.exhausted() or end.epoch == end.epochs
            if not done and time.monotonic() > self.deadline:
                trial.set_user_attr("cut_by_budget", True)
                raise optuna.TrialPruned(f"the budget was spent after epoch {end.epoch}")
            return done

        try:
            train_model(
                self.fit, config, progress=False, on_epoch_end=after_epoch, threads=self.options.threads
            )
        except TrainingError as diverged:
            raise optuna.TrialPruned(str(diverged)) from None
        return best.value

    def summarise(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.trials_run += 1
        seconds = time.monotonic() - self.started
        left = max(0.0, self.deadline - time.monotonic())
        outcome = (
            "cut by the budget (trained again in full later)" if _cut(trial) else trial.state.name.lower()
        )
        if "best_value" in trial.user_attrs:
            outcome += f", {self.options.metric} {trial.user_attrs['best_value']:.4f}"
            outcome += f" at epoch {trial.user_attrs['best_epoch']}"
        try:
            leader = f"best so far {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            leader = "no completed trial yet"
        self.report(f"trial {trial.number} {outcome} in {seconds:.0f} s; {leader}; {left / 60:.1f} min left")


def best_seen_bonus(end: EpochEnd, valid: EventLog, metric: str) -> tuple[SeenBonus, dict[str, float]]:
    """The seen bonus and decay of the grids under which the epoch's model scores best on ``valid``, and
    its metrics (a tie goes to the bonus nearest 0, then to the decay nearest 1)."""
    grid = [(bonus, decay) for bonus in SEEN_BONUS_GRID for decay in SEEN_DECAY_GRID]
    results = evaluate_seen_bonuses(end.model, end.item_ids, valid, grid, [20])
    ranked = sorted(zip(grid, results, strict=True), key=lambda pair: (abs(pair[0][0]), -pair[0][1]))
    return max(ranked, key=lambda pair: metric_value(pair[1], metric))


def format_metrics(metrics: dict[str, float]) -> str:
    return f"recall@20 {metrics['recall@20']:.4f}, mrr@20 {metrics['mrr@20']:.4f}"


class _EarlyStopping:
    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.value = -math.inf
        self.best_epoch = 0
        self.epoch = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; whether it is the best so far."""
        self.epoch = epoch
        if value > self.value:
            self.value, self.best_epoch = value, epoch
            return True
        return False

    def exhausted(self) -> bool:
        return self.epoch - self.best_epoch >= self.patience


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
