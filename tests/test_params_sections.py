"""A rollback puts back params.yaml's sections that built a release, as text: values and
comments exactly as at the tag, every other section exactly as now."""

import pytest
import yaml

from pipeline.paths import REPO_ROOT
from pipeline.release.errors import PromotionRefused
from pipeline.release.params_sections import sections_that_built, with_sections

CURRENT = (REPO_ROOT / "params.yaml").read_text()


def test_the_named_sections_come_back_as_they_were_and_the_rest_stays():
    at_tag = CURRENT.replace("  quantization: none ", "  quantization: float16 ").replace(
        "promote:\n", "promote:\n  # an older comment\n"
    )
    assert at_tag != CURRENT
    restored = with_sections(CURRENT, at_tag, ["convert"])
    assert yaml.safe_load(restored)["convert"]["quantization"] == "float16"
    assert "# an older comment" not in restored  # promote is not a section that built the model
    assert restored.replace("quantization: float16 ", "quantization: none ") == CURRENT


def test_a_section_the_tag_lacks_goes_and_one_it_has_comes_back():
    without_demo = with_sections(CURRENT, "shared:\n  seed: 1\n", ["demo_model", "shared"])
    assert "demo_model" not in yaml.safe_load(without_demo)
    assert yaml.safe_load(without_demo)["shared"] == {"seed": 1}
    back = with_sections(without_demo, CURRENT, ["demo_model", "shared"])
    assert yaml.safe_load(back) == yaml.safe_load(CURRENT)


def test_a_section_it_cannot_restore_as_text_is_an_error_not_a_silent_change():
    flow_style = "convert: {quantization: float16}\n"
    assert with_sections(CURRENT, flow_style, ["convert"]).count("convert:") == 1
    with pytest.raises(PromotionRefused, match="'gate'"):
        with_sections("gate:\n  a: 1\n", '"gate":\n  a: 2\n', ["gate"])  # a quoted key


def test_the_sections_are_those_the_manifest_and_every_dvc_lock_name():
    lock = yaml.safe_dump(
        {
            "stages": {
                "demo_model": {"params": {"params.yaml": {"shared.seed": 1, "demo_model": {}}}}
            }
        }
    )
    manifest = {"params": {"inputs": {}, "convert": {}}}
    assert sections_that_built(manifest, [lock]) == ["convert", "demo_model", "inputs", "shared"]
