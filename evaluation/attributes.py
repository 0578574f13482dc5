"""Attribute accuracy: does a generated clip show the attributes its prompt asked for?

On the shapes benchmark every prompt comes with the attribute values it states (``PromptRecord.
attributes``: shape, color, background, motion, speed). A classifier (``ShapesI3DExtractor.predict``,
the committed ``ShapesI3D``) names what each generated clip shows; per attribute, the accuracy is the
fraction of clips whose predicted value equals the requested one. Reported with the accuracy of
uniform guessing (chance, ``1 / number of values``), the mean over attributes (and its chance), and
``all``: the fraction of clips with every attribute right (chance: the product of the chances).

A classifier is itself imperfect (the committed one, on real test clips read at 8 fps: colour and
background 1.00, motion and speed 0.996, shape 0.906): read a generated clip's accuracy against
the classifier's accuracy on real clips, not against 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class AttributeAccuracy:
    """Per-attribute accuracy over ``n`` clips, with chance levels and per-clip correctness."""

    accuracy: dict[str, float]            # attribute -> fraction of clips right
    chance: dict[str, float]              # attribute -> 1 / number of values
    n: int                                # clips scored
    mean: float                           # mean of ``accuracy`` over attributes
    mean_chance: float
    all: float                            # fraction of clips with every attribute right
    all_chance: float                     # product of the chances
    per_sample: list[dict[str, bool]] = field(default_factory=list, repr=False)

    def metrics(self) -> dict[str, float]:
        """Flat metrics: ``attr_acc/<attribute>``, ``attr_acc/mean``, ``attr_acc/all``, and the chance
        levels under the same names in ``attr_chance/``."""
        out = {}
        for pre, values, mean, all_ in (("attr_acc", self.accuracy, self.mean, self.all),
                                        ("attr_chance", self.chance, self.mean_chance, self.all_chance)):
            out.update({f"{pre}/{k}": v for k, v in values.items()})
            out.update({f"{pre}/mean": mean, f"{pre}/all": all_})
        return out

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "per_sample"}


def attribute_accuracy(predicted: Sequence[dict[str, str]], requested: Sequence[dict[str, str]],
                       classes: dict[str, list[str]]) -> AttributeAccuracy:
    """Accuracy of ``predicted`` against ``requested`` values, one dict per clip, per attribute of ``classes``.

    Args:
        predicted: what the classifier saw in each clip, ``{attribute: value}``.
        requested: what each clip's prompt asked for (``PromptRecord.attributes``).
        classes: attribute -> its values (the classifier's heads); the attributes scored are those
            of ``classes`` that every requested dict states.
    """
    if len(predicted) != len(requested):
        raise ValueError(f"{len(predicted)} predictions for {len(requested)} requested attribute sets")
    if not requested:
        raise ValueError("no clips to score")
    names = [k for k in classes if all(k in r for r in requested)]
    if not names:
        raise ValueError(f"the requested attributes {sorted(set().union(*requested))} share none with the "
                         f"classifier's heads {list(classes)}")
    for k in names:
        unknown = sorted({r[k] for r in requested} - set(classes[k]))
        if unknown:
            raise ValueError(f"attribute {k!r}: requested value(s) {unknown} are not among the classifier's "
                             f"{classes[k]}")
    per_sample = [{k: p.get(k) == r[k] for k in names} for p, r in zip(predicted, requested)]
    n = len(per_sample)
    acc = {k: sum(s[k] for s in per_sample) / n for k in names}
    chance = {k: 1 / len(classes[k]) for k in names}
    return AttributeAccuracy(
        accuracy=acc, chance=chance, n=n, mean=sum(acc.values()) / len(acc), mean_chance=sum(chance.values()) / len(chance),
        all=sum(all(s.values()) for s in per_sample) / n, all_chance=math.prod(chance.values()), per_sample=per_sample)


def score_attributes(videos: Iterable, requested: Sequence[dict[str, str]], classifier) -> tuple[AttributeAccuracy, list]:
    """``(accuracy, predictions)``: run ``classifier.predict`` (e.g. ``ShapesI3DExtractor``) over
    batches of uint8 clips ``[B, T, H, W, 3]`` and compare with ``requested`` (one dict per clip)."""
    predicted = [p for batch in videos for p in classifier.predict(batch)]
    return attribute_accuracy(predicted, requested, classifier.heads), predicted
