"""MultiDomainTask: one network for several visual domains (Office-Home).

A :class:`~recal.tasks.classification.ClassificationTask` on batches ``(x, y, domain)``
(domain ids index ``domains``). Logged per domain: ``val/acc1/<Domain>``,
``val/acc5/<Domain>`` (and ``test/…``); ``val/acc1`` / ``val/acc5`` are the **mean over
domains** (every domain counts once, whatever its size) of the domains trained on — in
``leave_one_out`` the held-out domain is logged per domain but left out of the mean, so
checkpoint selection (on ``val/acc1``) never sees its labels; its result is
``test/acc1/<held-out>``. ``val/loss`` is over all evaluated samples.

``domain_specific_recalibration``: every recalibration module keeps one gate set per
domain (:mod:`recal.models.domain`), chosen by the batch's domain ids, which reach the
modules through the backbone before each forward. ``domain_heads``: one classifier head
per domain. Both need every domain in training (mode ``joint``), and neither combines with
mixup (a mixed image has two domains).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.models.domain import domain, make_domain_specific, make_domain_specific_heads
from recal.tasks.classification import ClassificationTask, accuracy_metrics, test_set_name

__all__ = ["MultiDomainTask", "OFFICE_HOME_DOMAINS"]

OFFICE_HOME_DOMAINS = ["Art", "Clipart", "Product", "Real_World"]


class MultiDomainTask(ClassificationTask):
    """Multi-domain classification; every :class:`ClassificationTask` option plus the ones below.

    Args:
        domains: domain names in domain-id order; must equal the datamodule's ``domains``.
        domain_specific_recalibration: one gate set per domain in every recalibration module.
        domain_heads: one classifier head per domain.
    """

    def __init__(
        self,
        domains: list[str] = OFFICE_HOME_DOMAINS,
        domain_specific_recalibration: bool = False,
        domain_heads: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("mixup_alpha", 0.0) > 0 and (domain_specific_recalibration or domain_heads):
            raise InvalidOptionError(
                f"model.mixup_alpha={kwargs['mixup_alpha']} mixes images of different domains, which "
                f"domain_specific_recalibration / domain_heads cannot route; set mixup_alpha: 0")
        if not domains or len(set(domains)) != len(domains):
            raise InvalidOptionError(f"model.domains={list(domains)}; expected distinct domain names")
        # build_model (called by the parent) reads these through self.hparams
        super().__init__(**kwargs)
        self.domains = list(domains)
        self.mean_domains = list(domains)
        self.batch_domains: Optional[Tensor] = None
        sets = [*self.hparams.val_set_names, *map(test_set_name, self.hparams.val_set_names)]
        self.domain_metrics = nn.ModuleDict({
            s: nn.ModuleDict({d: accuracy_metrics(self.hparams.num_classes).clone(prefix=f"{s}/", postfix=f"/{d}")
                              for d in self.domains})
            for s in sets
        })

    def build_model(self, backbone: BackboneConfig, num_classes: int) -> nn.Module:
        """The shared backbone, with per-domain gate sets and heads when asked for."""
        model = super().build_model(backbone, num_classes)
        count = len(self.hparams.domains)
        if self.hparams.domain_specific_recalibration:
            make_domain_specific(model, count)
        if self.hparams.domain_heads:
            make_domain_specific_heads(model, count)
        return model

    def setup(self, stage: str) -> None:
        """Check the datamodule's domains against ours; learn which domains are trained on."""
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_domains = getattr(data, "domains", None)
        if data_domains is not None and list(data_domains) != self.domains:
            raise InvalidOptionError(
                f"model.domains={self.domains} but data.domains={list(data_domains)}; they must be equal "
                f"(domain ids index this list)")
        trained = list(getattr(data, "train_domains", self.domains))
        held_out = [d for d in self.domains if d not in trained]
        if held_out and (self.hparams.domain_specific_recalibration or self.hparams.domain_heads):
            raise InvalidOptionError(
                f"domain_specific_recalibration / domain_heads give each domain its own parameters, but "
                f"held-out domain {held_out[0]} is never trained on; use data.mode: joint")
        self.mean_domains = trained

    def forward(self, x: Tensor, domains: Optional[Tensor | int] = None) -> Tensor:
        """Logits for ``x`` whose samples come from ``domains`` (default: the current batch's)."""
        ids = self.batch_domains if domains is None else domains
        if ids is None:
            return self.model(x)
        with domain(self.model, ids):
            return self.model(x)

    @staticmethod
    def _unpack(batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        if not isinstance(batch, (list, tuple)) or len(batch) != 3:
            raise InvalidOptionError("MultiDomainTask needs batches (x, y, domain); use a multi-domain datamodule "
                                     "such as recal.data.OfficeHomeDataModule")
        return batch[0], batch[1], batch[2]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        self.batch_domains = self._unpack(batch)[2]
        try:
            return super().training_step(batch, batch_idx)
        finally:
            self.batch_domains = None

    def _evaluate(self, batch: Any, set_name: str) -> None:
        x, y, ids = self._unpack(batch)
        logits = self(x, ids)
        self.eval_losses[set_name].update(F.cross_entropy(logits, y), weight=x.shape[0])
        self.log(f"{set_name}/loss", self.eval_losses[set_name], add_dataloader_idx=False)
        for i, name in enumerate(self.domains):
            mask = ids == i
            if bool(mask.any()):
                self.domain_metrics[set_name][name].update(logits[mask], y[mask])

    def _log_domain_metrics(self, stage: str) -> None:
        names = self.hparams.val_set_names if stage == "val" else list(map(test_set_name, self.hparams.val_set_names))
        sanity = self._trainer is not None and self.trainer.sanity_checking
        for set_name in names:
            per_domain = self.domain_metrics[set_name]
            if sanity or not any(m["acc1"].update_called for m in per_domain.values()):
                # the sanity check's few batches miss whole domains, and Lightning drops its logs anyway
                for metrics in per_domain.values():
                    metrics.reset()
                continue
            means: dict[str, list[Tensor]] = {}
            for name, metrics in per_domain.items():
                values = metrics.compute()
                metrics.reset()
                for key, value in values.items():
                    self.log(key, value, add_dataloader_idx=False)
                    if name in self.mean_domains:
                        means.setdefault(key.rsplit("/", 1)[0], []).append(value)
            for key, values in means.items():
                self.log(key, torch.stack(values).mean(), add_dataloader_idx=False, prog_bar=key == "val/acc1")

    def on_validation_epoch_end(self) -> None:
        self._log_domain_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_domain_metrics("test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        x, _, ids = self._unpack(batch)
        return self(x, ids).softmax(dim=1)
