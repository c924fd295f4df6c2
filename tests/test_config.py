import pytest
import yaml

from g2res.config import Config, ConfigError, load_config


def test_defaults_round_trip(tmp_path):
    cfg = Config()
    path = tmp_path / "resolved.yaml"
    cfg.save(path)
    again = load_config(path)
    assert again == cfg


def test_overrides_are_typed(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train": {"lr": 0.01}, "model": {"backbone": {"name": "x"}}}))
    cfg = load_config(
        recipe,
        ["train.lr=3e-4", "cv.fold=[0,2]", "train.ema=null", "model.backbone.depth=4", "seed=7"],
    )
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.cv.fold == [0, 2]
    assert cfg.train.ema is None
    assert cfg.model.backbone == {"name": "x", "depth": 4}
    assert cfg.seed == 7
    assert isinstance(cfg.simulate.snr, tuple)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "did you mean 'lr'"),
        ("train.epochs=abc", "expected an integer"),
        ("train.epochs=1.5", "expected an integer"),
        ("nosuch.key=1", "unknown recipe field"),
        ("train.lr", "key=value"),
        ("train.amp=3", "true/false"),
    ],
)
def test_bad_overrides_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_recipe_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_union_fields_keep_the_type_given():
    from g2res.config import Config

    assert Config().replace({"model.freeze": 2}).model.freeze == 2
    assert Config().replace(["model.freeze=2"]).model.freeze == 2
    assert Config().replace(["model.freeze=backbone"]).model.freeze == "backbone"


def test_atomic_outputs_get_the_umask_mode(tmp_path):
    import os

    from g2res.utils import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    open(tmp_path / "b.txt", "w").close()
    assert (
        os.stat(tmp_path / "a.json").st_mode & 0o777 == os.stat(tmp_path / "b.txt").st_mode & 0o777
    )
