import pytest

from autorl.errors import ConfigError
from autorl.registry import Registry, is_reference, load_reference


def test_register_get_and_refuse_duplicates():
    reg: Registry = Registry("thing")
    reg.register("alpha", 1, "first")
    assert reg.get("alpha") == 1
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", 2)


def test_unknown_name_lists_valid_and_closest():
    reg: Registry = Registry("thing")
    reg.register("cartpole", 1)
    reg.register("pendulum", 2)
    with pytest.raises(
        ConfigError, match=r"unknown thing 'cartpol'\. Did you mean 'cartpole'\? Valid: cartpole, pendulum"
    ):
        reg.get("cartpol")


def test_a_name_in_the_wrong_case_suggests_the_name_that_differs_only_in_case():
    """``sb3:PPO`` meant ``sb3:ppo`` (difflib alone proposed ``sb3:td3``)."""
    from autorl.targets import TARGETS

    with pytest.raises(ConfigError, match=r"unknown target 'sb3:PPO'\. Did you mean 'sb3:ppo'\?"):
        TARGETS.get("sb3:PPO")


def test_lazy_reference_is_imported_on_use():
    reg: Registry = Registry("thing")
    reg.register("join", "os.path:join")
    assert reg.get("join")("a", "b") == "a/b"
    assert reg.get("math:sqrt")(9) == 3  # not registered, but a module:attr reference


def test_file_reference(tmp_path):
    f = tmp_path / "mod.py"
    f.write_text("def g(c):\n    return 42\n")
    assert load_reference(f"{f}:g")({}) == 42
    assert is_reference(f"{f}:g") and is_reference("pkg.mod:f") and not is_reference("sb3:ppo")


@pytest.mark.parametrize(
    "ref, match",
    [
        ("nomodule_xyz:f", "cannot import"),
        ("os:nothing_here", "no attribute"),
        ("missing.py:f", "does not exist"),
        ("justaname", "must look like"),
    ],
)
def test_bad_references(ref, match):
    with pytest.raises(ConfigError, match=match):
        load_reference(ref)


def _installed(tmp_path, monkeypatch, entry_points: str, registry: Registry | None = None) -> None:
    """A fake installed distribution with ``entry_points`` (entry_points.txt's text); ``registry`` is
    restored after the test and loads its plug-ins again."""
    dist = tmp_path / "fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))
    if registry is not None:
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_plugins_loaded", False)


def test_third_party_entry_points_are_found_and_duplicates_refused(tmp_path, monkeypatch):
    _installed(
        tmp_path, monkeypatch, "[autorl.test_group]\nplugged = os.path:basename\ntaken = os.path:dirname\n"
    )
    reg: Registry = Registry("thing", entry_point_group="autorl.test_group")
    reg.register("taken", 1)
    assert reg.get("plugged")("/a/b") == "b"
    with pytest.raises(ConfigError, match="registered twice"):
        reg.get("taken")


def _plugin_method():
    from autorl.methods import MethodKind, define_method
    from autorl.methods.stall import build_halve_on_stall

    return define_method(build_halve_on_stall, "a plug-in's population method", MethodKind.POPULATION)


PLUGIN_METHOD = _plugin_method()


def test_an_entry_point_registers_a_whole_method_so_a_plug_in_can_be_a_population_method(
    tmp_path, monkeypatch
):
    """A plug-in method was always a static method; an entry point that names a define_method
    Definition brings its spec with it."""
    from autorl.config import parse_sweep
    from autorl.methods import METHODS, method_spec
    from tests.conftest import toy

    _installed(
        tmp_path,
        monkeypatch,
        "[autorl.methods]\nplugged_stall = tests.test_registry:PLUGIN_METHOD\n",
        METHODS,
    )
    assert method_spec("plugged_stall").population
    lr = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "mutable": True}
    cfg = {
        "target": toy("Plateau"),
        "space": {"learning_rate": lr},
        "metric": "score",
        "budget": {"max": 20},
        "method": "plugged_stall",
    }
    assert parse_sweep(cfg).spec.population


PLUGIN_TARGET = None  # set by the test below: what its entry point names


def test_an_entry_point_registers_a_whole_target_so_a_plug_in_can_declare_batching(tmp_path, monkeypatch):
    """A plug-in target named by a bare class declared nothing (so it could not batch); one named by
    define_target brings its TargetInfo, batching included."""
    import tests.test_registry as me
    from autorl.targets import TARGETS, define_target, target_info

    monkeypatch.setattr(
        me,
        "PLUGIN_TARGET",
        define_target("autorl.engine.target:EngineTarget", "the engine, as a plug-in",
                      unit="env_steps", batch="autorl.engine.target:EngineTarget.batch", reconfigurable=True),
    )  # fmt: skip
    _installed(
        tmp_path,
        monkeypatch,
        "[autorl.targets]\nplugged:engine = tests.test_registry:PLUGIN_TARGET\n",
        TARGETS,
    )
    info = target_info("plugged:engine")
    assert info.batch is not None and info.reconfigurable and info.unit == "env_steps"
    assert info.batch_class().__name__ == "EngineBatch"


def test_training_metrics_are_names_and_only_targets_whose_training_reports_them_declare_them():
    """A string is one metric's name, never its characters; envdesign's actor-critic reports an
    evaluation under train_return, so it declares none, unlike the plain actor-critic and the engine."""
    from autorl.targets.base import _info, reference_info, target_info

    assert _info({"training_metrics": "train_return"}).training_metrics == {"train_return"}

    class Declared:
        training_metrics = "train_return"

    assert reference_info(Declared).training_metrics == {"train_return"}
    with pytest.raises(TypeError, match="training_metrics must name metrics"):
        _info({"training_metrics": [1]})
    assert target_info("agents:actor_critic").training_metrics == {"train_return"}
    assert target_info("engine:ppo").training_metrics == {"train_return"}
    assert target_info("envdesign:actor_critic").training_metrics == frozenset()
