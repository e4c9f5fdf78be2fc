"""MnasNet's search strategy: a recurrent controller trained by policy gradient (PPO) on the reward.

As in MnasNet (Tan et al., 2019) and NASNet before it, an LSTM emits an architecture as a sequence of tokens,
one per named decision of the space (``Space.decisions``: for ``mnasnet`` each block's op, kernel, SE ratio,
skip, filters and layers; for ``mobilenetv2`` each stage's depth and each layer's kernel and expansion). Each
step's input is the embedding of the previous token. The controller is trained with Proximal Policy
Optimisation (Schulman et al., 2017): the clipped objective ``min(r·A, clip(r, 1-ε, 1+ε)·A)`` over a few
epochs per batch, where ``r`` is the ratio of the token sequence's probability now and when sampled, and the
advantage ``A`` is the reward minus a moving-average baseline, as in the paper. A decision that the sampled
answers make inactive (a layer past a stage's depth) is masked out of the log-probability: it did not shape
the architecture, so it earns no credit.

Sampling is batched (all candidates of an ``ask`` step through the LSTM together) and draws from a seeded
``torch.Generator``, so a seed gives the same proposals on the same host. The state (weights, optimiser
moments, baseline, generator) saves to JSON and resumes; ``nasprof.search.strategies.state`` checks
every key of a file before the controller takes it. torch is imported when the strategy is built, so
prediction and the other strategies start without it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nasprof.errors import InputError
from nasprof.search.strategies.state import StatefulStrategy, StateReader

if TYPE_CHECKING:
    from nasprof.search.evaluate import Scores
    from nasprof.space import Arch

__all__ = ["RLController"]

#: Version of the saved controller state (``state_body``).
STATE_VERSION = 1
#: Sequences sampled per wanted one when the search avoids repeats (``Strategy.avoid_repeats``).
REPEAT_DRAWS = 4


class RLController(StatefulStrategy):
    """LSTM controller + PPO. ``ask(n)`` samples ``n`` token sequences; ``tell`` runs the PPO update."""

    name: ClassVar[str] = "rl"
    state_version: ClassVar[int] = STATE_VERSION
    #: Sampled sequences per PPO update in a query-counted search (MnasNet's controller learns from many
    #: small batches; a 256-candidate batch would be a handful of updates in a 1,000-query search).
    query_batch: ClassVar[int | None] = 16

    def __init__(
        self,
        space: Any,
        *,
        seed: int = 0,
        resolution: int | None = None,
        hidden: int = 64,
        lr: float = 3.5e-4,
        clip: float = 0.2,
        epochs: int = 4,
        baseline_decay: float = 0.95,
        entropy_weight: float = 1e-3,
        temperature: float = 1.0,
        max_batch: int | None = None,
    ) -> None:
        super().__init__(space, seed=seed, resolution=resolution)
        for label, value, ok in (
            ("hidden size", hidden, isinstance(hidden, int) and hidden >= 1),
            ("learning rate", lr, math.isfinite(lr) and lr > 0),
            ("PPO clip", clip, math.isfinite(clip) and 0 < clip < 1),
            ("PPO epochs", epochs, isinstance(epochs, int) and epochs >= 1),
            ("baseline decay", baseline_decay, math.isfinite(baseline_decay) and 0 <= baseline_decay < 1),
            ("entropy weight", entropy_weight, math.isfinite(entropy_weight) and entropy_weight >= 0),
            ("temperature", temperature, math.isfinite(temperature) and temperature > 0),
            ("max batch", max_batch, max_batch is None or (isinstance(max_batch, int) and max_batch >= 1)),
        ):
            if not ok:
                raise InputError(f"RL controller: {label} {value!r} is out of range")
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency of nasprof
            raise InputError("the rl strategy needs torch: pip install torch") from None
        self._torch = torch
        decisions = space.decisions()
        self.names = [n for n, _ in decisions]
        self.values = [tuple(v) for _, v in decisions]
        self.sizes = [len(v) for v in self.values]
        self.clip, self.epochs, self.temperature = clip, epochs, temperature
        self.baseline_decay, self.entropy_weight = baseline_decay, entropy_weight
        self.baseline: float | None = None
        #: Largest batch per ``ask`` (None: as asked): a query-bounded search wants many small PPO updates.
        self.max_batch = max_batch
        self.updates = 0
        self._gen = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)  # the initial weights, without touching the caller's global RNG
            self.net = _Controller(torch, self.sizes, hidden)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self._pending: tuple[Any, Any, Any] | None = None  # tokens, mask, log-probs of the last ask
        self._seen: set[Any] = set()

    # -- ask / tell ---------------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Arch]:
        torch = self._torch
        n = max(1, n if self.max_batch is None else min(n, self.max_batch))
        draws = REPEAT_DRAWS if self.avoid_repeats else 1
        with _one_thread(torch), torch.no_grad():
            tokens, logp = self.net.sample(n * draws, self._gen, self.temperature)
        archs, mask = self._build(tokens)
        if self.avoid_repeats:
            # A query-counted search: keep the first n sequences that are new (to this search and to each
            # other), then fill with repeats if the controller offers fewer. The update below uses each
            # kept sequence's probability under the controller, as for any sample.
            keys = [self.repeat_key(a) if self.repeat_key is not None else a.to_string() for a in archs]
            new, seen_now = [], set()
            for i, k in enumerate(keys):
                if k not in self._seen and k not in seen_now:
                    new.append(i)
                    seen_now.add(k)
            keep = new[:n] + [i for i in range(len(archs)) if i not in set(new)][: max(0, n - len(new))]
            keep = sorted(keep)
            self._seen.update(keys[i] for i in keep)
            pick = torch.as_tensor(keep, dtype=torch.long)
            tokens, logp, mask = tokens[pick], logp[pick], mask[pick]
            archs = [archs[i] for i in keep]
        self._pending = (tokens, mask, (logp * mask).sum(dim=1))
        return archs

    def _build(self, tokens: Any) -> tuple[list[Arch], Any]:
        """The architectures of sampled token rows, and which tokens each one used (active decisions)."""
        torch = self._torch
        rows = tokens.tolist()
        archs, mask = [], torch.zeros(tokens.shape, dtype=torch.bool)
        index = {name: t for t, name in enumerate(self.names)}
        for b, row in enumerate(rows):
            used: list[int] = []

            def answer(name: str, values: tuple[Any, ...], row: list[int] = row, used: list[int] = used
                       ) -> Any:
                t = index[name]
                used.append(t)
                return self.values[t][row[t]]

            archs.append(self.space.build(answer, self.resolution))
            mask[b, used] = True
        return archs, mask

    def tell(self, archs: Sequence[Arch], scores: Scores) -> None:
        if self._pending is None or len(archs) != self._pending[0].shape[0] or len(scores) != len(archs):
            raise InputError(f"told {len(scores)} scores for {len(archs)} architectures, not the last ask")
        torch = self._torch
        tokens, mask, old_logp = self._pending
        self._pending = None
        fitness = _scaled_fitness(scores)
        batch_mean = float(fitness.mean())
        if self.baseline is None:
            self.baseline = batch_mean
        advantage = fitness - self.baseline
        # The baseline follows the reward with an exponential moving average (MnasNet); advantages are then
        # scaled by their spread so the step size does not depend on the reward's units.
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * batch_mean
        spread = float(advantage.std())
        adv = torch.as_tensor(advantage / spread if spread > 1e-12 else advantage, dtype=torch.float32)
        with _one_thread(torch):
            self._update(tokens, mask, old_logp, adv)
        if not math.isfinite(self.baseline) or not all(bool(torch.isfinite(p).all())
                                                       for p in self.net.parameters()):
            # Say so now: the next ask would fail in torch.multinomial, and the state must not be saved.
            raise InputError(f"the RL controller became non-finite at update {self.updates + 1} (rewards of "
                             f"this batch from {float(np.min(fitness)):g} to {float(np.max(fitness)):g}); "
                             "the search stops and its state is not saved")
        self.updates += 1

    def _update(self, tokens: Any, mask: Any, old_logp: Any, adv: Any) -> None:
        torch = self._torch
        for _ in range(self.epochs):
            logp, entropy = self.net.evaluate(tokens, self.temperature)
            new_logp = (logp * mask).sum(dim=1)
            ratio = torch.exp(new_logp - old_logp)
            clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip)
            loss = -torch.minimum(ratio * adv, clipped * adv).mean()
            loss = loss - self.entropy_weight * (entropy * mask).sum(dim=1).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def probabilities(self) -> list[np.ndarray]:
        """The controller's current distribution of each decision, given its most likely earlier tokens."""
        torch = self._torch
        with torch.no_grad():
            return self.net.greedy_probs(self.temperature)

    # -- saving and resuming (nasprof.search.strategies.state checks every key) --------------------------
    @property
    def progress(self) -> str:
        return f"{self.updates} update{'s' if self.updates != 1 else ''}"

    def state_body(self) -> dict[str, Any]:
        """Weights, Adam's moments, baseline and generator state (JSON-ready), after the header."""
        return {
            "baseline": self.baseline,
            "updates": self.updates,
            "generator": self._gen.get_state().tolist(),
            "weights": {k: v.tolist() for k, v in self.net.state_dict().items()},
            "optimizer": _optimizer_to_json(self.opt.state_dict()),
        }

    def load_state(self, reader: StateReader) -> None:
        """Every key checked (finite, the shapes of this controller) before any is taken. Adam's moments
        come from the file; its hyperparameters (learning rate, betas) stay this controller's own."""
        torch = self._torch
        reader.exact_keys(["schema_version", "strategy", "space", "seed", "decisions", "baseline", "updates",
                           "generator", "weights", "optimizer"])
        updates = reader.integer("updates")
        baseline = reader.number("baseline", optional=True)
        if baseline is None and updates > 0:
            raise reader.error("baseline", f"is null after {updates} updates (the first sets it)")
        gen = self._gen.get_state()
        generator = reader.array("generator", tuple(gen.shape), low=0, high=255, integral=True)
        own = self.net.state_dict()
        weights = reader.section("weights")
        weights.exact_keys(list(own))
        tensors = {k: torch.as_tensor(weights.array(k, tuple(v.shape)), dtype=v.dtype)
                   for k, v in own.items()}
        opt = reader.section("optimizer")
        opt.exact_keys(["state", "param_groups"])
        if not isinstance(opt.raw("param_groups"), list):
            raise opt.error("param_groups", "is not a list")
        shapes = [tuple(p.shape) for p in self.net.parameters()]
        moments = opt.section("state")
        optimizer_state: dict[int, dict[str, Any]] = {}
        for key in moments.keys():  # noqa: SIM118 - a reader, not a dict
            if not key.isdigit() or int(key) >= len(shapes):
                raise moments.error(key, f"is not one of the controller's {len(shapes)} parameters")
            entry = moments.section(key)
            entry.exact_keys(["step", "exp_avg", "exp_avg_sq"])
            shape = shapes[int(key)]
            optimizer_state[int(key)] = {
                "step": torch.tensor(entry.number("step", low=0), dtype=torch.float32),
                "exp_avg": torch.as_tensor(entry.array("exp_avg", shape), dtype=torch.float32),
                "exp_avg_sq": torch.as_tensor(entry.array("exp_avg_sq", shape, low=0), dtype=torch.float32),
            }
        # Everything is checked: take it.
        self.net.load_state_dict(tensors)
        self.opt.load_state_dict({**self.opt.state_dict(), "state": optimizer_state})
        self._gen.set_state(torch.as_tensor(generator, dtype=torch.uint8))
        self.baseline, self.updates = baseline, updates


def _scaled_fitness(scores: Scores) -> np.ndarray:
    """The reward of feasible candidates; an infeasible one ranks below the batch's worst feasible reward
    by (1 + its violation) spreads of the feasible rewards. Deb's order as ``Scores.fitness``, on the
    rewards' own scale: a far-off constant for infeasible candidates would make the advantages' spread, and
    so PPO's step, about feasibility alone."""
    reward = np.asarray(scores.reward, dtype=np.float64)
    feasible = np.asarray(scores.feasible, dtype=bool) & np.isfinite(reward)
    if not feasible.any():
        fit = np.asarray(scores.fitness, dtype=np.float64)
        finite = np.isfinite(fit)
        return np.where(finite, fit, fit[finite].min() - 1.0 if finite.any() else 0.0)
    good = reward[feasible]
    spread = float(good.std()) or max(abs(float(good.mean())) * 0.01, 1e-6)
    violation = np.zeros(len(reward)) if scores.violation is None else np.minimum(scores.violation, 10.0)
    return np.where(feasible, reward, float(good.min()) - spread * (1.0 + violation))


@contextlib.contextmanager
def _one_thread(torch: Any) -> Iterator[None]:
    """One intra-op thread for the controller's small tensors: on 2 cores, a second thread's spin-waits
    made PPO's update twice as slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _optimizer_to_json(sd: dict[str, Any]) -> dict[str, Any]:
    state = {
        str(k): {name: (v.tolist() if hasattr(v, "tolist") else v) for name, v in s.items()}
        for k, s in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


class _Controller:
    """The LSTM policy: one embedding row per (decision, choice) plus a start token, one LSTM, and per
    decision an output layer over its own choices (padded to the largest choice count). Built around torch
    at run time so this module imports without it.

    Scoring sampled sequences (PPO's epochs) runs the LSTM over the whole teacher-forced sequence in one
    call and every decision's output layer in one ``einsum``, the padding masked out: a dozen tensor
    operations instead of a Python loop over the decisions."""

    def __new__(cls, torch: Any, sizes: Sequence[int], hidden: int) -> Any:
        module: Any = torch.nn.Module

        class Controller(module):  # type: ignore[misc,valid-type]
            def __init__(self) -> None:
                super().__init__()
                nn = torch.nn
                self.sizes = list(sizes)
                steps, width = len(self.sizes), max(self.sizes)
                starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
                # Row 0 is the start token; choice j of decision t is row 1 + starts[t] + j.
                self.embed = nn.Embedding(1 + int(sum(self.sizes)), hidden)
                self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
                bound = 1.0 / math.sqrt(hidden)  # nn.Linear's initialisation
                self.weight = nn.Parameter(torch.empty(steps, width, hidden).uniform_(-bound, bound))
                self.bias = nn.Parameter(torch.empty(steps, width).uniform_(-bound, bound))
                pad = np.zeros((steps, width), dtype=np.float32)
                for t, k in enumerate(self.sizes):
                    pad[t, k:] = -np.inf
                self.register_buffer("pad", torch.as_tensor(pad), persistent=False)
                self.register_buffer("offsets", torch.as_tensor(starts + 1), persistent=False)
                self.row_offsets = (starts + 1).tolist()

            def sample(self, n: int, gen: Any, temperature: float) -> tuple[Any, Any]:
                x = self.embed(torch.zeros(n, 1, dtype=torch.long))
                state = None
                tokens, logps = [], []
                for t, k in enumerate(self.sizes):
                    out, state = self.lstm(x, state)
                    logits = (out[:, 0] @ self.weight[t, :k].T + self.bias[t, :k]) / temperature
                    logp = torch.log_softmax(logits, dim=1)
                    tok = torch.multinomial(logp.exp(), 1, generator=gen)
                    tokens.append(tok[:, 0])
                    logps.append(logp.gather(1, tok)[:, 0])
                    x = self.embed(tok + self.row_offsets[t])
                return torch.stack(tokens, dim=1), torch.stack(logps, dim=1)

            def evaluate(self, tokens: Any, temperature: float) -> tuple[Any, Any]:
                n = tokens.shape[0]
                rows = tokens + self.offsets
                inputs = torch.cat([torch.zeros(n, 1, dtype=torch.long), rows[:, :-1]], dim=1)
                out, _ = self.lstm(self.embed(inputs))  # (n, T, hidden)
                logits = (torch.einsum("nth,tkh->ntk", out, self.weight) + self.bias) / temperature + self.pad
                logp = torch.log_softmax(logits, dim=2)
                chosen = logp.gather(2, tokens[:, :, None])[:, :, 0]
                p = logp.exp()
                entropy = -(p * logp.masked_fill(p == 0, 0.0)).sum(dim=2)
                return chosen, entropy

            def greedy_probs(self, temperature: float) -> list[np.ndarray]:
                x = self.embed(torch.zeros(1, 1, dtype=torch.long))
                state = None
                out_probs = []
                for t, k in enumerate(self.sizes):
                    out, state = self.lstm(x, state)
                    logits = (out[:, 0] @ self.weight[t, :k].T + self.bias[t, :k]) / temperature
                    p = torch.softmax(logits, dim=1)
                    out_probs.append(p[0].numpy().astype(np.float64))
                    x = self.embed(p.argmax(dim=1, keepdim=True) + self.row_offsets[t])
                return out_probs

        return Controller()
