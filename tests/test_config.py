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
    assert Config().replace(["model.freeze=off"]).model.freeze == "off"
    assert Config().replace(["model.freeze=null"]).model.freeze is None
    with pytest.raises(ConfigError, match=r"model.freeze: expected a string or an integer.*\[1\]"):
        Config().replace({"model.freeze": [1]})


@pytest.mark.parametrize("word", ["off", "on", "yes", "no", "true", "Off", "NO", "1", "null!"])
def test_a_string_field_keeps_the_text_as_written(word):
    """YAML 1.1 reads off/on/yes/no as booleans; a str field must not."""
    assert load_config(None, [f"injection.mode={word}"]).injection.mode == word
    assert load_config(None, [f"description={word}"]).description == word


def test_string_overrides_keep_their_text():
    cfg = load_config(
        None,
        [
            "name=1e-3",  # not 0.001
            "device=cuda:1",
            "description=two words: a colon # and a hash",
            'injection.noise="gaussian"',  # quotes are YAML's, not part of the value
            "train.init_from='runs/pre/best.pt'",
            "data_dir=null",  # Optional[str]: null clears it
            "submit.tta=[swap_h1l1, off]",  # list[str]: each item keeps its text
        ],
    )
    assert cfg.name == "1e-3"
    assert cfg.device == "cuda:1"
    assert cfg.description == "two words: a colon # and a hash"
    assert cfg.injection.noise == "gaussian"
    assert cfg.train.init_from == "runs/pre/best.pt"
    assert cfg.data_dir is None
    assert cfg.submit.tta == ["swap_h1l1", "off"]
    # Python callers giving a str get the same.
    assert Config().replace({"injection.mode": "off"}).injection.mode == "off"


@pytest.mark.parametrize(
    "word, value",
    [("true", True), ("false", False), ("on", True), ("off", False), ("yes", True)]
    + [("no", False), ("1", True), ("0", False), ("TRUE", True), ("Off", False), ("yEs", True)],
)
def test_a_bool_field_takes_the_usual_words(word, value):
    assert load_config(None, [f"train.amp={word}"]).train.amp is value
    assert Config().replace({"train.amp": word}).train.amp is value
    assert Config().replace({"cv.fold_parallel": word}).cv.fold_parallel is value


def test_numbers_lists_and_tuples_are_parsed():
    cfg = load_config(
        None,
        [
            "train.lr=3e-4",
            "train.weight_decay=2",
            "train.epochs=1e3",
            "train.ema=",
            "train.patience=3",
            "cv.fold=1",
            "simulate.snr=[5, 9]",
            "injection.curriculum_snr=[15, 40.5]",
            "preprocess.psd_segment=.25",
        ],
    )
    assert cfg.train.lr == 3e-4 and type(cfg.train.lr) is float
    assert cfg.train.weight_decay == 2.0 and type(cfg.train.weight_decay) is float
    assert cfg.train.epochs == 1000 and type(cfg.train.epochs) is int
    assert cfg.train.ema is None
    assert cfg.train.patience == 3
    assert cfg.cv.fold == [1]
    assert cfg.simulate.snr == (5.0, 9.0) and type(cfg.simulate.snr[0]) is float
    assert cfg.injection.curriculum_snr == (15.0, 40.5)
    assert cfg.preprocess.psd_segment == 0.25
    assert load_config(None, ["injection.curriculum_snr=null"]).injection.curriculum_snr is None


def test_free_form_sections_keep_yaml_values():
    """model.* dicts have no field types: YAML decides, with 1e-5 read as a number."""
    cfg = load_config(
        None,
        [
            "model.backbone={name: resnet18, base_width: 8}",
            "model.backbone.residual=false",
            "model.backbone.eps=1e-5",
            "model.frontend.name=stft",
        ],
    )
    assert cfg.model.backbone == {
        "name": "resnet18",
        "base_width": 8,
        "residual": False,
        "eps": 1e-5,
    }
    assert cfg.model.frontend == {"name": "stft"}


@pytest.mark.parametrize(
    "override, field, value, expected",
    [
        ("train.amp=maybe", "train.amp", "'maybe'", "a boolean"),
        ("train.amp=2", "train.amp", "'2'", "a boolean"),
        ("train.epochs=abc", "train.epochs", "'abc'", "an integer"),
        ("train.epochs=off", "train.epochs", "'off'", "an integer"),
        ("train.lr=fast", "train.lr", "'fast'", "a number"),
        ("train.ema=[0.9]", "train.ema", r"'\[0.9\]'", "a number"),
        ("simulate.snr=[1, 2, 3]", "simulate.snr", r"'\[1, 2, 3\]'", "a list of 2 values"),
        ("cv.fold=[0, x]", r"cv.fold\[1\]", "'x'", "an integer"),
        ("model.backbone=resnet18", "model.backbone", "'resnet18'", "a mapping"),
        ("injection=off", "injection", "'off'", "a mapping"),
        ("seed=null", "seed", "", "null is not allowed"),
    ],
)
def test_a_value_that_does_not_fit_names_field_value_and_type(override, field, value, expected):
    with pytest.raises(ConfigError, match=f"^{field}: .*{expected}.*{value}"):
        load_config(None, [override])


def test_recipe_files_follow_the_same_rules(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: 2026\n"
        "injection: {mode: off, noise: 'gaussian'}\n"
        "train: {amp: Off, channels_last: yes, lr: 3e-4, epochs: 1e2, init_from: ~}\n"
        "submit: {tta: [sign_flip, on]}\n"
        "model: {backbone: {name: resnet18, residual: off}}\n"
    )
    cfg = load_config(recipe)
    assert cfg.name == "2026"
    assert cfg.injection.mode == "off" and cfg.injection.noise == "gaussian"
    assert cfg.train.amp is False and cfg.train.channels_last is True
    assert cfg.train.lr == 3e-4 and cfg.train.epochs == 100
    assert cfg.train.init_from is None
    assert cfg.submit.tta == ["sign_flip", "on"]
    assert cfg.model.backbone == {"name": "resnet18", "residual": False}
    # The resolved recipe reads back the same (safe_dump quotes 'off').
    cfg.save(tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
    assert "'off'" in (tmp_path / "resolved.yaml").read_text()


def test_a_bad_recipe_value_names_the_file_and_field(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  amp: sometimes\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: train\.amp: expected a boolean.*'sometimes'"):
        load_config(recipe)


def test_atomic_outputs_get_the_umask_mode(tmp_path):
    import os

    from g2res.utils import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    open(tmp_path / "b.txt", "w").close()
    assert (
        os.stat(tmp_path / "a.json").st_mode & 0o777 == os.stat(tmp_path / "b.txt").st_mode & 0o777
    )
