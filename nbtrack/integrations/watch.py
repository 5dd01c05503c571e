"""``nbtrack.watch``: a PyTorch model's size once, then its gradients, weights and learning rates
every ``every`` steps.

Between sampled steps a hook only counts: one Python call and an integer increment per step
(``benchmarks/bench_watch.py`` measures it against the same loop without ``watch``). On a
sampled step the norms are computed on the model's device with ``torch._foreach_norm`` and
handed to ``nbtrack.log`` as tensors: a GPU tensor is kept as it is and read later by the
sender thread, so the training thread never waits for the device. The hooks are removed when
the tracked cell ends.

Steps are counted where the model learns: with an optimizer, its ``step()`` calls (the norms
are those of the gradients it is about to apply); without one, the model's forward passes in
training mode with gradients enabled (the norms are those of that pass's backward).
"""

from __future__ import annotations

import weakref
from typing import Any

from nbtrack import _buffer
from nbtrack._model import check_key
from nbtrack._registry import TrackedRun
from nbtrack.integrations._common import at_cell_end, tracked

__all__ = ["watch"]

# Parameters that sit on the model itself rather than in one of its children.
_ROOT = "root"


def watch(model: Any, optimizer: Any = None, every: int = 100, name: str = "model") -> None:
    """Record what a PyTorch model does while the tracked cell trains it.

    Once: params ``<name>/parameters`` and ``<name>/trainable_parameters`` (counts), and the
    model's summary (its ``repr`` and a table of its top-level modules) as the text artifact
    ``<name>/summary.txt``. Every ``every`` steps, from step 0: ``grad_norm`` and
    ``weight_norm`` (L2, over all trainable parameters) and ``grad_norm/<module>`` and
    ``weight_norm/<module>`` for each top-level module, plus ``lr`` (``lr/group_<i>`` for
    several param groups) when ``optimizer`` is given. A second model watched in the same cell
    needs its own ``name``, which then prefixes its metrics (``critic/grad_norm``).

    Watching the same model again replaces its earlier hooks. All hooks are removed when the
    cell ends.

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        TypeError: ``model`` is not a ``torch.nn.Module``, ``optimizer`` is not a torch
            optimizer, or ``every`` is not a positive integer.
    """
    run = tracked("watch")
    import torch

    if not isinstance(model, torch.nn.Module):
        msg = f"nbtrack.watch() takes a torch.nn.Module, got {type(model).__name__}"
        raise TypeError(msg)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        msg = (
            f"nbtrack.watch(optimizer=...) takes a torch.optim.Optimizer, got "
            f"{type(optimizer).__name__}; pass the optimizer whose steps train the model"
        )
        raise TypeError(msg)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        msg = f"nbtrack.watch(every=...) must be a positive number of steps, got {every!r}"
        raise TypeError(msg)
    check_key(f"{name}/parameters", "watch name")
    watchers = _watchers.setdefault(run, {})
    previous = watchers.pop(id(model), None)
    if previous is not None:
        previous.detach()
    watcher = _Watcher(model, optimizer, every, name)
    watcher.log_once(run)
    watcher.attach()
    watchers[id(model)] = watcher
    if previous is None and len(watchers) == 1:
        at_cell_end(run, lambda: _detach_all(run))


# The watchers of each tracked run still in its cell, by model identity.
_watchers: weakref.WeakKeyDictionary[TrackedRun, dict[int, _Watcher]] = weakref.WeakKeyDictionary()


def _detach_all(run: TrackedRun) -> None:
    for watcher in _watchers.pop(run, {}).values():
        watcher.detach()


class _Watcher:
    """One watched model: its parameters grouped by top-level module, and its hooks."""

    def __init__(self, model: Any, optimizer: Any, every: int, name: str) -> None:
        self.model = model
        self.optimizer = optimizer
        self.every = every
        self.name = name
        self.prefix = "" if name == "model" else f"{name}/"
        self.count = 0
        self.params: list[Any] = []
        # top-level module name -> indexes into self.params
        self.groups: dict[str, list[int]] = {}
        for qualified, param in model.named_parameters():
            if not param.requires_grad:
                continue
            group = qualified.split(".", 1)[0] if "." in qualified else _ROOT
            self.groups.setdefault(group, []).append(len(self.params))
            self.params.append(param)
        self.handles: list[Any] = []
        self.pending_grad_hook: Any = None

    # ------------------------------------------------------------------ once

    def log_once(self, run: TrackedRun) -> None:
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.params)
        new = run.run.add_params(
            {
                f"{self.name}/parameters": str(total),
                f"{self.name}/trainable_parameters": str(trainable),
            }
        )
        if new:
            run.buffer.pending.append(("params", new))
        staged = f"watch-{self.name}/summary.txt"
        if run.journal.stage_text(staged, self.summary(total, trainable)):  # False: disk full
            run.buffer.pending.append(("artifact", (staged, self.name)))

    def summary(self, total: int, trainable: int) -> str:
        rows = [f"{'module':<40} {'parameters':>14} {'trainable':>14}"]
        for child, module in self.model.named_children():
            count = sum(p.numel() for p in module.parameters())
            learn = sum(p.numel() for p in module.parameters() if p.requires_grad)
            rows.append(f"{child:<40} {count:>14,} {learn:>14,}")
        rows.append(f"{'total':<40} {total:>14,} {trainable:>14,}")
        return f"{self.model!r}\n\n" + "\n".join(rows) + "\n"

    # ------------------------------------------------------------------ hooks

    def attach(self) -> None:
        if self.optimizer is not None:
            self.handles.append(self.optimizer.register_step_pre_hook(self._before_optimizer_step))
        else:
            self.handles.append(self.model.register_forward_pre_hook(self._before_forward))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        if self.pending_grad_hook is not None:
            self.pending_grad_hook.remove()
            self.pending_grad_hook = None

    def _before_optimizer_step(self, *_: Any) -> None:
        step = self.count
        self.count = step + 1
        if step % self.every:
            return  # the only work between sampled steps
        self._sample(step, [p.grad for p in self.params])

    def _before_forward(self, module: Any, _inputs: Any) -> None:
        if not module.training:
            return
        import torch

        if not torch.is_grad_enabled():
            return  # a forward under torch.no_grad(): not a training step
        step = self.count
        self.count = step + 1
        if step % self.every or not self.params:
            return
        if self.pending_grad_hook is not None:  # a sampled forward that had no backward
            self.pending_grad_hook.remove()

        def on_gradients(grads: Any) -> None:
            if self.pending_grad_hook is not None:
                self.pending_grad_hook.remove()
                self.pending_grad_hook = None
            self._sample(step, list(grads))

        self.pending_grad_hook = torch.autograd.graph.register_multi_grad_hook(
            self.params, on_gradients, mode="all"
        )

    # ------------------------------------------------------------------ a sampled step

    def _sample(self, step: int, grads: list[Any]) -> None:
        import torch

        values: dict[str, Any] = {}
        with torch.no_grad():
            values.update(self._norms("grad_norm", grads))
            values.update(self._norms("weight_norm", [p.detach() for p in self.params]))
        if self.optimizer is not None:
            groups = self.optimizer.param_groups
            for i, group in enumerate(groups):
                lr = group.get("lr")
                if lr is not None:
                    key = "lr" if len(groups) == 1 else f"lr/group_{i}"
                    values[self.prefix + key] = lr
        if values:
            _buffer.log(values, step=step)

    def _norms(self, metric: str, tensors: list[Any]) -> dict[str, Any]:
        """The L2 norm of all ``tensors`` and of each top-level module's, as device tensors
        (None entries, parameters without a gradient this step, are left out)."""
        import torch

        present = [i for i, t in enumerate(tensors) if t is not None and not t.is_sparse]
        if not present:
            return {}
        norms = torch._foreach_norm([tensors[i] for i in present])
        device = norms[0].device
        by_index = {i: n.to(device, non_blocking=True) for i, n in zip(present, norms, strict=True)}
        out = {self.prefix + metric: torch.linalg.vector_norm(torch.stack(list(by_index.values())))}
        if len(self.groups) > 1:
            for group, indexes in self.groups.items():
                parts = [by_index[i] for i in indexes if i in by_index]
                if parts:
                    out[f"{self.prefix}{metric}/{group}"] = torch.linalg.vector_norm(
                        torch.stack(parts)
                    )
        return out
