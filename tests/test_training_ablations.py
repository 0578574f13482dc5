"""The ablation variants (Fig. 7) get equal key-frame budgets: read from each variant's recipe, not
from a list written here."""

from __future__ import annotations

import pytest

from magicvideo.training.ablations import VARIANTS, keyframe_budget, variant_recipe
from magicvideo.training.shapes import load_shapes_recipe


@pytest.mark.parametrize("recipe", ["default", "tiny"])
def test_every_variant_has_the_full_models_keyframe_budget(recipe):
    budgets = {v: keyframe_budget(variant_recipe(recipe, v)) for v in VARIANTS}
    assert budgets["full"]["steps"] > 0
    assert all(b == budgets["full"] for b in budgets.values()), budgets
    assert variant_recipe(recipe, "no_pretraining").stages.pretrain["steps"] == 0  # and still the same budget


def test_budget_follows_the_recipe_not_a_fixed_number():
    base = load_shapes_recipe("default", {"stages.pretrain.steps": 7, "stages.finetune.steps": 5})
    nopre = variant_recipe(base, "no_pretraining", seed=2)
    assert nopre.stages.finetune["steps"] == 12 and nopre.seed == 2
    assert keyframe_budget(nopre) == keyframe_budget(base) == {"steps": 12, "clips": 12 * 32}


def test_unequal_batch_sizes_cannot_be_moved_silently():
    base = load_shapes_recipe("default", {"stages.pretrain.batch_size": 16})
    with pytest.raises(ValueError, match="equal batch sizes"):
        variant_recipe(base, "no_pretraining")
